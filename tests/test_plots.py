"Metric figures of real tiny TRL runs, run comparison, and the live view's cost."
import json, os, sys, time
from pathlib import Path
import pytest
from prefnb.core import UserError
from prefnb.health import HealthCallback, synthetic_run, diagnose
from prefnb.plots import plot_metrics, plot_runs, LivePlotCallback, panels_for, in_notebook

sys.path.insert(0, str(Path(__file__).parent))
from test_health import tiny_dpo, tiny_kto

PNG = b'\x89PNG\r\n\x1a\n'

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp('plots')
    live = {k: LivePlotCallback() for k in ('ok', 'lr0', 'kto')}
    r = dict(ok=tiny_dpo(d/'ok', callbacks=[HealthCallback('dpo'), live['ok']]),
             lr0=tiny_dpo(d/'lr0', lr=0.0, steps=10, callbacks=[HealthCallback('dpo'), live['lr0']]),
             kto=tiny_kto(d/'kto', callbacks=[HealthCallback('kto'), live['kto']]))
    r['dir'], r['live'] = d, live
    if os.environ.get('PREFNB_KEEP_PNG'):      # to look at the figures: PREFNB_KEEP_PNG=/some/folder pytest tests/test_plots.py
        import shutil
        for k in live: shutil.copy(d/k/'metrics.png', Path(os.environ['PREFNB_KEEP_PNG'])/f'{k}.png')
    return r

def test_callback_is_quiet_outside_a_notebook_and_writes_png(runs):
    assert not in_notebook()
    for k, cb in runs['live'].items():
        assert cb.live is False and cb.handle is None
        assert (runs['dir']/k/'metrics.png').read_bytes()[:8] == PNG
        assert len(cb.history) == len(runs[k].state.log_history) - 1     # the summary entry is not a step

def test_healthy_run_figure(runs):
    fig = plot_metrics(runs['ok'].state.log_history, 'dpo')
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == ['loss: should fall', 'rewards: chosen up, rejected down', 'margins: positive and rising',
                      'accuracies: above 0.5, toward 0.7+', 'log-probs: rejected should fall', 'grad norm: within 0.01-10']
    assert all(a.lines for a in fig.axes if a.get_visible()), 'no empty panels'
    assert not any(a.texts for a in fig.axes), 'no finding marks on a healthy run'
    assert fig._suptitle.get_text() == 'run (dpo): healthy, no findings'

def test_pinned_run_figure_marks_finding(runs):
    d = runs['dir']/'lr0'    # a run folder as prefnb train leaves it: metrics.jsonl; the figure is saved into it
    (d/'metrics.jsonl').write_text('\n'.join(json.dumps(e) for e in runs['lr0'].state.log_history))
    fig = plot_metrics(d)
    assert fig.saved_to == runs['dir']/'lr0'/'metrics.png'
    assert fig._suptitle.get_text() == 'lr0 (dpo): 1 finding (1 error): loss_pinned'
    marked = {a.get_title(): [t.get_text() for t in a.texts] for a in fig.axes if a.texts}
    assert marked == {'loss: should fall': ['loss_pinned'], 'rewards: chosen up, rejected down': ['loss_pinned']}

def test_kto_panels(runs):
    fig = plot_metrics(runs['kto'].state.log_history)
    assert [p['id'] for p in panels_for(runs['kto'].state.log_history)] == ['loss', 'rewards', 'margins', 'logps', 'grad_norm', 'kl']
    assert fig._suptitle.get_text().startswith('run (kto)')

def test_plot_runs_overlays(runs, tmp_path):
    for k in ('ok', 'lr0'): (runs['dir']/k/'metrics.jsonl').write_text('\n'.join(json.dumps(e) for e in runs[k].state.log_history))
    fig = plot_runs([runs['dir']/'ok', runs['dir']/'lr0'], path=tmp_path)
    assert fig.saved_to == tmp_path/'runs.png' and (tmp_path/'runs.png').read_bytes()[:8] == PNG
    assert fig.axes[0].get_legend_handles_labels()[1] == ['ok', 'lr0']
    with pytest.raises(UserError, match='plot_runs: 1 labels for 2 runs'):
        plot_runs([runs['dir']/'ok', runs['dir']/'lr0'], labels=['a'])

def test_live_view_redraws_one_figure_within_budget(monkeypatch, tmp_path):
    "In a notebook: one display, then in-place updates; redraw time stays within the budget (5% here to get several redraws in 30 s)."
    import IPython.display as ipd
    calls = []
    class Handle:
        def update(self, fig): calls.append(('update', id(fig))); fig._repr_png_()   # as a front end renders it
    monkeypatch.setattr(ipd, 'display', lambda fig, display_id=False: (calls.append(('display', id(fig))), fig._repr_png_(), Handle())[-1])
    from types import SimpleNamespace as NS
    cb = LivePlotCallback('dpo', live=True, budget=0.05, path=tmp_path)
    a, st = NS(output_dir=str(tmp_path)), NS(global_step=0)
    cb.on_train_begin(a, st, None)
    t_end = time.perf_counter() + 30
    for e in synthetic_run('dpo', n=400, seed=0):      # 400 logs of ~0.1 s steps
        time.sleep(0.1); st.global_step = e['step']; cb.on_log(a, st, None, logs=e)
        if time.perf_counter() > t_end: break
    cb.on_train_end(a, st, None)
    assert calls[0][0] == 'display' and {c[0] for c in calls[1:]} == {'update'} and len({c[1] for c in calls}) == 1
    assert cb.draws >= 3, 'redrew at least twice during training, then once at the end'
    assert cb.overhead <= 0.05, cb.overhead
    assert (tmp_path/'metrics.png').exists()

def test_errors():
    with pytest.raises(UserError, match='no metrics to plot'): plot_metrics([{'step': 1, 'epoch': 0.1}])
    with pytest.raises(UserError, match='no such file or folder'): plot_metrics('/nonexistent/run')
