"""Interruptions never lose work: a checkpoint half-written by a kill -9 is skipped and resume picks the newest complete one;
a NaN/inf loss stops training at that step with the message and the last good checkpoint intact; a finished run folder is
never overwritten silently; a run stopped at a fixed step (SIGTERM, a notebook's stop button in a real kernel, a KeyboardInterrupt)
resumes into exactly the uninterrupted run: every later loss and grad norm, and the final weights.
(The CLI's exit code on SIGTERM is in tests/test_train.py.)"""
import json, math, os, shutil, signal
from pathlib import Path
import pytest
from transformers import TrainerCallback
from prefnb.core import UserError
from _reliability import example, in_process, prefnb, write_yaml, snapshot, assert_user_error, warnings_off

def _cfg(run, **over):
    from prefnb.config import load_config
    return load_config(example(**{**dict(output_dir=str(run), max_steps=8, save_steps=2, save_total_limit=None, logging_steps=1), **over}))

def _steps(run): return [json.loads(l)['step'] for l in (Path(run)/'metrics.jsonl').read_text().splitlines() if 'loss' in json.loads(l)]

def _half_written(run, step, how):
    "Imitate a kill -9 during the save of checkpoint-`step`: a copy of the newest checkpoint, then cut short."
    src = sorted(Path(run).glob('checkpoint-*'), key=lambda p: int(p.name.split('-')[1]))[-1]
    ck = Path(run)/f'checkpoint-{step}'; shutil.copytree(src, ck)
    st = ck/'trainer_state.json'; st.write_text(json.dumps({**json.loads(st.read_text()), 'global_step': step}, indent=2))
    if how == 'no-trainer-state':       # transformers writes trainer_state.json last: killed before it
        (ck/'trainer_state.json').unlink()
        w = ck/'model.safetensors'; w.write_bytes(w.read_bytes()[:1000])
    elif how == 'truncated-trainer-state':   # killed while trainer_state.json was being written
        s = ck/'trainer_state.json'; s.write_text(s.read_text()[:100])
    elif how == 'truncated-weights':     # weights cut, state already there (a non-atomic copy or a full disk)
        w = ck/'model.safetensors'; w.write_bytes(w.read_bytes()[:1000])
    return ck

def _run_copy(finished_run, tmp_path):
    run = tmp_path/'run'; shutil.copytree(finished_run, run)
    return run

@pytest.mark.parametrize('how', [
    'no-trainer-state',
    pytest.param('truncated-trainer-state'),
    pytest.param('truncated-weights'),
])
def test_resume_skips_a_half_written_checkpoint(how, finished_run, tmp_path, capsys):
    from prefnb.run import checkpoints, resume_checkpoint, train
    run = _run_copy(finished_run, tmp_path)
    _half_written(run, 6, how)
    cfg = _cfg(run, resume_from_checkpoint='auto')
    assert resume_checkpoint(cfg) == str(run/'checkpoint-4')
    assert [p.name for p in checkpoints(run)] == ['checkpoint-2', 'checkpoint-4']
    with warnings_off(): res = train(cfg)
    assert f"resuming from {run/'checkpoint-4'}" in capsys.readouterr().out
    assert res.trainer.state.global_step == 8
    assert _steps(run) == list(range(1, 9))                                   # each step logged once
    assert json.loads((run/'checkpoint-6'/'trainer_state.json').read_text())['global_step'] == 6   # rewritten whole

class Poison(TrainerCallback):
    "Corrupt every weight to NaN (or inf) at the end of step `at`, as an exploding update would."
    def __init__(self, at, value=float('nan')): self.at, self.value = at, value
    def on_step_end(self, args, state, control, model=None, **kw):
        if state.global_step == self.at:
            import torch
            with torch.no_grad():
                for p in model.parameters(): p.fill_(self.value)

def _finite_weights(folder):
    from safetensors.torch import load_file
    return all(bool(t.isfinite().all()) for t in load_file(str(Path(folder)/'model.safetensors')).values())

@pytest.mark.parametrize('value', [float('nan'), float('inf')], ids=['nan', 'inf'])
def test_non_finite_loss_stops_at_that_step(value, tmp_path):
    from prefnb.run import train
    run = tmp_path/'run'
    with warnings_off(), pytest.raises(UserError) as e: train(_cfg(run, max_steps=6), callbacks=[Poison(3, value)])
    assert str(e.value).startswith(f'loss became NaN/inf at step 4: training stopped and nothing was saved after it (checkpoints in {run} are intact)')
    assert sorted(p.name for p in run.glob('checkpoint-*')) == ['checkpoint-2']
    assert _finite_weights(run/'checkpoint-2') and not (run/'model.safetensors').exists()
    assert max(_steps(run)) == 4

def test_nan_guard_stops_on_a_non_finite_logged_loss():
    "The guard itself: a logged NaN/inf loss stops training and cancels the save of that step."
    from transformers import TrainerControl, TrainerState
    from prefnb.run import NanGuard
    for bad in (float('nan'), float('inf'), float('-inf')):
        g, state, control = NanGuard(), TrainerState(), TrainerControl()
        state.global_step, control.should_save = 7, True
        g.on_log(None, state, control, logs={'loss': bad})
        assert (g.bad_step, control.should_training_stop, control.should_save) == (7, True, False)
    g, control = NanGuard(), TrainerControl()
    g.on_log(None, TrainerState(), control, logs={'loss': 0.69})
    assert g.bad_step is None and not control.should_training_stop

def test_finished_run_is_never_overwritten_silently(finished_run, tmp_path):
    run = _run_copy(finished_run, tmp_path)
    before = snapshot(run)
    c = write_yaml(tmp_path/'c.yml', example(output_dir=str(run)))
    assert_user_error(prefnb('train', c), f'output_dir: {run} already holds a run (config.yml, trl_args.json, metrics.jsonl, data_report.json)',
                      'set resume_from_checkpoint: auto to continue it, choose another output_dir, or pass --overwrite to start again')
    assert snapshot(run) == before

def test_folder_with_only_checkpoints_is_a_run(finished_run, tmp_path):
    "A run killed before it finished (checkpoints, no final files) is protected too."
    run = tmp_path/'run'; run.mkdir()
    shutil.copytree(finished_run/'checkpoint-2', run/'checkpoint-2')
    before = snapshot(run)
    rc, e = in_process('train', [write_yaml(tmp_path/'c.yml', example(output_dir=str(run)))])
    assert rc == 2 and f'output_dir: {run} already holds a run (checkpoint-2)' in e
    assert snapshot(run) == before

def test_kill_9_during_frequent_checkpoints_then_resume_finishes(tmp_path):
    "A real SIGKILL while a checkpoint is saved at every step: no handler runs, and resume auto still finishes the run."
    import os, signal, subprocess, time
    run = tmp_path/'run'
    base = ['--set', f'output_dir={run}', 'max_steps=6', 'save_steps=1', 'save_total_limit=null', 'logging_steps=1',
            'eval_steps=0', 'live_plots=false', 'health_checks=false']
    from _reliability import EXAMPLES
    p = subprocess.Popen(['prefnb', 'train', str(EXAMPLES/'tiny-dpo.yml'), *base], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.time()
    while not (run/'checkpoint-2'/'trainer_state.json').exists() and p.poll() is None and time.time() - t < 300: time.sleep(0.01)
    p.send_signal(signal.SIGKILL); p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, 'the run ended before it could be killed'
    from prefnb.run import checkpoints
    done = checkpoints(run)
    assert done and not (run/'model.safetensors').exists()
    r = prefnb('train', EXAMPLES/'tiny-dpo.yml', *base, 'resume_from_checkpoint=auto')
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert f'resuming from {done[-1]}' in r.stdout
    assert _steps(run) == list(range(1, 7)) and (run/'model.safetensors').exists()

# ---- stopped at a fixed step, resumed: the uninterrupted run, number for number ------------------------------------------
STOP_AT, STEPS = 3, 6
LORA = dict(adapter='lora', lora_r=4, lora_alpha=8)

def _resume_cfg(run, adapter, **over):
    return _cfg(run, max_steps=STEPS, save_steps=2, **(LORA if adapter == 'lora' else {}), **over)

class StopAt(TrainerCallback):
    """At the start of step `at`: send this process SIGTERM (a session ending), or raise KeyboardInterrupt (an interrupt that
    is not prefnb's: the second press of the stop button, or a library's own)."""
    def __init__(self, at, how): self.at, self.how = at, how
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step != self.at - 1: return
        if self.how == 'SIGTERM': os.kill(os.getpid(), signal.SIGTERM)
        else: raise KeyboardInterrupt

def _logged(run):
    "{step: the training log entry} from metrics.jsonl, asserting each step is logged once."
    rows = [json.loads(l) for l in (Path(run)/'metrics.jsonl').read_text().splitlines()]
    steps = [r['step'] for r in rows if 'loss' in r]
    assert steps == sorted(set(steps)), steps
    return {r['step']: r for r in rows if 'loss' in r}

def _weights(res):
    return {n: p.detach().clone() for n, p in res.trainer.model.named_parameters()}

@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    "The reference: each adapter's run of STEPS steps, never stopped."
    from prefnb.run import train
    out = {}
    for adapter in (None, 'lora'):
        run = tmp_path_factory.mktemp('whole')/'run'
        with warnings_off(): res = train(_resume_cfg(run, adapter))
        out[adapter] = _logged(run), _weights(res)
    return out

def assert_same_run(run, res, reference, after=0):
    "Every step's log entry after `after` and the final weights equal the uninterrupted run's (one CPU, one process: bit for bit)."
    logs, weights = reference
    got = _logged(run)
    assert sorted(got) == sorted(logs) == list(range(1, STEPS + 1))
    for step in range(after + 1, STEPS + 1):
        for k in ('loss', 'grad_norm', 'learning_rate', 'rewards/margins', 'logps/chosen', 'logps/rejected'):
            assert got[step][k] == logs[step][k], (step, k, got[step][k], logs[step][k])
    assert_same_weights(_weights(res), weights)

def assert_same_weights(w, weights):
    import torch
    assert w.keys() == weights.keys()
    assert all(torch.equal(w[n], weights[n]) for n in w), [n for n in w if not torch.equal(w[n], weights[n])][:5]

@pytest.mark.parametrize('adapter', [None, 'lora'], ids=['full', 'lora'])
@pytest.mark.parametrize('how', ['SIGTERM', 'KeyboardInterrupt'])
def test_stopped_at_a_fixed_step_resumes_into_the_uninterrupted_run(how, adapter, uninterrupted, tmp_path, capsys):
    """SIGTERM at step 3: step 3 finishes, checkpoint-3 is saved, train raises KeyboardInterrupt. A KeyboardInterrupt raised inside
    step 3 loses that step: the newest checkpoint is the periodic checkpoint-2, and train says so. Either way resume gives the
    uninterrupted run's every later log entry and its final weights."""
    from prefnb.run import checkpoints, train
    run = tmp_path/'run'
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with warnings_off(), pytest.raises(KeyboardInterrupt): train(_resume_cfg(run, adapter), callbacks=[StopAt(STOP_AT, how)])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before    # prefnb's handlers are gone again
    saved = STOP_AT if how == 'SIGTERM' else 2
    assert [p.name for p in checkpoints(run)] == [f'checkpoint-{s}' for s in (2, 3)[:2 if how == 'SIGTERM' else 1]]
    out = capsys.readouterr().out
    if how == 'SIGTERM': assert f'stopped by signal {int(signal.SIGTERM)} at step {STOP_AT}; checkpoint saved.' in out
    else: assert f'interrupted during step {STOP_AT}; the newest checkpoint is checkpoint-2. Run again with resume_from_checkpoint: auto' in out
    assert max(_logged(run)) == saved
    with warnings_off(): res = train(_resume_cfg(run, adapter, resume_from_checkpoint='auto'))
    assert f"resuming from {run/f'checkpoint-{saved}'}" in capsys.readouterr().out
    assert_same_run(run, res, uninterrupted[adapter], after=saved)

def test_a_second_signal_stops_at_once_and_gives_the_handlers_back():
    "The first SIGINT asks for a clean stop at the step's end; a second one (a step that hangs) raises KeyboardInterrupt now."
    from transformers import TrainerControl, TrainerState
    from prefnb.run import GracefulStop
    before = signal.getsignal(signal.SIGINT)
    g, control = GracefulStop(), TrainerControl()
    g.on_train_begin(None, TrainerState(), control)
    assert signal.getsignal(signal.SIGINT) == g._handle
    os.kill(os.getpid(), signal.SIGINT)                              # the first press: noted, nothing raised
    g.on_step_end(None, TrainerState(), control)
    assert g.signal == signal.SIGINT and control.should_save and control.should_training_stop
    with pytest.raises(KeyboardInterrupt): os.kill(os.getpid(), signal.SIGINT)   # the second press
    assert signal.getsignal(signal.SIGINT) == before

def test_an_interrupt_before_any_checkpoint_then_resume_starts_clean(tmp_path, capsys):
    "Nothing saved yet: train says so; resume auto starts from step 0 and the metrics file holds each step once."
    from prefnb.run import train
    run = tmp_path/'run'
    with warnings_off(), pytest.raises(KeyboardInterrupt): train(_cfg(run, max_steps=3, save_steps=1000), callbacks=[StopAt(2, 'KeyboardInterrupt')])
    assert 'interrupted during step 2; no checkpoint was saved yet.' in capsys.readouterr().out
    with warnings_off(): train(_cfg(run, max_steps=3, save_steps=1000, resume_from_checkpoint='auto'))
    assert f'no complete checkpoint in {run}: starting from step 0' in capsys.readouterr().out
    assert _steps(run) == [1, 2, 3]

_KERNEL_RUN = """
import os, signal, sys, time, warnings
sys.path[:0] = [{here!r}, os.path.dirname({here!r})]   # _reliability, and the suite's _cli it imports
warnings.simplefilter('ignore')
from transformers import TrainerCallback
from _reliability import example
from prefnb.config import load_config
from prefnb.run import train
cfg = lambda **o: load_config(example(**dict(output_dir={run!r}, max_steps={steps}, save_steps=2, save_total_limit=None, logging_steps=1, **o)))
class WaitForTheStopButton(TrainerCallback):
    "At the start of step {at}: tell the test, then wait until the kernel's SIGINT reached prefnb's handler."
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step != {at} - 1: return
        open({marker!r}, 'w').close()
        stop, t = signal.getsignal(signal.SIGINT).__self__, time.time()
        while stop.signal is None and time.time() - t < 120: time.sleep(0.01)
train(cfg(), callbacks=[WaitForTheStopButton()])
"""

_KERNEL_RESUME = """
import torch
res = train(cfg(resume_from_checkpoint='auto'))
torch.save({{n: p.detach() for n, p in res.trainer.model.named_parameters()}}, {weights!r})
"""

def test_the_stop_button_of_a_real_kernel_stops_at_a_fixed_step_and_resume_matches(uninterrupted, tmp_path):
    """A real Jupyter kernel (ipykernel, as nbclient and JupyterLab start it) and its interrupt, what the stop button sends:
    the cell ends in KeyboardInterrupt after step 3 with checkpoint-3 saved, and resuming in the same kernel gives the
    uninterrupted run's every later log entry and final weights."""
    import threading, time, torch
    from jupyter_client.manager import start_new_kernel
    run, marker, weights = tmp_path/'run', tmp_path/'at-step', tmp_path/'weights.pt'
    km, kc = start_new_kernel(kernel_name='python3', cwd=str(tmp_path))
    try:
        def press_stop():
            t = time.time()
            while not marker.exists() and time.time() - t < 300: time.sleep(0.02)
            km.interrupt_kernel()
        threading.Thread(target=press_stop, daemon=True).start()
        out = []
        hook = lambda m: out.append(m['content'].get('text', '')) if m['msg_type'] == 'stream' else None
        code = _KERNEL_RUN.format(here=str(Path(__file__).parent), run=str(run), steps=STEPS, at=STOP_AT, marker=str(marker))
        reply = kc.execute_interactive(code, timeout=300, output_hook=hook)['content']
        assert marker.exists() and (reply['status'], reply.get('ename')) == ('error', 'KeyboardInterrupt'), (reply, ''.join(out)[-2000:])
        assert f'stopped by signal {int(signal.SIGINT)} at step {STOP_AT}; checkpoint saved.' in ''.join(out)
        from prefnb.run import checkpoints
        assert [p.name for p in checkpoints(run)] == ['checkpoint-2', 'checkpoint-3']
        reply = kc.execute_interactive(_KERNEL_RESUME.format(weights=str(weights)), timeout=300, output_hook=hook)['content']
        assert reply['status'] == 'ok', (reply, ''.join(out)[-2000:])
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)
    logs, ref = uninterrupted[None]
    got = _logged(run)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in range(STOP_AT + 1, STEPS + 1):
        for k in ('loss', 'grad_norm', 'learning_rate', 'rewards/margins'): assert got[step][k] == logs[step][k], (step, k)
    assert_same_weights(torch.load(weights), ref)
