"The console script answers at once, without loading torch, and keeps its exit-code contract."
import json, subprocess, sys

def run(*args):
    return subprocess.run(['prefnb', *args], capture_output=True, text=True)

def test_import_does_not_load_heavy_libraries():
    code = "import sys, prefnb, prefnb.cli, prefnb.core, prefnb.config, prefnb.data, prefnb.trainer, prefnb.health, prefnb.plots, prefnb.widgets; print(sorted(m for m in ('torch','transformers','trl','datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'

def test_help_lists_commands():
    r = run('--help')
    assert r.returncode == 0 and 'info' in r.stdout and 'COMMAND' in r.stdout

def test_unknown_command_is_a_usage_error():
    r = run('frobnicate')
    assert r.returncode == 2 and 'invalid choice' in r.stderr and 'Traceback' not in r.stderr

def test_info_json_reports_versions():
    import importlib.metadata as md
    r = run('info', '--json')
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d['trl'] == md.version('trl') and d['torch'] == md.version('torch')
    import torch
    if not torch.cuda.is_available(): assert d['precision'] == 'fp32' and d['gpu_memory'] == 'no GPU'
