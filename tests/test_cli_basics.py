"The console script answers at once, keeps its exit-code contract, and drops nothing silently (a repeated option adds up or is refused). That every module imports light is tests/test_layout.py's."
import argparse, contextlib, importlib, io, json, subprocess
import pytest

def test_help_lists_commands(cli):
    r = cli('--help')
    assert r.returncode == 0 and 'info' in r.stdout and 'COMMAND' in r.stdout

def test_unknown_command_is_a_usage_error(cli):
    r = cli('frobnicate')
    assert r.returncode == 2 and 'invalid choice' in r.stderr and 'Traceback' not in r.stderr

def test_info_json_reports_versions(cli):
    import importlib.metadata as md
    r = cli('info', '--json')
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

def test_strategies_and_templates_commands(cli):
    r = cli('strategies', '--rl', 'kto', '--json')
    d = json.loads(r.stdout)
    assert r.returncode == 0 and list(d) == ['kto'] and d['kto']['chatml.intel'] == '`question`, `completion`, `label`, optional `system`.'
    r = cli('templates', '--json')
    d = json.loads(r.stdout)
    assert r.returncode == 0 and {'qwen_25', 'llama3_2', 'mistral_v7_tekken', 'gemma3', 'phi_4', 'deepseek_v3', 'zephyr'} <= set(d)
    r = cli('templates', '--show', 'cohere')
    assert r.returncode == 2 and "'cohere' is an axolotl template that prefnb does not render" in r.stderr and 'Traceback' not in r.stderr

# --- nothing dropped silently: every repeated option adds up or is refused ---------------------------------
class _Caught(Exception): pass

def _parsers()->dict:
    "name -> the parser each command (every entry of prefnb.cli.COMMANDS, and `prefnb` itself) builds, caught as it starts parsing."
    from prefnb import cli as C
    from prefnb.core import CLIParser
    caught = {}
    def catch(self, args=None, namespace=None): caught[name] = self; raise _Caught
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, 'parse_known_args', catch)
        for name, (mod, fn, _) in {**C.COMMANDS, 'prefnb': ('prefnb.cli', 'main', '')}.items():
            with pytest.raises(_Caught): getattr(importlib.import_module(mod), fn)([])
    assert all(type(p) is CLIParser for p in caught.values()), {n: type(p) for n, p in caught.items() if type(p) is not CLIParser}
    return caught

PARSERS = _parsers()
ADDS_UP, ONCE = (argparse._ExtendAction, argparse._AppendAction), 'prefnb.core._Once'
SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction, argparse._CountAction,
            argparse._HelpAction, argparse._VersionAction)

def _options():
    return [(name, a) for name, p in PARSERS.items() for a in p._actions if a.option_strings]

def _values(a):
    "Two different valid values for option `a`."
    if a.choices: return [str(c) for c in list(a.choices)[:2]]
    return ['1', '2'] if a.type in (int, float) else ['a=1', 'b=2'] if a.dest == 'set' else ['x1', 'x2']

def _argv(p, *opts):
    "Positionals filled with valid dummies, then `opts`."
    pos = [a for a in p._actions if not a.option_strings and a.nargs != argparse.REMAINDER]
    return [str(list(a.choices)[0]) if a.choices else 'x' for a in pos] + list(opts)

def test_every_command_is_enumerated():
    from prefnb.cli import COMMANDS
    assert set(PARSERS) == set(COMMANDS) | {'prefnb'} and len(_options()) > 20

@pytest.mark.parametrize('name,action', _options(), ids=lambda x: x if isinstance(x, str) else x.option_strings[-1])
def test_a_repeated_option_adds_up_or_is_refused(name, action):
    p, opt = PARSERS[name], action.option_strings[-1]
    kind = f'{type(action).__module__}.{type(action).__name__}'
    assert isinstance(action, ADDS_UP + SWITCHES) or kind == ONCE, f'{name} {opt}: {kind} keeps only the last of a repeated use'
    if isinstance(action, SWITCHES): return          # a switch (or --help) said twice means the same
    v1, v2 = _values(action)
    if isinstance(action, ADDS_UP):
        assert getattr(p.parse_args(_argv(p, opt, v1, opt, v2)), action.dest) == [v1, v2]
        return
    assert getattr(p.parse_args(_argv(p, opt, v1)), action.dest) == action.type(v1) if action.type else v1
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e: p.parse_args(_argv(p, opt, v1, opt, v2))
    assert e.value.code == 2 and err.getvalue().endswith(f'error: {opt} given twice ({action.type(v1) if action.type else v1} and '
                                                         f'{action.type(v2) if action.type else v2}); give it once\n')

def test_train_set_adds_up_and_a_key_set_twice_is_refused(cli, tmp_path):
    "The issue 25 command: both --set reach the config (the first is not lost: its bad key is reported); a key set twice exits 2."
    (c := tmp_path/'c.yml').write_text('base_model: prefnb:tiny-chatml\nrl: dpo\ndatasets: [{path: prefnb:toy-orca, type: chatml.intel}]\n')
    r = cli('train', c, '--set', 'lerning_rate=1e-5', '--set', f'output_dir={tmp_path/"o"}')
    assert r.returncode == 2 and 'lerning_rate: unknown option' in r.stderr and 'Traceback' not in r.stderr
    r = cli('train', c, '--set', 'max_steps=1', '--set', 'max_steps=2')
    assert (r.returncode, r.stderr) == (2, 'error: --set max_steps: given twice (1 and 2); give it once\n')
    r = cli('select', '--data', 'paired', '--gpu', 'T4', '--gpu', 'L4')
    assert r.returncode == 2 and r.stderr.endswith('prefnb select: error: --gpu given twice (T4 and L4); give it once\n') and 'Traceback' not in r.stderr
    r = cli('select', '--params', '7e9', '--model', 'prefnb:tiny-chatml', '--data', 'paired')
    assert (r.returncode, r.stderr) == (2, 'error: --model and --params both given: they say the same thing; give one\n')
