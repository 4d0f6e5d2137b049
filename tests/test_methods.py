"prefnb.methods: the catalogue agrees with TRL, the planner's parts equal exact counts, the selector walks every branch, `prefnb select`."
import dataclasses, importlib, json, os
import pytest, torch
os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
from prefnb.core import UserError
from prefnb.methods import METHODS, get_method, method_table, field_methods
from prefnb.memory import GPUS, model_spec, plan_memory, weight_bytes, optimizer_bytes, activation_bytes, gpu_memory
from prefnb.recommend import data_kind, select_method
from prefnb.zoo import resolve_model, toy_rows

CPU = dict(use_cpu=True, bf16=False, report_to=[])

@pytest.fixture(scope='module')
def tiny():
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(resolve_model('prefnb:tiny-chatml'))

@pytest.fixture(scope='module')
def spec(): return model_spec('prefnb:tiny-chatml')

# --- catalogue ----------------------------------------------------------------------------------
@pytest.mark.parametrize('name', list(METHODS))
def test_catalogue_names_real_trl_classes_and_fields(name):
    m = METHODS[name]
    Config = getattr(importlib.import_module(m.config[0]), m.config[1])
    assert getattr(importlib.import_module(m.trainer[0]), m.trainer[1]).__name__ == m.trainer[1]
    fields = {f.name for f in dataclasses.fields(Config)}
    assert set(m.trl_args.values()) <= fields
    kw = {theirs: m.defaults()[ours] for ours, theirs in m.trl_args.items() if m.defaults()[ours] is not None}
    if m.loss_type is not None: kw['loss_type'] = m.loss_type
    args = Config(**CPU, **kw)
    for k, v in kw.items(): assert getattr(args, k) == v

def test_defaults_equal_trls_where_we_keep_them():
    from trl import DPOConfig, KTOConfig
    from trl.experimental.orpo import ORPOConfig
    from trl.experimental.cpo import CPOConfig
    assert DPOConfig(**CPU).beta == METHODS['dpo'].defaults()['rl_beta'] == 0.1
    assert DPOConfig(**CPU).label_smoothing == METHODS['dpo'].defaults()['dpo_label_smoothing']
    assert KTOConfig(**CPU).desirable_weight == METHODS['kto'].defaults()['kto_desirable_weight'] == 1.0
    assert ORPOConfig(**CPU).beta == METHODS['orpo'].defaults()['orpo_alpha'] == 0.1
    assert CPOConfig(**CPU).cpo_alpha == 1.0 and METHODS['simpo'].defaults()['cpo_alpha'] == 0.0   # pure SimPO on purpose

def test_method_table_and_lookup():
    t = method_table()
    assert t.splitlines()[0].startswith('| method | data | reference model |') and len(t.splitlines()) == 7
    assert '| **SimPO** | paired | no | 1x | `CPOTrainer` (`loss_type=simpo`) |' in t
    with pytest.raises(UserError, match="rl: got 'rpo', expected one of dpo, ipo, kto, orpo, simpo"): get_method('rpo')
    assert field_methods('kto_undesirable_weight') == ['kto'] and field_methods('seed') == []

# --- model size -----------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['prefnb:tiny-chatml', 'prefnb:tiny-llama'])
def test_model_spec_equals_real_counts(name):
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    real = AutoModelForCausalLM.from_pretrained(resolve_model(name))
    s = model_spec(name)
    assert s.params == sum(p.numel() for p in real.parameters())
    assert s.vocab == real.config.vocab_size and s.layers == real.config.num_hidden_layers
    lin = sum(p.numel() for mod in real.model.modules() if isinstance(mod, torch.nn.Linear) for p in mod.parameters())
    assert s.linear == lin
    for r in (4, 16):
        pm = get_peft_model(AutoModelForCausalLM.from_pretrained(resolve_model(name)), LoraConfig(r=r, target_modules='all-linear'))
        assert s.lora_params(r) == sum(p.numel() for p in pm.parameters() if p.requires_grad)

def test_model_spec_errors_and_estimates():
    with pytest.raises(UserError, match="base_model: cannot read the config of '/nope'"): model_spec('/nope')
    e = model_spec(1e9)
    assert e.estimated and e.params == 1_000_000_000 and e.hidden % 128 == 0

# --- planner parts against exact counts -------------------------------------------------------------
def test_weight_bytes_exact(tiny, spec):
    assert weight_bytes(spec, 'fp32') == sum(p.numel()*p.element_size() for p in tiny.parameters())
    assert weight_bytes(spec, 'bf16') == sum(p.numel()*2 for p in tiny.parameters())
    assert weight_bytes(spec, '4bit') == spec.linear*4.127/8 + (spec.params - spec.linear)*4   # prepare_model_for_kbit_training upcasts the rest

def test_adamw_state_exact(tiny, spec):
    import copy
    m = copy.deepcopy(tiny)
    opt = torch.optim.AdamW(m.parameters())
    m(torch.tensor([[1, 2, 3, 4]]), labels=torch.tensor([[1, 2, 3, 4]])).loss.backward(); opt.step()
    state = sum(t.numel()*t.element_size() for s in opt.state.values() for k, t in s.items() if k != 'step')
    assert state == optimizer_bytes(spec.params, 4) == 8*spec.params
    grads = sum(p.grad.numel()*p.grad.element_size() for p in m.parameters())
    assert plan_memory(spec, 'dpo', dtype='fp32').parts['gradients'] == grads

def test_lora_adamw_state_exact(spec):
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    pm = get_peft_model(AutoModelForCausalLM.from_pretrained(resolve_model('prefnb:tiny-chatml')), LoraConfig(r=8, target_modules='all-linear'))
    train = [p for p in pm.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in train)
    opt = torch.optim.AdamW(train)
    pm(torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward(); opt.step()
    state = sum(t.numel()*t.element_size() for s in opt.state.values() for k, t in s.items() if k != 'step')
    p = plan_memory(spec, 'dpo', adapter='lora', lora_r=8)
    assert p.parts['optimizer'] == state and p.parts['lora'] == sum(q.numel()*4 for q in train) == p.parts['gradients']

def test_reference_part_per_method_and_setup(spec):
    full = weight_bytes(spec, 'fp32')   # TRL builds the reference in the policy's dtype: fp32 master weights
    for name in ('dpo', 'ipo', 'kto'): assert plan_memory(spec, name).parts['reference'] == full
    for name in ('orpo', 'simpo'): assert plan_memory(spec, name).parts['reference'] == 0
    assert plan_memory(spec, 'dpo', adapter='lora').parts['reference'] == 0
    assert plan_memory(spec, 'dpo', precompute_ref_log_probs=True).parts['reference'] == 0

def test_activation_and_logits_parts(spec):
    p = plan_memory(spec, 'dpo', micro_batch_size=3, sequence_len=100)
    assert p.parts['logits'] == 2*3*100*spec.vocab*6    # a tiny vocabulary: one tile, bf16 logits + fp32 softmax
    assert p.parts['activations'] == activation_bytes(spec, 600, True)
    assert activation_bytes(spec, 600, False) > activation_bytes(spec, 600, True)
    assert plan_memory(spec, 'kto', micro_batch_size=3, sequence_len=100).parts['activations'] == activation_bytes(spec, 300, True)

def test_fit_and_advice():
    p = plan_memory(7e9, 'dpo', gpu='T4')
    assert p.fits is False and p.advice[:2] == ['use a LoRA adapter (adapter: lora)', 'load the base in 4-bit (adapter: qlora, load_in_4bit: true)']
    assert p.advice[-1].startswith('then it needs ~') and p.advice[-1].endswith('GiB and fits')
    assert plan_memory(0.5e9, 'dpo', adapter='lora', gpu='T4').fits is True
    assert plan_memory(400e9, 'dpo', gpu='T4').advice[-1] == 'still does not fit: use a smaller model or a larger GPU'
    assert set(GPUS) == {'T4', '2xT4', 'P100', 'L4', 'A100-40GB', 'A100-80GB', 'H100-80GB'} and GPUS['T4'][1:] == (7.5, 1)
    assert gpu_memory('2xT4') == ('2xT4', 15.0)   # per GPU: each process holds a whole copy
    assert gpu_memory('h100') == ('H100-80GB', 79.1)
    with pytest.raises(UserError, match="optimizer: got 'lion'"): plan_memory(1e9, optimizer='lion')

# --- selector: every branch ---------------------------------------------------------------------------
@pytest.mark.parametrize('kw,method,reason', [
    (dict(data='unpaired'), 'kto', 'only thumbs-up/down labels (unpaired data) -> KTO'),
    (dict(data='paired', sft_done=False), 'orpo', 'paired data, no separate SFT stage -> ORPO does SFT and preference in one stage'),
    (dict(data='paired', memory_limited=True, length_sensitive=True), 'simpo', 'paired, memory-limited and length-sensitive -> SimPO (no reference, length-normalised reward)'),
    (dict(data='paired', memory_limited=True), 'orpo', 'paired data, memory-limited -> ORPO (no reference model, about half the memory)'),
    (dict(data='paired', length_sensitive=True), 'simpo', 'paired data, length-sensitive -> SimPO (length-normalised reward)'),
    (dict(data='paired', overfitting=True), 'ipo', 'paired data, DPO overfits -> IPO (bounded margin target)'),
    (dict(data='paired'), 'dpo', 'paired preferences -> DPO, the default'),
])
def test_selector_branches(kw, method, reason):
    s = select_method(**kw)
    assert s.method == method and s.reasons == [reason] and s.settings['rl'] == method
    for k, v in METHODS[method].defaults().items():
        if v is not None: assert s.settings[k] == v

def test_selector_detects_data_kind_and_memory():
    assert select_method(list(toy_rows('kto', 2)[0])).method == 'kto'
    assert select_method(list(toy_rows('orca', 2)[0])).method == 'dpo'
    big = select_method('paired', model=70e9, gpu='T4')
    assert big.method == 'orpo' and big.reasons[0].startswith('DPO on T4: full fine-tuning ~') and big.reasons[0].count('does not fit') == 3
    assert select_method('paired', model=70e9, gpu='T4', length_sensitive=True).method == 'simpo'
    ok = select_method('paired', model=7e9, gpu='A100-40GB')
    assert ok.method == 'dpo' and ok.settings['adapter'] == 'lora' and ok.settings['learning_rate'] == 5e-6
    assert [a['method'] for a in ok.alternatives] == ['ipo', 'orpo', 'simpo']
    mem = {a['method']: a['memory_gib'] for a in ok.alternatives}
    assert mem['ipo'] == round(plan_memory(7e9, 'ipo', adapter='lora').total_gib, 2)
    q = select_method('paired', model=8e9, gpu='T4', memory_limited=False)
    assert q.settings['adapter'] == 'qlora' and q.settings['load_in_4bit'] is True
    with pytest.raises(UserError, match="data: cannot tell the data kind from columns"): data_kind(['text', 'score'])

# --- CLI -----------------------------------------------------------------------------------------------
def test_cli_select_text_and_json(tmp_path, cli):
    sel = lambda *args: cli('select', *args)
    r = sel('--data', 'paired', '--length-sensitive')
    assert r.returncode == 0 and r.stdout.startswith('method: simpo\n  because paired data, length-sensitive')
    from prefnb.zoo import write_toy_file
    f = write_toy_file(tmp_path/'kto.jsonl', 'kto', 4)
    d = json.loads(sel('--dataset', str(f), '--params', '1e9', '--gpu', 'T4', '--json').stdout)
    assert d['method'] == 'kto' and d['settings']['micro_batch_size'] == 2 and d['alternatives'] == []

def test_cli_select_user_errors(cli):
    sel = lambda *args: cli('select', *args)
    r = sel('--dataset', '/no/such.jsonl')
    assert r.returncode == 2 and "--dataset: no file '/no/such.jsonl'" in r.stderr and 'Traceback' not in r.stderr
    r = sel('--data', 'paired', '--gpu', 'V100')
    assert r.returncode == 2 and "gpu: got 'V100'" in r.stderr
    assert sel('--help').returncode == 0
