"The device plan (prefnb.memory.device_plan) for the GPUs our users get, and that training follows it: precision, dtypes, attention, GPUs and refusals, all proved on a CPU."
import math, os, tempfile, warnings
import pytest
import torch
from prefnb.config import load_config
from prefnb.core import UserError, auto_precision, device_info
from prefnb.memory import device_plan, format_device_plan, gpu_facts
from prefnb.methods import METHODS

ADAPTERS = (None, 'lora', 'qlora')
DATA = dict(paired=[dict(path='prefnb:toy-orca', type='chatml.intel')], unpaired=[dict(path='prefnb:toy-kto', type='chatml.prompt_pairs')])

def config(rl, adapter=None, **kw):
    return load_config(dict(dict(base_model='prefnb:tiny-chatml', rl=rl, adapter=adapter, datasets=DATA[METHODS[rl].data],
                                 sequence_len=128, micro_batch_size=2, max_steps=1, output_dir=tempfile.mkdtemp()), **kw))

def facts(name):
    "A GPU's facts with bitsandbytes and flash-attn installed, so only the hardware decides."
    return gpu_facts(name) | dict(bitsandbytes='0.50.0', flash_attn=True)

# device: (precision, attention, GPUs used, refused)
TABLE = {
    'cpu':       ('fp32', 'sdpa', 0, False),
    'T4':        ('fp16', 'sdpa', 1, False),
    '2xT4':      ('fp16', 'sdpa', 1, False),   # a notebook: GPU 0 only
    'P100':      ('fp16', 'sdpa', 1, True),    # compute capability 6.0
    'L4':        ('bf16', 'flash_attention_2', 1, False),
    'A100-40GB': ('bf16', 'flash_attention_2', 1, False),
    'A100-80GB': ('bf16', 'flash_attention_2', 1, False),
    'H100-80GB': ('bf16', 'flash_attention_2', 1, False),
}
DTYPE = dict(fp32='float32', fp16='float16', bf16='bfloat16')

@pytest.mark.parametrize('device', TABLE)
@pytest.mark.parametrize('rl', METHODS)
@pytest.mark.parametrize('adapter', ADAPTERS)
def test_device_plan_table(device, rl, adapter):
    precision, attention, gpus, refused = TABLE[device]
    p = device_plan(config(rl, adapter), facts(device))
    compute = DTYPE[precision]
    assert (p['precision'], p['compute_dtype'], p['attention'], p['gpus'], bool(p['refusals'])) == (precision, compute, attention, gpus, refused)
    assert p['weight_dtype'] == {None: 'float32', 'lora': compute, 'qlora': 'nf4'}[adapter]
    assert p['load_dtype'] == ('float32' if adapter is None else compute)
    assert (p['bf16'], p['fp16'], p['use_cpu']) == (precision == 'bf16', precision == 'fp16', device == 'cpu')
    if refused: assert p['refusals'] == [f"P100 has compute capability 6: PyTorch's CUDA builds (Kaggle's included) ship no kernels for it and "
                                         "TRL's Triton log-prob kernels need 7.0 or newer. Pick a T4 instead (Kaggle: Settings > Accelerator > "
                                         "GPU T4 x2; Colab: Runtime > Change runtime type > T4 GPU)."]
    two = [a for a in p['advice'] if 'no launcher' in a]
    assert bool(two) == (device == '2xT4')
    if two: assert 'torchrun --nproc_per_node 2 -m prefnb.cli train CONFIG' in two[0] and 'accelerate launch --num_processes 2' in two[0]
    assert any("bitsandbytes' CPU backend" in a for a in p['advice']) == (device == 'cpu' and adapter == 'qlora')

def test_flash_attention_needs_the_package_and_ampere():
    cfg = config('dpo', 'lora')
    assert device_plan(cfg, facts('A100-40GB') | dict(flash_attn=False))['attention'] == 'sdpa'
    t4 = device_plan(cfg, facts('T4'))
    assert t4['attention'] == 'sdpa' and any('FlashAttention 2 needs compute capability 8.0' in a for a in t4['advice'])

def test_explicit_precisions():
    assert device_plan(config('dpo', bf16=True), facts('T4'))['refusals'][0].startswith('bf16: true, but T4 (compute capability 7.5) has no native bf16')
    assert device_plan(config('dpo', bf16=False), facts('A100-40GB'))['precision'] == 'fp16'
    assert device_plan(config('dpo', bf16=False, fp16=False), facts('A100-40GB'))['precision'] == 'fp32'
    p = device_plan(config('dpo', fp16=True), facts('L4'))
    assert (p['precision'], p['reason']) == ('fp16', 'fp16: true: fp16 with loss scaling, trainable weights kept in fp32')
    assert 'mixed precision needs a CUDA GPU' in device_plan(config('dpo', fp16=True), facts('cpu'))['refusals'][0]
    assert 'needs bitsandbytes' in device_plan(config('dpo', 'qlora'), gpu_facts('T4') | dict(bitsandbytes=None))['refusals'][0]

def test_under_a_launcher_each_process_has_a_gpu():
    p = device_plan(config('kto', 'qlora'), facts('2xT4') | dict(world_size=2, flash_attn=False))
    assert (p['gpus'], p['processes'], p['advice']) == (2, 2, [])

def test_device_info_does_not_count_emulated_bf16(monkeypatch):
    "torch.cuda.is_bf16_supported() says True on a T4 unless asked without emulation; device_info asks that way."
    def fake(cap):
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
        monkeypatch.setattr(torch.cuda, 'mem_get_info', lambda i=0: (14*2**30, 15*2**30))
        monkeypatch.setattr(torch.cuda, 'get_device_name', lambda i=0: 'Tesla T4' if cap < (8, 0) else 'NVIDIA A100')
        monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
        monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda i=0: cap)
        monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda including_emulation=True: including_emulation or cap >= (8, 0))
        return device_info()
    t4, a100 = fake((7, 5)), fake((8, 0))
    assert (t4['bf16'], t4['capability'], auto_precision(t4)) == (False, 7.5, 'fp16')
    assert (a100['bf16'], a100['capability'], auto_precision(a100)) == (True, 8.0, 'bf16')
    assert device_plan(config('dpo', 'lora'), t4)['precision'] == 'fp16'

def test_the_plan_prints_every_decision():
    text = format_device_plan(device_plan(config('dpo', 'qlora'), facts('2xT4')))
    for line in ('device          2xT4 (compute capability 7.5)', 'compute dtype   float16', 'base weights    nf4',
                 'trainable       float32', 'attention       sdpa', 'GPUs            1 (1 process)', 'note: 2 GPUs and no launcher'):
        assert line in text, text

# --- training follows the plan ----------------------------------------------------------------------------
def test_a_refusal_comes_before_anything_is_loaded(monkeypatch):
    import prefnb.trainer as T
    def boom(*a, **k): raise AssertionError('loaded something')
    monkeypatch.setattr(T, 'load_tokenizer', boom); monkeypatch.setattr(T, 'load_model', boom)
    with pytest.raises(UserError, match='P100 has compute capability 6'): T.build_trainer(config('dpo', 'qlora'), info=facts('P100'))

def _forced_fp16(monkeypatch):
    "The plan of a T4 (fp16), run on this CPU: TRL then builds exactly what it builds on the T4, on CPU tensors."
    import prefnb.trainer as T
    from prefnb.models import checked_plan
    monkeypatch.setattr(T, 'checked_plan', lambda cfg, info=None: checked_plan(cfg, facts('T4')) | dict(kind='cpu', use_cpu=True))

@pytest.mark.parametrize('rl', METHODS)
@pytest.mark.parametrize('adapter', ADAPTERS)
def test_every_trainable_parameter_is_fp32_under_the_fp16_plan(rl, adapter, monkeypatch):
    from prefnb.trainer import build_trainer
    _forced_fp16(monkeypatch)
    warnings.filterwarnings('ignore')
    tr = build_trainer(config(rl, adapter))
    trainable = {n: p.dtype for n, p in tr.model.named_parameters() if p.requires_grad}
    assert trainable and set(trainable.values()) == {torch.float32}, trainable
    assert tr.args.fp16 and not tr.args.bf16 and tr.optimizer is None
    assert tr.prefnb['precision']['reason'].endswith('trainable weights kept in fp32')
    frozen = {p.dtype for p in tr.model.parameters() if not p.requires_grad}
    if adapter == 'lora': assert torch.float16 in frozen       # the frozen base stays 16-bit
    if adapter == 'qlora': assert torch.uint8 in frozen or torch.float16 in frozen   # 4-bit storage (float16 quant_storage)

def test_without_the_cast_trl_leaves_bf16_adapters(monkeypatch):
    "Why the cast exists: TRL 1.16 turns a quantised model's LoRA weights into bf16, which the fp16 grad scaler cannot unscale."
    import prefnb.trainer as T
    _forced_fp16(monkeypatch)
    monkeypatch.setattr(T, 'keep_trainable_fp32', lambda model: 0)
    tr = T.build_trainer(config('dpo', 'qlora'))
    assert {p.dtype for p in tr.model.parameters() if p.requires_grad} == {torch.bfloat16}

# --- the fp16 plan takes real optimizer steps ----------------------------------------------------------------
class _Steps:
    "Per optimizer step: the scale before and after, how many trainable tensors changed, whether accelerate skipped it."
    def __init__(self, trainer): self.trainer, self.rows, self.autocast = trainer, [], set()
    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        self.before, self.scale = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, self.trainer.accelerator.scaler.get_scale()
    def on_optimizer_step(self, args, state, control, model=None, **kw):
        changed = sum(not torch.equal(self.before[n], p) for n, p in model.named_parameters() if p.requires_grad)
        self.rows.append(dict(scale=self.scale, after=self.trainer.accelerator.scaler.get_scale(), changed=changed,
                              skipped=self.trainer.accelerator.optimizer_step_was_skipped))

def _fp16_trainer(rl, adapter, monkeypatch, init_scale=2.**16):
    """The T4's fp16 plan trained on this CPU through the trainer's own path (prefnb's build_trainer, transformers' Trainer,
    accelerate's autocast wrapper of model.forward, its GradScaler in backward, clip_grad_norm_ and the optimizer step).
    One thing differs from a T4, and it is the only thing accelerate refuses on CPU: its constructor sets
    `native_amp = False` and no scaler for fp16 on a 'cpu' device ("fp16 mixed precision requires a device in (xpu, cuda, ...)").
    We set the two attributes it would set on CUDA, with torch's CPU GradScaler, before `train()` prepares model and optimizer."""
    from transformers import TrainerCallback
    import prefnb.trainer as T
    _forced_fp16(monkeypatch)
    warnings.filterwarnings('ignore')
    cfg = config(rl, adapter, max_steps=3, logging_steps=1, learning_rate=1e-3, warmup_ratio=0, sequence_len=64, eval_steps=0)
    tr = T.build_trainer(cfg)
    assert tr.args.fp16 and tr.accelerator.mixed_precision == 'fp16' and tr.accelerator.scaler is None   # what accelerate does on CPU
    tr.accelerator.native_amp, tr.accelerator.scaler = True, torch.amp.GradScaler('cpu', init_scale=init_scale)
    steps = _Steps(tr); tr.add_callback(type('StepsCallback', (TrainerCallback,), {k: getattr(steps, k) for k in ('on_pre_optimizer_step', 'on_optimizer_step')}))
    def seen(module, args, out): steps.autocast.add((torch.is_autocast_enabled('cpu'), torch.get_autocast_dtype('cpu')))
    for n, m in tr.model.named_modules():
        if n.endswith('mlp.down_proj'): m.register_forward_hook(seen)
    tr.args.save_strategy = 'no'
    start = {n: p.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}
    tr.train()
    return tr, steps, start

@pytest.mark.parametrize('rl,adapter', [('dpo', None), ('dpo', 'lora'), ('dpo', 'qlora'), ('kto', 'lora'),
                                        ('orpo', 'lora'), ('simpo', None)])
def test_the_fp16_plan_takes_real_steps_under_autocast_with_a_grad_scaler(rl, adapter, monkeypatch):
    tr, steps, start = _fp16_trainer(rl, adapter, monkeypatch)
    assert steps.autocast == {(True, torch.float16)}                                  # every forward ran under fp16 autocast
    logs = [h for h in tr.state.log_history if 'loss' in h]
    assert len(logs) == 3 and all(math.isfinite(h['loss']) and math.isfinite(h['grad_norm']) for h in logs), logs
    assert len(steps.rows) == 3 and not any(r['skipped'] for r in steps.rows), steps.rows   # no overflow at 2**16: every step taken
    assert all(r['scale'] == r['after'] == 2.**16 for r in steps.rows)                 # growth comes after 2000 clean steps
    master = [p for g in tr.optimizer.param_groups for p in g['params']]
    assert master and {p.dtype for p in master} == {torch.float32}                   # the optimizer steps fp32 master weights
    moved = {n for n, p in tr.model.named_parameters() if p.requires_grad and not torch.equal(start[n], p)}
    assert moved == set(start), set(start) - moved                                   # every trainable tensor was updated
    frozen = {p.dtype for p in tr.model.parameters() if not p.requires_grad and p.is_floating_point()}
    if adapter == 'lora': assert frozen == {torch.float16}                            # the frozen base stays fp16

def test_an_overflow_under_the_fp16_plan_skips_the_step_and_lowers_the_scale(monkeypatch):
    "A scale of 1e30 overflows fp16 gradients: the scaler must skip each step (weights untouched) and halve the scale."
    tr, steps, start = _fp16_trainer('dpo', 'lora', monkeypatch, init_scale=1e30)
    assert [r['skipped'] for r in steps.rows] == [True] * 3 and all(r['changed'] == 0 for r in steps.rows), steps.rows
    assert [r['after'] / r['scale'] for r in steps.rows] == [0.5] * 3
    assert all(torch.equal(start[n], p) for n, p in tr.model.named_parameters() if p.requires_grad)
    assert all(math.isnan(h['grad_norm']) for h in tr.state.log_history if 'grad_norm' in h)   # what the NaN guard of prefnb.run stops on
