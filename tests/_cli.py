"""The one way the tests run prefnb as a user does, and the one light-import check. Fixtures in tests/conftest.py
(`cli`, `heavy_imports`) hand these out; module-level helpers that predate the fixtures (test_train's `cli`,
_reliability's `prefnb`) are these same functions."""
import json, os, subprocess, sys

HEAVY = ('torch', 'transformers', 'trl', 'datasets', 'matplotlib', 'peft', 'accelerate', 'bitsandbytes')

def run_cli(*args, timeout=600, env=None, cwd=None, module=False):
    "`prefnb ARGS` (`module=True`: `python -m prefnb.cli ARGS`) in a fresh process, output captured as text; `env` adds to os.environ."
    cmd = [sys.executable, '-m', 'prefnb.cli'] if module else ['prefnb']
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)

def heavy_after_import(*modules, heavy=HEAVY):
    "The heavy libraries loaded by importing `modules` in a fresh interpreter (an ImportError fails loudly)."
    code = f"import sys, {', '.join(modules)}; print(__import__('json').dumps([m for m in {list(heavy)!r} if m in sys.modules]))"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])
