"Health rules on real tiny TRL runs, the doctor CLI, and false-alarm sweeps of healthy synthetic runs."
import contextlib, io, json
from pathlib import Path
import pytest
from prefnb.core import UserError
from prefnb.health import (RULES, ALL_METHODS, HealthCallback, diagnose, load_history, synthetic_run, detect_method,
                           write_health, doctor_cli)

FIX = Path(__file__).parent/'fixtures'

def _quiet(tr):
    from transformers.trainer_callback import PrinterCallback
    tr.remove_callback(PrinterCallback)
    return tr

def tiny_dpo(out, lr=5e-4, steps=30, beta=0.1, callbacks=(), data=None, seed=0, n=128):
    from trl import DPOConfig, DPOTrainer
    from prefnb.zoo import resolve_model, toy_dataset
    args = DPOConfig(output_dir=str(out), use_cpu=True, bf16=False, report_to=[], save_strategy='no', gradient_checkpointing=False,
                     logging_steps=1, learning_rate=lr, max_steps=steps, beta=beta, per_device_train_batch_size=4,
                     disable_tqdm=True, seed=seed)
    tr = _quiet(DPOTrainer(model=resolve_model('prefnb:tiny-chatml'), args=args,
                           train_dataset=toy_dataset('prefnb:toy-pairs', n, seed=seed) if data is None else data, callbacks=list(callbacks)))
    tr.train()
    return tr

def tiny_kto(out, steps=30, sort_by_label=False, callbacks=()):
    from trl import KTOConfig, KTOTrainer
    from prefnb.zoo import resolve_model, toy_dataset
    ds = toy_dataset('prefnb:toy-kto', 128)
    if sort_by_label: ds = ds.sort('label', reverse=True)     # all desirable first: unpaired, never shuffled
    args = KTOConfig(output_dir=str(out), use_cpu=True, bf16=False, report_to=[], save_strategy='no', gradient_checkpointing=False,
                     logging_steps=1, learning_rate=5e-4, max_steps=steps, per_device_train_batch_size=4,
                     disable_tqdm=True, seed=0)
    tr = _quiet(KTOTrainer(model=resolve_model('prefnb:tiny-chatml'), args=args, train_dataset=ds, callbacks=list(callbacks)))
    tr.train()
    return tr

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp('health')
    buf = io.StringIO()
    cb = HealthCallback('dpo', out=buf)
    from prefnb.zoo import toy_dataset
    same = toy_dataset('prefnb:toy-pairs', 64).map(lambda r: dict(rejected=r['chosen']))   # chosen == rejected in every pair
    same_cb = HealthCallback('dpo', write=False, out=io.StringIO())
    r = dict(ok=tiny_dpo(d/'ok'), lr0=tiny_dpo(d/'lr0', lr=0.0, steps=10, callbacks=[cb]),
             beta0=tiny_dpo(d/'beta0', beta=0.0, steps=10), kto=tiny_kto(d/'kto'),
             kto_sorted=tiny_kto(d/'kto_sorted', steps=24, sort_by_label=True),
             same=tiny_dpo(d/'same', steps=12, data=same, callbacks=[same_cb]))
    r['dir'], r['printed'], r['cb'], r['same_cb'] = d, buf.getvalue(), cb, same_cb
    return r

def _errors(fs): return [f.rule for f in fs if f.severity == 'error']

def test_healthy_dpo_run_has_no_errors(runs):
    fs = diagnose(runs['ok'].state.log_history, 'dpo')
    assert _errors(fs) == [], fs
    assert 'loss_pinned' not in {f.rule for f in fs}

@pytest.mark.parametrize('seed', range(5))
def test_health_demo_is_healthy_by_design_for_any_seed(seed, tmp_path):
    "14_health's demo run (24 steps at 2e-3 on 64 toy pairs) must not depend on one lucky seed."
    import statistics
    tr = tiny_dpo(tmp_path, lr=2e-3, steps=24, n=64, seed=seed)
    h = load_history(tr.state.log_history)
    assert _errors(diagnose(h, 'dpo')) == []
    assert statistics.median(e['rewards/margins'] for e in h[-5:]) > 0.1     # learnt, with room to spare

def test_lr0_pins_loss_at_ln2(runs):
    h = runs['lr0'].state.log_history
    assert h[0]['loss'] == pytest.approx(0.6931471805599453, abs=1e-6)
    fs = diagnose(h, 'dpo')
    assert [f.rule for f in fs] == ['loss_pinned']
    assert fs[0].first_step == 3 and fs[0].steps == list(range(3, 11))

def test_beta0_pins_loss_too(runs):
    fs = diagnose(runs['beta0'].state.log_history, 'dpo')
    assert [f.rule for f in fs] == ['loss_pinned']      # grad norm is 0 too; the root cause is said once

def test_identical_pairs_pin_margins_at_0_while_rewards_move(runs):
    "chosen == rejected: the margin is exactly 0 and the loss ln 2, but the rewards drift, so loss_pinned misses it; margins_pinned does not."
    h = load_history(runs['same'].state.log_history)
    assert {e['rewards/margins'] for e in h} == {0.0}
    assert all(e['loss'] == pytest.approx(0.6931471805599453, abs=1e-6) for e in h)
    assert max(abs(e['rewards/chosen']) for e in h[1:]) > 1e-4            # the rewards are not pinned
    fs = diagnose(h, 'dpo')
    assert [f.rule for f in fs] == ['margins_pinned']                     # zero accuracies, tiny gradients: said once, as the root cause
    assert fs[0].first_step == 4 and fs[0].steps == list(range(4, 13))
    assert fs[0].detail.startswith('rewards/margins exactly 0 in each of the last 3 logged steps while rewards/chosen = ')
    assert fs[0].cause.startswith('chosen and rejected are identical in every pair')
    out = runs['same_cb'].out.getvalue()
    assert out.count('prefnb health, ') == 1 and out.count('prefnb health, [error] margins_pinned') == 1

def test_margins_pinned_quiet_on_real_runs_that_are_not_identical(runs):
    assert 'margins_pinned' not in {f.rule for f in diagnose(runs['ok'].state.log_history, 'dpo')}
    for name in ('lr0', 'beta0'):    # rewards at 0 as well: loss_pinned is the finding, margins_pinned is not said on top
        assert [f.rule for f in diagnose(runs[name].state.log_history, 'dpo')] == ['loss_pinned']
    assert 'margins_pinned' not in {f.rule for f in diagnose(runs['kto'].state.log_history, 'kto')}

@pytest.mark.parametrize('method', ['dpo', 'ipo', 'simpo', 'orpo'])
def test_margins_pinned_on_synthetic_identical_pairs(method):
    for seed in range(10):
        h = synthetic_run(method, n=40, seed=seed)
        assert 'margins_pinned' not in {f.rule for f in diagnose(h, method)}
        for e in h[1:]: e.update({'rewards/rejected': e['rewards/chosen'], 'rewards/margins': 0.0})
        fs = {f.rule: f for f in diagnose(h, method)}
        assert 'margins_pinned' in fs and fs['margins_pinned'].first_step == 4, (seed, list(fs))

def test_callback_prints_once_and_writes_reports(runs):
    out = runs['printed']
    assert out.count('prefnb health, [error] loss_pinned') == 1
    assert out.rstrip().splitlines()[-4].startswith('prefnb health (dpo): 1 error') or 'prefnb health (dpo): 1 error' in out
    j = json.loads((runs['dir']/'lr0'/'health.json').read_text())
    assert (j['healthy'], j['method'], [f['rule'] for f in j['findings']]) == (False, 'dpo', ['loss_pinned'])
    assert (runs['dir']/'lr0'/'health.md').read_text().startswith('# Training health\n\nprefnb health (dpo): 1 error')
    assert [f.rule for f in runs['cb'].findings] == ['loss_pinned']

def test_kto_healthy_and_detected(runs):
    h = runs['kto'].state.log_history
    assert detect_method(h) == 'kto'
    assert not any('rewards/accuracies' in e for e in h)
    fs = diagnose(h)
    assert _errors(fs) == [], fs

def test_kto_one_label_batches(runs):
    h = runs['kto_sorted'].state.log_history
    fs = {f.rule: f for f in diagnose(h, 'kto')}
    assert 'kto_one_label_batches' in fs
    assert fs['kto_one_label_batches'].first_step == 8     # the first full window of 8 logged steps
    assert 'kto_one_label_batches' not in {f.rule for f in diagnose(runs['kto'].state.log_history, 'kto')}

def test_trainer_state_fixture_roundtrip(runs, tmp_path):
    "TRL's trainer_state.json (saved from the real runs, kept in tests/fixtures) reads the same as log_history."
    for name in ('ok', 'lr0'):
        p = tmp_path/f'{name}.json'; runs[name].state.save_to_json(str(p))
        assert load_history(p) == load_history(runs[name].state.log_history)
    for name, want in (('health_dpo_trainer_state.json', []), ('health_dpo_lr0_trainer_state.json', ['loss_pinned'])):
        assert _errors(diagnose(FIX/name)) == want

def test_doctor_cli_exit_codes(runs, tmp_path, cli):
    _doctor = lambda *args: cli('doctor', *args, env=dict(HF_HUB_OFFLINE='1'))
    ok = _doctor(FIX/'health_dpo_trainer_state.json')
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith('prefnb health (dpo): ')
    bad = _doctor(FIX/'health_dpo_lr0_trainer_state.json', '--json')
    assert bad.returncode == 3, bad.stderr
    j = json.loads(bad.stdout)
    assert (j['healthy'], j['findings'][0]['rule'], j['findings'][0]['first_step'], j['steps']) == (False, 'loss_pinned', 3, 10)
    missing = _doctor(tmp_path/'nope')
    assert missing.returncode == 2
    assert missing.stderr == f'error: {tmp_path}/nope: no such file or folder; pass a run folder, metrics.jsonl or trainer_state.json\n'
    (tmp_path/'garbage.json').write_text('{"a": 1}')
    g = _doctor(tmp_path/'garbage.json')
    assert g.returncode == 2 and "a JSON object without 'log_history'" in g.stderr
    h = _doctor('--help')
    assert h.returncode == 0 and 'usage: prefnb doctor' in h.stdout

def test_doctor_run_folder_uses_config_method(runs, tmp_path, cli):
    "A run folder as prefnb train writes it: metrics.jsonl (+ step) and config.yml with rl."
    _doctor = lambda *args: cli('doctor', *args, env=dict(HF_HUB_OFFLINE='1'))
    d = tmp_path/'run'; d.mkdir()
    (d/'metrics.jsonl').write_text('\n'.join(json.dumps(e) for e in runs['kto_sorted'].state.log_history))
    (d/'config.yml').write_text('base_model: prefnb:tiny-chatml\nrl: kto\n')
    r = _doctor(d, '--json')
    assert r.returncode == 3 and json.loads(r.stdout)['method'] == 'kto'
    assert 'kto_one_label_batches' in [f['rule'] for f in json.loads(r.stdout)['findings']]
    r = _doctor(d, '--method', 'dpo', '--json')
    assert json.loads(r.stdout)['method'] == 'dpo'

@pytest.mark.parametrize('method', ALL_METHODS)
def test_no_false_alarms_on_noisy_healthy_runs(method):
    "100 seeds x 2 lengths: no errors at all, warnings on at most 2% of healthy runs."
    warned = 0
    for seed in range(100):
        for n in (40, 100):
            fs = diagnose(synthetic_run(method, n=n, seed=seed), method)
            assert not _errors(fs), (seed, n, fs)
            warned += bool(fs)
    assert warned <= 4, warned
