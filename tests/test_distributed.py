"""Two processes on a CPU, launched as a user launches them, against one process on the same global batch.
DDP through torchrun is in test_train.py (test_two_process_cpu_run); here FSDP2, in the two ways the Multi-GPU guide
gives: LoRA through `accelerate launch --config_file examples/accelerate/fsdp.yaml` (sharded checkpoints, the
adapter saved whole at the end), and full fine-tuning through torchrun with FSDP asked for in the prefnb config
(`fsdp`, `fsdp_config`, which transformers turns into its FSDP plugin), where the reference model is sharded too.
About 14 s each on 2 shared cores at load 2 (27-38 s at load 4-5), once torch and TRL are imported (the first test in
a session pays that).

Same numbers by construction: 2 processes x micro_batch_size 8 take, at each step, the 16 rows a single process with
micro_batch_size 16 takes (accelerate hands process i the i-th of each 2 consecutive batches of the one seeded
shuffle), DPO's loss is the mean over the batch and FSDP averages the gradients over the processes, so each step's
loss, metrics, gradient norm and update are the same up to float rounding (the order of the sums). Warmup is off and
the learning rate high so that every step after the first starts from weights that the earlier steps moved."""
import importlib.util, json, os, subprocess, sys
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT/'examples'
# accelerate enables FSDP on GPUs only; on a CPU it silently trains DDP. This test-only sitecustomize lifts that one
# check in the launched processes (see its docstring) and logs what fully_shard wrapped (and what DeepSpeed ran).
SHIM = Path(__file__).resolve().parent/'fixtures'/'launch_probe'
STEPS = 4
SETS = dict(max_steps=STEPS, logging_steps=1, eval_steps=0, warmup_ratio=0, learning_rate=1e-3, live_plots=False, health_checks=False,
            sample_generations=0)
LORA = dict(adapter='lora', lora_r=4, lora_alpha=8)
IN_CONFIG = dict(fsdp=['full_shard', 'auto_wrap'], fsdp_config={'fsdp_version': 2})   # the guide's prefnb-config way
KEYS = ('loss', 'grad_norm', 'rewards/margins', 'rewards/accuracies', 'logps/chosen', 'logps/rejected', 'learning_rate')

def metrics(run): return [json.loads(l) for l in (Path(run)/'metrics.jsonl').read_text().splitlines() if '"loss"' in l]

def weights(run, name):
    from safetensors.torch import load_file
    return load_file(str(Path(run)/name))

def same_weights(one, run, lora):
    """The run folder holds the whole trained model (or adapter): it loads, and it is the one process's, to within a
    hundredth of how far training moved it (Adam divides by the gradient's size, so rounding in the small ones shows)."""
    if lora:
        wa, wb = weights(one, 'adapter_model.safetensors'), weights(run, 'adapter_model.safetensors')
        start = {k: 0 * v for k, v in wa.items() if 'lora_B' in k}                  # lora_B starts at 0; lora_A is random
    else:
        from transformers import AutoModelForCausalLM
        from prefnb.zoo import resolve_model
        # (gathered shards no longer share storage, so FSDP's file also holds the tied lm_head.weight; it loads the same)
        wa, wb = (AutoModelForCausalLM.from_pretrained(str(d)).state_dict() for d in (one, run))
        start = AutoModelForCausalLM.from_pretrained(resolve_model('prefnb:tiny-chatml')).state_dict()
    assert sorted(wb) == sorted(wa)
    moved = max((wa[k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-3                                                             # it trained
    worst = max((wb[k] - wa[k]).abs().max().item() for k in wa)
    print(f'two processes vs one: weights within {worst:.1e} (training moved them up to {moved:.1e})')
    assert worst < moved / 100, (worst, moved)

@pytest.mark.parametrize('extra', [LORA, {}], ids=['lora-accelerate-config', 'full-prefnb-config'])
def test_fsdp2_two_processes_train_like_one(extra, tmp_path):
    from prefnb.config import load_config
    from prefnb.run import train
    run, log = tmp_path/'fsdp', tmp_path/'fully_shard.jsonl'
    sets = [f'{k}={json.dumps(v)}' for k, v in {**SETS, **extra, **({} if extra else IN_CONFIG), 'micro_batch_size': 8,
                                                'output_dir': str(run)}.items()]
    launch = (['-m', 'accelerate.commands.launch', '--config_file', str(EXAMPLES/'accelerate'/'fsdp.yaml'), '--main_process_port', '0']
              if extra else ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2'])
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.pathsep.join(filter(None, [str(SHIM), str(ROOT), os.environ.get('PYTHONPATH')])),
           'PREFNB_TEST_FSDP_LOG': str(log)}
    r = subprocess.run([sys.executable, *launch, '-m', 'prefnb.cli', 'train', str(EXAMPLES/'tiny-dpo.yml'), '--set', *sets],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    if not extra:   # the run folder records the config as written, not transformers' rewrite of fsdp_config
        assert {k: yaml.safe_load((run/'config.yml').read_text())[k] for k in IN_CONFIG} == IN_CONFIG
    # what was sharded, on each process: the policy block by block (the tiny model has 2), and for full fine-tuning the
    # reference too (TRL shards it whole); a LoRA run's reference is the policy with its adapter off
    calls = [json.loads(l) for l in log.read_text().splitlines()]
    for rank in (0, 1):
        mine = [c['module'] for c in calls if c['rank'] == rank]
        assert mine.count('Qwen2DecoderLayer') == 2, mine
        roots = [m for m in mine if m in ('Qwen2ForCausalLM', 'PeftModelForCausalLM')]
        assert roots == (['PeftModelForCausalLM'] if extra else ['Qwen2ForCausalLM', 'Qwen2ForCausalLM']), mine
    # one process, the same 16 rows a step
    one = train(load_config({**yaml.safe_load((EXAMPLES/'tiny-dpo.yml').read_text()), **SETS, **extra, 'micro_batch_size': 16,
                             'output_dir': str(tmp_path/'one')})).run_dir
    a, b = metrics(one), metrics(run)
    assert [m['step'] for m in b] == [m['step'] for m in a] == list(range(1, STEPS + 1))
    for x, y in zip(a, b):
        for k in KEYS: assert y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-6), (x['step'], k, x[k], y[k])
    assert len({round(m['loss'], 4) for m in a}) == STEPS              # every step moved the loss
    same_weights(one, run, lora=bool(extra))

@pytest.mark.skipif(importlib.util.find_spec('deepspeed') is None,
                    reason='deepspeed is not installed (not a prefnb dependency; on a CPU its shared-memory op compiles on first use, minutes)')
def test_deepspeed_zero3_two_processes_train_like_one(tmp_path):
    "The guide's DeepSpeed ZeRO-3 files, full fine-tuning, two CPU processes: each step as one process on the same 16 pairs."
    from prefnb.config import load_config
    from prefnb.run import train
    run, log = tmp_path/'ds', tmp_path/'deepspeed.jsonl'
    sets = [f'{k}={json.dumps(v)}' for k, v in {**SETS, 'micro_batch_size': 8, 'output_dir': str(run)}.items()]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.pathsep.join(filter(None, [str(SHIM), str(ROOT), os.environ.get('PYTHONPATH')])),
           'PREFNB_TEST_DS_LOG': str(log)}
    r = subprocess.run([sys.executable, '-m', 'accelerate.commands.launch', '--config_file', 'deepspeed-zero3.yaml', '--main_process_port', '0',
                        '-m', 'prefnb.cli', 'train', str(EXAMPLES/'tiny-dpo.yml'), '--set', *sets],
                       capture_output=True, text=True, timeout=900, env=env, cwd=EXAMPLES/'accelerate')   # ds_zero3.json is read from there
    assert r.returncode == 0, r.stderr[-4000:]
    engines = [json.loads(l) for l in log.read_text().splitlines()]
    assert {(e['rank'], e['stage'], e['world']) for e in engines} == {(0, 3, 2), (1, 3, 2)}
    assert sorted(e['optimizer'] for e in engines if e['rank'] == 0) == ['DeepSpeedZeRoOffload', 'DeepSpeedZeroOptimizer_Stage3']   # reference, policy
    one = train(load_config({**yaml.safe_load((EXAMPLES/'tiny-dpo.yml').read_text()), **SETS, 'micro_batch_size': 16,
                             'output_dir': str(tmp_path/'one')})).run_dir
    a, b = metrics(one), metrics(run)
    assert [m['step'] for m in b] == [m['step'] for m in a] == list(range(1, STEPS + 1))
    for x, y in zip(a, b):
        for k in KEYS: assert y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-6), (x['step'], k, x[k], y[k])
    same_weights(one, run, lora=False)
