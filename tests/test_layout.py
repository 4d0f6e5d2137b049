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

def _imports(mod:str, pkg:Path=PKG)->set:
    "Every prefnb module `mod` (a file in `pkg`) imports, at the top or inside a function."
    tree, out = ast.parse((pkg/f'{mod}.py').read_text()), set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level == 1: out.add(n.module.split('.')[0] if n.module else None)
            elif n.module and n.module.startswith('prefnb.'): out.add(n.module.split('.')[1])
            elif n.module == 'prefnb': out.update(a.name for a in n.names if (pkg/f'{a.name}.py').exists())
        elif isinstance(n, ast.Import):
            out.update(a.name.split('.')[1] for a in n.names if a.name.startswith('prefnb.'))
    return out - {None, mod}

def import_graph(pkg:Path=PKG)->dict:
    "module -> the modules it imports, for every module file in `pkg`."
    return {p.stem: _imports(p.stem, pkg) for p in sorted(pkg.glob('*.py')) if not p.stem.startswith('_')}

def find_cycle(graph:dict)->list|None:
    "An import cycle in `graph` as a path [a, b, ..., a], or None (depth-first search, modules in sorted order)."
    state = {}
    def visit(m, path):
        if state.get(m) == 1: return path[path.index(m):] + [m]
        if state.get(m) == 2: return None
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if (c := visit(n, path + [m])): return c
        state[m] = 2
    return next((c for m in sorted(graph) if (c := visit(m, []))), None)

STAGES = _stages()
MODULES = sorted(p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_'))

def test_every_module_comes_from_a_numbered_notebook():
    assert sorted(STAGES) == MODULES

@pytest.mark.parametrize('mod', MODULES)
def test_data_flows_one_way(mod):
    later = {m: STAGES[m] for m in _imports(mod) if STAGES[m] >= STAGES[mod]}
    assert later == {}, f'{mod} (stage {STAGES[mod]}) imports later stages {later}'

def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert sorted(graph) == MODULES and sum(map(len, graph.values())) > len(MODULES)   # the real graph, with its edges
    assert find_cycle(graph) is None, 'import cycle: ' + ' -> '.join(find_cycle(graph))

def test_a_planted_cycle_is_caught(tmp_path):
    "The same finder fails on a cycle: one planted edge in the real graph, and a package of files whose imports loop."
    graph = import_graph()
    back = next(m for m in MODULES if 'core' in graph[m])                 # some module imports core: make core import it back
    cycle = find_cycle({**graph, 'core': graph['core'] | {back}})
    assert cycle is not None and cycle[0] == cycle[-1] and {'core', back} <= set(cycle)
    pkg = tmp_path/'prefnb'; pkg.mkdir()
    (pkg/'a.py').write_text('from .b import f\n')
    (pkg/'b.py').write_text('def f():\n    import prefnb.c\n')          # inside a function counts too
    (pkg/'c.py').write_text('from prefnb import a\n')
    (pkg/'d.py').write_text('from .a import f\n')                         # imports into the loop, not part of it
    assert find_cycle(import_graph(pkg)) == ['a', 'b', 'c', 'a']
    (pkg/'c.py').write_text('X = 1\n')
    assert find_cycle(import_graph(pkg)) is None

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

def test_top_level_api_resolves():
    code = ('import sys, prefnb; [getattr(prefnb, n) for n in prefnb.__all__]; print(sorted(set(prefnb.__all__) - set(dir(prefnb))))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split('\n')
    assert out[0] == '[]'
    import prefnb
    for n in prefnb.__all__: assert n in ('METHODS', 'CHAT_TEMPLATES') or getattr(prefnb, n).__module__.startswith('prefnb')
    with pytest.raises(AttributeError): prefnb.no_such_name

@pytest.mark.parametrize('mod', ['prefnb', *(f'prefnb.{m}' for m in MODULES)])
def test_import_stays_light(mod, heavy_imports):
    "`import prefnb` and every module alone load none of torch, transformers, trl, datasets, matplotlib, peft, accelerate, bitsandbytes."
    assert heavy_imports(mod) == []

def test_the_light_import_check_can_fail(heavy_imports):
    assert heavy_imports('prefnb.core', 'json', heavy=('json', 'torch')) == ['json']
