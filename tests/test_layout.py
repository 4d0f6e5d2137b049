"The package's layout: data flows one way (a module imports only modules of earlier notebooks), the method table is the one home of method knowledge, and the top-level API stays light."
import ast, json, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT/'prefnb'

def _stages()->dict:
    "module -> its notebook's number (`12` or `12a`, between 12 and 13): the stage of the pipeline it belongs to."
    out = {}
    for nb in sorted((ROOT/'nbs').glob('[0-9]*_*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            m = re.match(r'#\|\s*default_exp\s+(\S+)', ''.join(c['source']))
            if m:
                n, letter = re.match(r'(\d+)([a-z]?)_', nb.name).groups()
                out[m.group(1)] = (int(n), letter); break
    return out

def _imports(mod:str)->set:
    "Every prefnb module `mod` imports, at the top or inside a function."
    tree, out = ast.parse((PKG/f'{mod}.py').read_text()), set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level == 1: out.add(n.module.split('.')[0] if n.module else None)
            elif n.module and n.module.startswith('prefnb.'): out.add(n.module.split('.')[1])
            elif n.module == 'prefnb': out.update(a.name for a in n.names if (PKG/f'{a.name}.py').exists())
        elif isinstance(n, ast.Import):
            out.update(a.name.split('.')[1] for a in n.names if a.name.startswith('prefnb.'))
    return out - {None, mod}

STAGES = _stages()
MODULES = sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))

def test_every_module_comes_from_a_numbered_notebook():
    assert sorted(STAGES) == MODULES

@pytest.mark.parametrize('mod', MODULES)
def test_data_flows_one_way(mod):
    later = {m: STAGES[m] for m in _imports(mod) if STAGES[m] >= STAGES[mod]}
    assert later == {}, f'{mod} (stage {STAGES[mod]}) imports later stages {later}'

def test_the_import_graph_has_no_cycle():
    graph = {m: _imports(m) for m in MODULES}
    state = {}
    def visit(m, path):
        if state.get(m) == 1: raise AssertionError('import cycle: ' + ' -> '.join(path + [m]))
        if state.get(m) == 2: return
        state[m] = 1
        for n in graph[m]: visit(n, path + [m])
        state[m] = 2
    for m in MODULES: visit(m, [])

def test_a_planted_cycle_is_caught(tmp_path):
    "The cycle check can fail: a graph with a -> b -> a is refused."
    graph = dict(a={'b'}, b={'a'})
    state, seen = {}, []
    def visit(m):
        if state.get(m) == 1: seen.append(m); return
        if state.get(m) == 2: return
        state[m] = 1
        for n in graph[m]: visit(n)
        state[m] = 2
    visit('a'); assert seen == ['a']

def test_no_library_module_imports_test_helpers():
    assert not (PKG/'testing.py').exists() or all('testing' not in _imports(m) for m in MODULES)

METHOD_NAMES = ('dpo', 'ipo', 'kto', 'orpo', 'simpo')
def _method_tuples(mod):
    "Literal tuples, lists and sets of two or more method names written in `mod`."
    out = []
    for n in ast.walk(ast.parse((PKG/f'{mod}.py').read_text())):
        if isinstance(n, (ast.Tuple, ast.List, ast.Set)) and len(n.elts) >= 2 and \
           all(isinstance(e, ast.Constant) and e.value in METHOD_NAMES for e in n.elts):
            out.append((n.lineno, [e.value for e in n.elts]))
    return out

@pytest.mark.parametrize('mod', [m for m in MODULES if m != 'methods'])
def test_method_sets_come_from_the_method_table(mod):
    assert _method_tuples(mod) == [], f'{mod} lists methods by hand; derive the set with prefnb.methods.methods_where'

def test_the_rl_choices_are_the_table():
    from typing import get_args
    from prefnb.config import PrefConfig
    from prefnb.methods import METHODS
    assert get_args(PrefConfig.model_fields['rl'].annotation) == tuple(METHODS)

def test_top_level_api_resolves_and_import_stays_light():
    code = ('import sys, prefnb; heavy = [m for m in ("torch", "transformers", "trl", "datasets", "matplotlib") if m in sys.modules]; '
            'print(heavy); [getattr(prefnb, n) for n in prefnb.__all__]; print(sorted(set(prefnb.__all__) - set(dir(prefnb))))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split('\n')
    assert out[0] == '[]' and out[1] == '[]'
    import prefnb
    for n in prefnb.__all__: assert n in ('METHODS', 'CHAT_TEMPLATES') or getattr(prefnb, n).__module__.startswith('prefnb')
    with pytest.raises(AttributeError): prefnb.no_such_name
