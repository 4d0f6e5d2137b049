"""The live view and the config form in a real browser: JupyterLab and headless Chromium, driven by Playwright.

Usage (tools/browser.sh sets it up): python tools/browser_test.py --kernel-python PY --chromium PATH [--out screens]

Runs in an environment with JupyterLab and Playwright (tools/browser-requirements.txt); the notebooks run in a
kernel of the prefnb environment (`--kernel-python`, this checkout on its PYTHONPATH). Chromium is the system's
(Debian's `apt-get install chromium`): Playwright is never asked to download a browser. It opens

1. the DPO tutorial, runs all cells, and checks that the training figure appears while the training cell is
   still running and changes before it ends, and that the progress line advances;
2. a notebook with the config form, runs it, and checks that switching the method shows and hides the right
   fields, that a bad value shows its message and marks its section, and that Train shows progress that advances;

and, on every page, that no widget failed to display ("Error displaying widget") and that the browser console
has no errors from prefnb's widgets. Screenshots go to --out. Exit 0 when all checks pass, 1 otherwise.
"""
import argparse, json, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = 'prefnb-browser-test'
FORM_CONFIG = dict(base_model='prefnb:tiny-chatml', datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')], max_steps=24,
                   sequence_len=128, micro_batch_size=2, gradient_accumulation_steps=1, logging_steps=1, learning_rate=5e-4, output_dir='runs/form')

class Checks:
    def __init__(self): self.results = []
    def __call__(self, ok, what, detail=''):
        self.results.append((bool(ok), what, detail))
        print(('PASS ' if ok else 'FAIL ') + what + (f': {detail}' if detail else ''), flush=True)
        return ok
    @property
    def ok(self): return all(r[0] for r in self.results)

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def setup(work:Path, kernel_python:str):
    "A work folder with the two notebooks, a kernelspec for the prefnb environment and JupyterLab settings."
    import nbformat
    shutil.copy(ROOT/'nbs'/'tutorials'/'dpo.ipynb', work/'dpo.ipynb')
    nb = nbformat.v4.new_notebook(metadata=dict(kernelspec=dict(name='python3', display_name='Python 3 (prefnb)', language='python')))
    nb.cells = [nbformat.v4.new_code_cell('from prefnb.widgets import config_form'),
                nbformat.v4.new_code_cell(f'form = config_form({FORM_CONFIG!r})\nform')]
    nbformat.write(nb, work/'form.ipynb')
    data = work/'jupyter-data'
    (data/'kernels'/'python3').mkdir(parents=True)
    env = {k: os.environ[k] for k in ('PREFNB_CACHE', 'HF_HOME', 'HF_DATASETS_CACHE', 'MPLCONFIGDIR') if k in os.environ}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1', TRL_EXPERIMENTAL_SILENCE='1', TOKENIZERS_PARALLELISM='false')
    (data/'kernels'/'python3'/'kernel.json').write_text(json.dumps(dict(
        argv=[kernel_python, '-m', 'ipykernel_launcher', '-f', '{connection_file}'], display_name='Python 3 (prefnb)', language='python', env=env)))
    settings = work/'lab-settings'/'@jupyterlab'
    (settings/'notebook-extension').mkdir(parents=True)
    # every cell stays in the page (no virtual scrolling), so the checks can read any cell's output
    (settings/'notebook-extension'/'tracker.jupyterlab-settings').write_text(json.dumps(dict(windowingMode='none')))
    (settings/'apputils-extension').mkdir(parents=True)
    (settings/'apputils-extension'/'notification.jupyterlab-settings').write_text(json.dumps(dict(fetchNews='false', checkForUpdates=False)))
    return data

def start_lab(work:Path, data:Path):
    port = free_port()
    env = dict(os.environ, JUPYTER_PATH=str(data), JUPYTERLAB_SETTINGS_DIR=str(work/'lab-settings'),
               JUPYTER_CONFIG_DIR=str(work/'jupyter-config'), JUPYTER_RUNTIME_DIR=str(work/'jupyter-runtime'))
    log = open(work/'jupyterlab.log', 'w')
    lab = subprocess.Popen([str(Path(sys.executable).parent/'jupyter-lab'), '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                            f'--ServerApp.token={TOKEN}', f'--ServerApp.root_dir={work}', '--LabApp.expose_app_in_browser=True', '--allow-root'],
                           cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    for _ in range(240):
        try:
            urllib.request.urlopen(f'{url}/api/status?token={TOKEN}', timeout=2); return lab, url
        except Exception: time.sleep(0.5)
    lab.terminate(); raise SystemExit(f'JupyterLab did not start; see {work/"jupyterlab.log"}')

KERNEL_IDLE = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle'; }"""

CELL_STATE = """(i) => { const c = (document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document).querySelectorAll('.jp-Cell')[i]; if (!c) return null;
  const img = c.querySelector('.jp-OutputArea img');
  const line = Array.from(c.querySelectorAll('.jp-OutputArea .widget-html-content')).map(e => e.textContent).find(t => /step \\d+\\/\\d+/.test(t)) || '';
  return {running: c.querySelector('.jp-InputPrompt').textContent.includes('*'), src: img && img.offsetParent !== null ? img.src : null,
          line: line}; }"""

ALL_DONE = """() => { const ps = Array.from((document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document).querySelectorAll('.jp-Cell.jp-CodeCell .jp-InputPrompt')).map(p => p.textContent);
  return ps.length > 0 && ps.every(t => /\\[\\d+\\]/.test(t)); }"""

def open_notebook(page, url, name):
    page.goto(f'{url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={TOKEN}&reset')   # a fresh workspace: this notebook only
    try:   # JupyterLab may still ask which kernel, although the notebook names it: take the one it proposes
        page.locator('.jp-Dialog').get_by_role('button', name='Select').click(timeout=8000)
    except Exception: pass
    page.wait_for_function(KERNEL_IDLE, timeout=180_000)
    time.sleep(1)

def run_all(page):
    "Run All, as the menu does; without waiting for the cells (evaluate would wait for the command's promise)."
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

def widget_errors(page): return page.evaluate("() => document.body.innerText.includes('Error displaying widget')")

def cell_index(page, text):
    return page.evaluate("""(t) => Array.from((document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document).querySelectorAll('.jp-Cell')).findIndex(
        c => c.querySelector('.jp-InputArea') && c.querySelector('.jp-InputArea').textContent.includes(t))""", text)

def shot(page, out:Path, name, el=None):
    p = out/f'{name}.png'
    (el.screenshot(path=str(p)) if el is not None else page.screenshot(path=str(p), full_page=False))
    print('screenshot', p, flush=True)

def tutorial(page, url, out, check:Checks, timeout=900):
    open_notebook(page, url, 'dpo.ipynb')
    i = cell_index(page, 'res = train(cfg')
    check(i >= 0, 'the DPO tutorial has its training cell')
    run_all(page)
    t0, seen, lines, shots, running_seen = time.time(), [], [], 0, False
    cell = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell').nth(i)
    while time.time() - t0 < timeout:
        st = page.evaluate(CELL_STATE, i)
        if st and st['running']:
            running_seen = True
            if st['src'] and (not seen or seen[-1] != st['src']):
                seen.append(st['src'])
                if len(seen) in (1, 3) and shots < 2:
                    cell.scroll_into_view_if_needed(); shot(page, out, f'dpo-training-{len(seen)}'); shots += 1
            if st['line'] and (not lines or lines[-1] != st['line']): lines.append(st['line'])
        elif running_seen and st and not st['running']: break
        time.sleep(0.25)
    check(running_seen, 'the training cell ran')
    check(len(seen) >= 1, 'the training figure appears while the training cell is still running', f'{len(seen)} distinct images')
    # the CPU run (SmolLM2, 12 steps) lasts about 40 s on an idle machine and the view redraws at most every 2 s
    check(len(seen) >= 2, 'the figure changes while the cell runs', f'{len(seen)} distinct images')
    steps = [int(m.group(1)) for l in lines if (m := re.search(r'step (\d+)/', l))]
    check(len(set(steps)) >= 2 and steps == sorted(steps), 'the progress line advances', f'steps seen: {sorted(set(steps))}')
    page.wait_for_function(ALL_DONE, timeout=timeout * 1000)
    cell.scroll_into_view_if_needed(); shot(page, out, 'dpo-after-training')
    check(not widget_errors(page), 'no "Error displaying widget" in the tutorial')
    tb = page.evaluate("() => Array.from(document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]')).map(e => e.textContent).join('\\n')")
    check('Traceback' not in tb and 'Error' not in tb, 'no traceback in the tutorial', tb[:300])

def row(page, key): return page.locator(f".prefnb-row-{re.sub(r'[^a-z0-9]+', '-', key).strip('-')}")

def form(page, url, out, check:Checks, timeout=900):
    open_notebook(page, url, 'form.ipynb')
    run_all(page)
    page.wait_for_selector('.prefnb-form', timeout=180_000)
    page.wait_for_function(ALL_DONE, timeout=180_000)
    f = page.locator('.prefnb-form')
    check(not widget_errors(page), 'the form displays')
    # switching the method shows and hides the right fields
    f.get_by_role('button', name=re.compile(r'^(▸ )?method')).click()
    rl = row(page, 'rl').locator('select')
    rl.select_option('orpo'); page.wait_for_timeout(800)
    check(row(page, 'orpo_alpha').is_visible() and not row(page, 'rl_beta').is_visible(), 'rl: orpo shows orpo_alpha and hides rl_beta')
    shot(page, out, 'form-method-orpo', f)
    rl.select_option('kto'); page.wait_for_timeout(800)
    check(row(page, 'kto_desirable_weight').is_visible() and row(page, 'rl_beta').is_visible() and not row(page, 'orpo_alpha').is_visible(),
          'rl: kto shows kto_desirable_weight and rl_beta, hides orpo_alpha')
    rl.select_option('dpo'); page.wait_for_timeout(800)
    check(row(page, 'dpo_loss_type').is_visible() and not row(page, 'kto_desirable_weight').is_visible(), 'rl: dpo shows dpo_loss_type, hides kto fields')
    # a bad value shows its message, and its section says it holds an error
    f.get_by_role('button', name=re.compile(r'^(▸ )?training')).click()
    box = row(page, 'micro_batch_size').locator('input')
    box.fill('0'); box.press('Enter'); page.wait_for_timeout(1200)
    msg = row(page, 'micro_batch_size').inner_text()
    check('micro_batch_size: got 0: Input should be greater than or equal to 1' in msg, 'a bad value shows its message next to the field', msg[-160:])
    check(f.get_by_role('button', name='▸ training (1 error)').count() == 1, 'the section button shows the error count')
    shot(page, out, 'form-bad-value', f)
    box.fill('2'); box.press('Enter'); page.wait_for_timeout(1200)
    check('error' not in row(page, 'micro_batch_size').inner_text(), 'the message clears when the value is fixed')
    # Train shows progress that advances
    f.get_by_role('button', name='Train', exact=True).click()
    t0, steps, shots = time.time(), [], 0
    while time.time() - t0 < timeout:
        text = f.inner_text()
        m = re.findall(r'step (\d+)/(\d+)', text)
        if m and (not steps or steps[-1] != int(m[-1][0])):
            steps.append(int(m[-1][0]))
            if shots == 0 and steps[-1] > 2: f.scroll_into_view_if_needed(); shot(page, out, 'form-training', f); shots += 1
        if 'done: RunResult' in text or 'training failed' in text: break
        time.sleep(0.25)
    text = f.inner_text()
    check('done: RunResult' in text, 'Train finishes and says so', text[-300:] if 'done' not in text else '')
    check(len(set(steps)) >= 3 and steps == sorted(steps), 'the form shows training progress that advances', f'steps seen: {steps}')
    check(f.locator('img').count() >= 1, 'the form shows the training figure')
    shot(page, out, 'form-after-training', f)
    check(not widget_errors(page), 'no "Error displaying widget" in the form')

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--kernel-python', required=True, help='python of the environment prefnb runs in')
    ap.add_argument('--chromium', required=True, help='the system Chromium (never downloaded by Playwright)')
    ap.add_argument('--out', default='screens', help='folder for the screenshots')
    ap.add_argument('--only', choices=['tutorial', 'form'], help='run one of the two pages')
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    out = Path(a.out).resolve(); out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='prefnb-browser-'))
    lab, url = start_lab(work, setup(work, a.kernel_python))
    check, console = Checks(), []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=a.chromium, args=['--no-sandbox', '--disable-dev-shm-usage'])
            for name, fn in (('tutorial', tutorial), ('form', form)):
                if a.only in (None, name):
                    page = browser.new_page(viewport=dict(width=1300, height=2000))   # tall: the whole form and its figure in one picture
                    page.on('console', lambda m: console.append(m.text) if m.type == 'error' else None)
                    page.on('pageerror', lambda e: console.append(f'pageerror: {e}'))
                    t = time.time()
                    try: fn(page, url, out, check)
                    except Exception as e:
                        check(False, f'{name} page ran to the end', f'{type(e).__name__}: {e}')
                        page.screenshot(path=str(out/f'{name}-failure.png'))
                    print(f'{name}: {time.time() - t:.0f} s', flush=True)
            ours = [m for m in console if re.search(r'prefnb|jupyter-widgets|widget', m, re.I)]
            check(not ours, 'no console errors from prefnb or its widgets', '; '.join(ours)[:500])
            if console: print('other console errors (JupyterLab, not ours):', *console[:10], sep='\n  ')
            browser.close()
    finally:
        lab.terminate()
        try: lab.wait(20)
        except subprocess.TimeoutExpired: lab.kill()
    print(f"{sum(r[0] for r in check.results)}/{len(check.results)} browser checks passed; screenshots in {out}")
    return 0 if check.ok else 1

if __name__ == '__main__': sys.exit(main())
