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

def closed_pipe(*args):
    "Run `prefnb ARGS` with its stdout reader gone before it writes (as `| head -1` does once it has its line)."
    p = subprocess.Popen(['prefnb', *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    err = p.stderr.read(); p.wait(); p.stderr.close()
    return p.returncode, err

def test_every_command_exits_quietly_on_a_closed_pipe(tmp_path):
    from prefnb.cli import COMMANDS
    (tmp_path/'c.yml').write_text('base_model: prefnb:tiny-chatml\nrl: dpo\ndatasets: [{path: prefnb:toy-orca, type: chatml.intel}]\n')
    assert closed_pipe('check', '--json', str(tmp_path/'c.yml')) == (141, '')
    assert closed_pipe('check', str(tmp_path/'c.yml')) == (141, '')
    assert closed_pipe('templates') == (141, '') and closed_pipe('strategies', '--json') == (141, '')
    for cmd in COMMANDS:
        rc, err = closed_pipe(cmd, '--help')
        assert rc in (0, 141) and err == '', (cmd, err)

def test_strategies_and_templates_commands():
    r = run('strategies', '--rl', 'kto', '--json')
    d = json.loads(r.stdout)
    assert r.returncode == 0 and list(d) == ['kto'] and d['kto']['chatml.intel'] == '`question`, `completion`, `label`, optional `system`.'
    r = run('templates', '--json')
    d = json.loads(r.stdout)
    assert r.returncode == 0 and {'qwen_25', 'llama3_2', 'mistral_v7_tekken', 'gemma3', 'phi_4', 'deepseek_v3', 'zephyr'} <= set(d)
    r = run('templates', '--show', 'cohere')
    assert r.returncode == 2 and "'cohere' is an axolotl template that prefnb does not render" in r.stderr and 'Traceback' not in r.stderr
