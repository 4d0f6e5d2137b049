"""Make README.md from nbs/index.ipynb without Quarto (which cannot be installed here), with the benchmark
figures it quotes filled from the records that measured them.

python tools/readme.py          fill the figures in nbs/index.ipynb from the records, then write README.md
python tools/readme.py --check  exit 1 when a figure differs from its record or README.md differs from index.ipynb
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = '<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n'
INDEX = ROOT/'nbs'/'index.ipynb'

def records()->dict:
    "The records the docs quote: `main` (benchmarks/smollm2_main.json) and every benchmarks/results.json record by name."
    recs = {r['name']: r for r in json.loads((ROOT/'benchmarks'/'results.json').read_text())}
    return {'main': json.loads((ROOT/'benchmarks'/'smollm2_main.json').read_text()), **recs}

# Every figure index.ipynb (so README) quotes from a benchmark: a pattern whose one group is the figure, and the figure
# as its record gives it. Each pattern must occur exactly once (tests/test_docs.py checks it and that the figure agrees).
FIGURES = [
    (r'\(load average ([0-9.]+) when it finished\)', lambda R: f"{R['main']['load_after']:.1f}"),
    (r'it took (\d+) s from an empty cache', lambda R: f"{R['main']['prefnb']:.0f}"),
    (r'\((\d+) training steps of about [0-9.]+ s', lambda R: f"{R['main']['steps']}"),
    (r'training steps of about ([0-9.]+) s', lambda R: f"{R['main']['step_s']:.1f}"),
    (r'went from (\d+)% before', lambda R: f"{R['main']['before']:.0%}"[:-1]),
    (r'% before to (\d+)% after', lambda R: f"{R['main']['after']:.0%}"[:-1]),
]

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def figure_checks(text:str, R:dict=None)->list:
    "(pattern, occurrences, quoted, from the record) for each of FIGURES in `text`."
    R = R or records()
    out = []
    for pat, want in FIGURES:
        found = re.findall(pat, text)
        out.append((pat, len(found), found[0] if found else None, want(R)))
    return out

def fill(text:str, R:dict=None)->str:
    "`text` with every figure replaced by its record's."
    R = R or records()
    for pat, want in FIGURES:
        m = re.search(pat, text)
        if m: text = text[:m.start(1)] + want(R) + text[m.end(1):]
    return text

def fill_index(nb_path=INDEX):
    "Fill the figures of the notebook's markdown cells from the records (the notebook stays the source of README)."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    R, changed = records(), False
    for c in nb['cells']:
        if c['cell_type'] != 'markdown': continue
        s = _src(c); new = fill(s, R)
        if new != s: c['source'], changed = new.splitlines(keepends=True), True
    if changed: Path(nb_path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
    return changed

def _hidden(src): return any(l.strip().replace(' ', '') in ('#|hide', '#|echo:false', '#|include:false')
                             for l in src.splitlines()[:3])

def _outputs(c):
    out = []
    for o in c.get('outputs', []):
        text = o.get('text') or o.get('data', {}).get('text/markdown') or o.get('data', {}).get('text/plain')
        if text: out.append(''.join(text) if isinstance(text, list) else text)
    return out

def render(nb_path=INDEX):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for c in nb['cells']:
        src = _src(c).strip('\n')
        if not src or _hidden(src): continue
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code':
            code = '\n'.join(l for l in src.splitlines() if not l.replace(' ', '').startswith('#|')).strip('\n')
            parts.append(f'```python\n{code}\n```')
            parts += [f'```\n{o.rstrip()}\n```' for o in _outputs(c)]
    return HEADER + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    dest = ROOT/'README.md'
    if '--check' in sys.argv:
        bad = [f'{pat}: quoted {q!r}, the record gives {w!r} ({n} matches)' for pat, n, q, w in figure_checks(render())
               if n != 1 or q != w]
        if bad: sys.exit('README figures differ from the benchmark records (run `python tools/readme.py`):\n' + '\n'.join(bad))
        if not dest.exists() or dest.read_text(encoding='utf-8') != render():
            sys.exit('README.md does not match nbs/index.ipynb: run `python tools/readme.py` and commit both.')
        print('README.md matches nbs/index.ipynb and its figures match the benchmark records')
    else:
        if fill_index(): print('figures in nbs/index.ipynb filled from the benchmark records')
        dest.write_text(render(), encoding='utf-8')
