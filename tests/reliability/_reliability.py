"""Helpers of the reliability and safety suite (tests/reliability): the CLI as a user runs it, configs built from the tiny
examples, bad files written into tmp_path, and folder snapshots to prove a run folder was left untouched."""
import contextlib, hashlib, io, json, os, subprocess
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT/'examples'
FORMATS = ('jsonl', 'json', 'csv', 'parquet')

from _cli import run_cli as prefnb   # the installed console script, as a user runs it (tests/_cli.py: the suite's one CLI runner)

def in_process(command, argv):
    """`prefnb COMMAND ARGV` through the same dispatcher as the console script, in this process: (exit code, stderr).
    Any exception other than a user error escapes and fails the test (the console script would show a traceback)."""
    from prefnb.cli import run_command
    err = io.StringIO()
    with contextlib.redirect_stderr(err): rc = run_command(command, [str(a) for a in argv])
    return rc, err.getvalue()

def example(name='dpo', **over)->dict:
    "The tiny example config `examples/tiny-NAME.yml` as a dict, with overrides; quiet and short by default."
    d = yaml.safe_load((EXAMPLES/f'tiny-{name}.yml').read_text())
    d.update(live_plots=False, health_checks=False, max_steps=2, eval_steps=0)
    d.pop('test_datasets', None)
    d.update(over)
    return d

def write_yaml(path, d)->Path:
    path = Path(path); path.write_text(yaml.safe_dump(d, sort_keys=False)); return path

def write_rows(path, rows, ext=None)->Path:
    "Rows written as jsonl / json / csv / parquet (by extension)."
    import pandas as pd
    path = Path(path); ext = ext or path.suffix.lstrip('.')
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == 'jsonl': path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    elif ext == 'json': path.write_text(json.dumps(rows))
    elif ext == 'csv': pd.DataFrame(rows).to_csv(path, index=False)
    elif ext == 'parquet':
        import pyarrow as pa, pyarrow.parquet as pq
        pq.write_table(pa.Table.from_pylist(rows), path)
    else: raise ValueError(ext)
    return path

def snapshot(folder)->dict:
    "{relative path: sha256} of every file under `folder`: equal snapshots mean nothing was written, moved or deleted."
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}

def assert_user_error(r, *needles):
    "A CompletedProcess that ended as a user error: exit 2, every needle in stderr, no traceback."
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    for n in needles: assert n in r.stderr, (n, r.stderr[-3000:])

@contextlib.contextmanager
def warnings_off():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); yield
