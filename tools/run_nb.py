"""Execute notebooks in place with a real Jupyter kernel, so their saved outputs are what the docs show.

Usage: python tools/run_nb.py nbs/00_core.ipynb [more.ipynb ...] [--flags slow]
Cells flagged `gpu` (and `slow`, unless --flags slow), `#| eval: false` cells and the closing
`nbdev_export()` cell are not run and keep no output. A real kernel (nbclient + ipykernel) gives what a
user sees in Jupyter: rich HTML tables instead of text, widget state, no text progress walls.
CI runs the notebooks with `nbdev_test`, which does not save outputs.
"""
import json, os, re, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient

def _skipped(src:str, skip)->bool:
    if 'nbdev_export(' in src: return True
    flags = set()
    for line in src.splitlines():
        m = re.match(r'\s*#\|\s*(.*)', line)
        if not m: break
        d = m.group(1).strip()
        if re.fullmatch(r'eval:\s*false', d, re.I): return True
        flags.update(d.split())
    return bool(flags & set(skip))

def _shown_widgets(meta:dict, cells)->dict:
    "Keep the state of the widgets the saved outputs display (and the models they refer to), not of every widget made."
    key = 'application/vnd.jupyter.widget-state+json'
    state = meta.get(key, {}).get('state', {})
    todo = [o['data']['application/vnd.jupyter.widget-view+json']['model_id'] for c in cells if c.cell_type == 'code'
            for o in c.get('outputs', []) if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    keep = set()
    while todo:
        m = todo.pop()
        if m in keep or m not in state: continue
        keep.add(m)
        todo += re.findall(r'IPY_MODEL_([0-9a-f]+)', json.dumps(state[m]))
    return {**meta, key: {**meta[key], 'state': {m: v for m, v in state.items() if m in keep}}}

def run(fn, skip=('gpu', 'slow'), timeout=1200):
    fn = Path(fn).resolve()
    nb = nbformat.read(fn, as_version=4)
    run_nb = nbformat.from_dict(nb)
    skipped = []
    for i, c in enumerate(run_nb.cells):
        if c.cell_type == 'code' and _skipped(c.source, skip): c.source = ''; skipped.append(i)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    NotebookClient(run_nb, timeout=timeout, kernel_name='python3', resources=dict(metadata=dict(path=str(fn.parent))),
                   store_widget_state=True).execute()
    for i, (src, dst) in enumerate(zip(run_nb.cells, nb.cells)):
        if dst.cell_type != 'code': continue
        dst.outputs = [] if i in skipped else src.outputs
        dst.execution_count = None
    if 'widgets' in run_nb.metadata: nb.metadata['widgets'] = _shown_widgets(run_nb.metadata['widgets'], nb.cells)
    nb.metadata['kernelspec'] = dict(display_name='python3', language='python', name='python3')
    nbformat.write(nb, fn)

if __name__ == '__main__':
    args = sys.argv[1:]
    flags = []
    if '--flags' in args:
        i = args.index('--flags'); flags = args[i+1].split(); del args[i:i+2]
    skip = [f for f in ('gpu', 'slow') if f not in flags]
    for f in args:
        print('running', f, flush=True); run(f, skip)
