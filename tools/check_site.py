"""Checks the docs site can be built, as far as is possible without Quarto:
- nbs/_quarto.yml is the top-level _quarto.yml (a link), so there is one source;
- every notebook is in the sidebar, and the sidebar names no missing page;
- no notebook is skipped wholesale (skip_exec / skip_showdoc frontmatter);
- every notebook names its kernel (kernelspec), so Jupyter opens it without asking.
"""
import json, re, sys
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'

def _pages(node):
    if isinstance(node, str): yield node
    elif isinstance(node, dict):
        for k in ('href', 'contents', 'file'):
            if k in node: yield from _pages(node[k])
    elif isinstance(node, list):
        for x in node: yield from _pages(x)

def main():
    errs = []
    link = NBS/'_quarto.yml'
    if not link.is_symlink() or link.resolve() != (ROOT/'_quarto.yml').resolve():
        errs.append('nbs/_quarto.yml must be a link to ../_quarto.yml (the one source of the site config)')
    side = yaml.safe_load((NBS/'sidebar.yml').read_text())
    listed = set(_pages(side['website']['sidebar']['contents']))
    nbs = {str(p.relative_to(NBS)) for p in NBS.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts}
    for p in sorted(nbs - listed): errs.append(f'{p} is not in nbs/sidebar.yml')
    for p in sorted(listed - nbs):
        if not (NBS/p).exists(): errs.append(f'nbs/sidebar.yml lists {p}, which does not exist')
    for p in sorted(nbs):
        nb = json.loads((NBS/p).read_text())
        if not nb.get('metadata', {}).get('kernelspec', {}).get('name'): errs.append(f'{p} has no kernelspec metadata')
        src = ''.join(''.join(c['source']) for c in nb['cells'][:2])
        if re.search(r'skip_(exec|showdoc)\s*:\s*true', src): errs.append(f'{p} is skipped wholesale (skip_exec/skip_showdoc)')
    if errs: sys.exit('\n'.join(errs))
    print(f'site check: {len(nbs)} notebooks, all in the sidebar')

if __name__ == '__main__': main()
