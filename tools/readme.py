"""Make README.md from nbs/index.ipynb without Quarto (which cannot be installed here).

python tools/readme.py          write README.md
python tools/readme.py --check  exit 1 when README.md differs from what index.ipynb gives
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = '<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n'

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def _hidden(src): return any(l.strip().replace(' ', '') in ('#|hide', '#|echo:false', '#|include:false')
                             for l in src.splitlines()[:3])

def _outputs(c):
    out = []
    for o in c.get('outputs', []):
        text = o.get('text') or o.get('data', {}).get('text/markdown') or o.get('data', {}).get('text/plain')
        if text: out.append(''.join(text) if isinstance(text, list) else text)
    return out

def render(nb_path=ROOT/'nbs'/'index.ipynb'):
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
    text, dest = render(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not dest.exists() or dest.read_text(encoding='utf-8') != text:
            sys.exit('README.md does not match nbs/index.ipynb: run `python tools/readme.py` and commit both.')
        print('README.md matches nbs/index.ipynb')
    else: dest.write_text(text, encoding='utf-8')
