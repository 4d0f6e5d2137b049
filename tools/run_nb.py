"""Execute notebooks in place so their outputs show in the docs (cells flagged gpu are skipped).

Usage: python tools/run_nb.py nbs/00_core.ipynb [more.ipynb ...] [--flags slow]
Development helper only: CI runs the notebooks with `nbdev_test`, which does not save outputs.
"""
import os, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.foundation import working_directory
from nbdev.process import NBProcessor
from nbdev.frontmatter import FrontmatterProc

def run(fn, skip=('gpu',)):
    fn = Path(fn).resolve()
    nb = NBProcessor(fn, procs=FrontmatterProc, process=True).nb
    def _no_eval(cell):
        if cell.cell_type != 'code': return True
        if 'nbdev_export(' in cell.source: return True
        direc = getattr(cell, 'directives_', {}) or {}
        if direc.get('eval:', [''])[0].lower() == 'false': return True
        return bool(set(skip) & set(direc.keys()))
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    sh = CaptureShell(fn)
    with working_directory(fn.parent):
        sh.run_all(nb, exc_stop=True, preproc=_no_eval)
    raw = read_nb(fn)
    for src, dst in zip(nb.cells, raw.cells):
        if dst.cell_type == 'code':
            dst['outputs'] = src.get('outputs', [])
            dst['execution_count'] = None
    write_nb(raw, fn)

if __name__ == '__main__':
    args = sys.argv[1:]
    skip = ['gpu']
    if '--flags' in args:
        i = args.index('--flags'); flags = args[i+1].split(); del args[i:i+2]
    else: flags = []
    if 'slow' not in flags: skip.append('slow')
    for f in args:
        print('running', f, flush=True); run(f, skip)
