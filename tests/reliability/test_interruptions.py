"""Interruptions never lose work: a checkpoint half-written by a kill -9 is skipped and resume picks the newest complete one;
a NaN/inf loss stops training at that step with the message and the last good checkpoint intact; a finished run folder is
never overwritten silently. (SIGTERM + resume equal to an uninterrupted run is in tests/test_train.py.)"""
import json, math, shutil
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
