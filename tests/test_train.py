"""Real training runs on the embedded tiny models (CPU): every method, the CLI, reproduction with TRL
alone, interrupt and resume, and two processes."""
import json, math, os, subprocess, sys, signal, time
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT/'examples'

from _cli import run_cli as cli   # the suite's one CLI runner (tests/_cli.py; the `cli` fixture in conftest.py)

def metrics(run):
    return [json.loads(l) for l in (Path(run)/'metrics.jsonl').read_text().splitlines() if l.strip()]

def losses(run): return [m['loss'] for m in metrics(run) if 'loss' in m]

@pytest.mark.parametrize('method', ['dpo', 'ipo', 'kto', 'orpo', 'simpo'])
def test_tiny_example_trains_to_a_finite_decreasing_loss(method, tmp_path):
    run = tmp_path/method
    r = cli('train', EXAMPLES/f'tiny-{method}.yml', '--set', f'output_dir={run}', 'live_plots=false')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ls = losses(run)
    assert len(ls) >= 8 and all(math.isfinite(x) for x in ls)
    k = max(2, len(ls)//4)
    assert sum(ls[-k:]) / k < sum(ls[:k]) / k, ls                          # the loss goes down
    for f in ('config.yml', 'trl_args.json', 'data_report.json', 'tokenizer.json', 'health.json', 'metrics.png'):
        assert (run/f).exists(), f

def test_dpo_learns_the_held_out_preference(tmp_path):
    run = tmp_path/'dpo'
    r = cli('train', EXAMPLES/'tiny-dpo.yml', '--set', f'output_dir={run}', 'live_plots=false')
    assert r.returncode == 0, r.stderr[-3000:]
    ev = [m for m in metrics(run) if 'eval_rewards/accuracies' in m]
    first, last = ev[0]['eval_rewards/accuracies'], ev[-1]['eval_rewards/accuracies']
    print(f'held-out reward accuracy: first eval {first:.3f}, last eval {last:.3f}')
    assert last >= 0.7 and ev[-1]['eval_rewards/margins'] > 0

def test_existing_run_folder_is_not_overwritten(tmp_path):
    run = tmp_path/'run'
    args = ['train', EXAMPLES/'tiny-dpo.yml', '--set', f'output_dir={run}', 'max_steps=2', 'live_plots=false']
    assert cli(*args).returncode == 0
    before = (run/'metrics.jsonl').read_text()
    r = cli(*args)
    assert r.returncode == 2 and 'already holds a run' in r.stderr and 'Traceback' not in r.stderr
    assert (run/'metrics.jsonl').read_text() == before
    assert cli(*args, '--overwrite').returncode == 0

@pytest.mark.numerics
def test_trl_args_reproduce_the_first_losses_with_trl_alone(tmp_path, trl_alone):
    from prefnb.config import load_config
    from prefnb.run import train
    cfg = load_config({**yaml.safe_load((EXAMPLES/'tiny-dpo.yml').read_text()), 'output_dir': str(tmp_path/'run'),
                       'max_steps': 3, 'logging_steps': 1, 'live_plots': False})
    ours = losses(train(cfg).run_dir)[:3]
    # TRL alone: the exact TRL config prefnb wrote, the same prepared rows, TRL's own trainer
    assert trl_alone(cfg, tmp_path/'run', 3) == pytest.approx(ours, rel=1e-5, abs=1e-6)

def _wait_for(path, timeout=300):
    t = time.time()
    while time.time() - t < timeout:
        if path.exists() and path.read_text().count('\n') >= 1: return True
        time.sleep(0.2)
    return False

def test_sigterm_stops_the_cli_with_a_checkpoint_and_exit_code_130(tmp_path):
    """`prefnb train` in a terminal: SIGTERM, whichever step it lands in, ends that step, saves it and exits 130 with how to go on.
    That resume then equals the uninterrupted run (every later loss, grad norm and the final weights, stopped at a fixed step)
    is tests/reliability/test_interruptions.py."""
    import re
    run = tmp_path/'run'
    p = subprocess.Popen(['prefnb', 'train', str(EXAMPLES/'tiny-dpo.yml'), '--set', 'max_steps=500', 'logging_steps=1', 'save_steps=1000',
                          'eval_steps=0', 'live_plots=false', 'health_checks=false', f'output_dir={run}'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for(run/'metrics.jsonl')
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130 and 'Traceback' not in err, err[-2000:]
    m = re.search(r'stopped by signal 15 at step (\d+); checkpoint saved\. Run again with resume_from_checkpoint: auto to continue\.', out)
    assert m, out[-2000:]
    from prefnb.run import checkpoints
    assert [p.name for p in checkpoints(run)] == [f'checkpoint-{m[1]}'] and int(m[1]) < 500

def test_two_process_cpu_run(tmp_path):
    run = tmp_path/'ddp'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'prefnb.cli', 'train',
                        str(EXAMPLES/'tiny-dpo.yml'), '--set', f'output_dir={run}', 'max_steps=4', 'logging_steps=1',
                        'eval_steps=0', 'live_plots=false'], capture_output=True, text=True, timeout=600, env=env)
    errs = [l for l in r.stderr.splitlines() if 'Error' in l or 'error:' in l]
    assert r.returncode == 0, '\n'.join(errs[:20]) + r.stderr[:3000] + '\n...\n' + r.stderr[-2000:]   # --standalone: a free port each run
    ls = losses(run)
    assert len(ls) == 4 and all(math.isfinite(x) for x in ls)
    assert json.loads((run/'trl_args.json').read_text())['ddp_backend'] == 'gloo'

def test_merge_cli(tmp_path):
    run = tmp_path/'lora'
    r = cli('train', EXAMPLES/'tiny-dpo.yml', '--set', f'output_dir={run}', 'max_steps=2', 'adapter=lora', 'lora_r=4',
            'lora_alpha=8', 'live_plots=false')
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run/'adapter_config.json').exists()
    r = cli('merge', run, tmp_path/'merged')
    assert r.returncode == 0, r.stderr[-3000:]
    from transformers import AutoModelForCausalLM
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path/'merged')).__name__ == 'Qwen2ForCausalLM'
    r = cli('merge', tmp_path/'nope', tmp_path/'m2')
    assert r.returncode == 2 and 'Traceback' not in r.stderr

# ---- padding-free batches: the same numbers as padded ones, fewer computed tokens
PF_EPS = 1e-4   # fp32, 3 steps at lr 1e-3: packed and padded rows sum in different orders, on any CPU's kernels

@pytest.mark.numerics
@pytest.mark.parametrize('extra', [dict(), dict(adapter='lora', lora_r=8, lora_alpha=16), dict(rl='ipo')], ids=['dpo', 'dpo-lora', 'ipo'])
def test_padding_free_trains_exactly_like_padding(extra, tmp_path):
    from prefnb.config import load_config
    from prefnb.trainer import build_trainer
    seen = []
    def spy(module, args, kwargs):   # registered after prefnb's hook: sees what the model really gets
        if kwargs.get('fused_lm_head'): seen.append((tuple(kwargs['input_ids'].shape), 'position_ids' in kwargs))
    logs = {}
    for pf in (False, True):
        cfg = load_config({**yaml.safe_load((EXAMPLES/'tiny-dpo.yml').read_text()), 'output_dir': str(tmp_path/str(pf)), 'max_steps': 3,
                           'logging_steps': 1, 'live_plots': False, 'learning_rate': 1e-3, 'dpo_padding_free': pf, 'eval_steps': 0, **extra})
        tr = build_trainer(cfg)
        tr.args.save_strategy = 'no'
        if pf: tr.model.register_forward_pre_hook(spy, with_kwargs=True)
        tr.train()
        logs[pf] = [h for h in tr.state.log_history if 'loss' in h]
    assert seen and all(p for _, p in seen)                                      # every scoring call was packed
    worst = 0.0
    for a, b in zip(logs[False], logs[True], strict=True):   # fp32: tolerances scaled to what each number is computed from
        logps = abs(a['logps/chosen']) + abs(a['logps/rejected'])             # a margin is a difference of log-probs
        for k in ('loss', 'logps/chosen', 'logps/rejected', 'rewards/margins', 'grad_norm'):
            tol = PF_EPS * (abs(a[k]) if k == 'grad_norm' else abs(a[k]) + logps)
            assert abs(b[k] - a[k]) <= tol, (k, a[k], b[k], tol)
            worst = max(worst, abs(b[k] - a[k]) / tol)
    print(f'padding-free vs padded: the largest difference is {worst:.2g} of its tolerance')
    assert logs[True][-1]['loss'] != logs[True][0]['loss']                       # it trained

def test_padding_free_computes_fewer_tokens(tmp_path):
    from prefnb.config import load_config
    from prefnb.trainer import build_trainer
    from prefnb.packing import pack
    import random
    rng = random.Random(0)
    words = lambda k: ' '.join(rng.choice(['sea', 'sky', 'blue', 'wind', 'salt']) for _ in range(k))
    rows = [dict(prompt=words(rng.randint(2, 30)), chosen=words(rng.randint(1, 60)), rejected=words(rng.randint(1, 60))) for _ in range(64)]
    (tmp_path/'d.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    cfg = load_config({**yaml.safe_load((EXAMPLES/'tiny-dpo.yml').read_text()), 'output_dir': str(tmp_path/'run'), 'dpo_padding_free': True,
                       'datasets': [dict(path=str(tmp_path/'d.jsonl'), type='chatml.prompt_pairs')], 'val_set_size': 0, 'micro_batch_size': 8})
    useful = padded = packed = 0
    for b in build_trainer(cfg).get_train_dataloader():
        useful += int(b['attention_mask'].sum()); padded += b['attention_mask'].numel()
        packed += pack(dict(b, labels=b['input_ids']), one_row=False)[0]['input_ids'].numel()
    assert useful <= packed < padded
    assert pack(dict(b, labels=b['input_ids']))[0]['input_ids'].numel() == int(b['attention_mask'].sum())   # one row: no padding at all
