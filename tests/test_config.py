"prefnb.config: every validation rule fires on a bad config with its exact message and stays quiet on a good one; the YAML round trip; the `prefnb check` contract."
import json, warnings
from pathlib import Path
import pytest, yaml
from prefnb.core import UserError
from prefnb.config import (PrefConfig, RULES, AXOLOTL_KEYS, DPO_LOSS_TYPES, check_config, load_config, read_config,
                           validate_config, method_trl_args, _short)
from prefnb.templates import CHAT_TEMPLATES
from prefnb.zoo import toy_rows

FIX = Path(__file__).parent/'fixtures'/'axolotl'
GOOD = dict(base_model='prefnb:tiny-chatml', rl='dpo', datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')])
T4 = dict(kind='cuda', name='Tesla T4', bf16=False)
L4 = dict(kind='cuda', name='NVIDIA L4', bf16=True)
KTO_STR = [dict(r, label=str(r['label'])) for r in toy_rows('kto', 4)]
NO_TEMPLATE = Path(__import__('tempfile').mkdtemp(), 'base-model'); NO_TEMPLATE.mkdir(); (NO_TEMPLATE/'tokenizer_config.json').write_text('{}')

# rule id: (bad overrides, data, device, exact message, good overrides, good data, good device)
CASES = {
    'unknown-key': (dict(lerning_rate=1e-6), None, None,
        'lerning_rate: unknown option (neither prefnb nor axolotl knows it); did you mean learning_rate? Fix the spelling or remove it.',
        dict(learning_rate=1e-6), None, None),
    'schema': (dict(micro_batch_size=0), None, None, 'micro_batch_size: got 0: Input should be greater than or equal to 1',
        dict(micro_batch_size=1), None, None),
    'removed-option': (dict(rpo_alpha=0.5), None, None,
        'rpo_alpha: 0.5 was removed in TRL 1.16; use dpo_loss_type: [sigmoid, sft] with dpo_loss_weights: [1.0, 0.5] (RPO).',
        dict(dpo_loss_type=['sigmoid', 'sft'], dpo_loss_weights=[1.0, 0.5]), None, None),
    'axolotl-key-unused': (dict(pad_to_sequence_len=True, strict=False), None, None,
        'ignored axolotl options (a preference run in prefnb does not use them): pad_to_sequence_len, strict',
        dict(tf32=True, lora_target_linear=True, adapter='lora'), None, None),
    'dpo-beta-renamed': (dict(dpo_beta=0.2), None, None,
        'dpo_beta: 0.2 is the older name of rl_beta; it is used as rl_beta. Rename it to rl_beta.', dict(rl_beta=0.2), None, None),
    'beta-conflict': (dict(dpo_beta=0.2, rl_beta=0.1), None, None, 'rl_beta: 0.1 and dpo_beta: 0.2 disagree; keep only rl_beta.',
        dict(dpo_beta=0.2, rl_beta=0.2), None, None),
    'sample-packing': (dict(sample_packing=True), None, None,
        'sample_packing: true cannot be used with rl: dpo: preference losses compare chosen and rejected of the same row, which packing mixes. Set sample_packing: false.',
        dict(sample_packing=False), None, None),
    'ipo-label-smoothing': (dict(rl='ipo', dpo_label_smoothing=0.1), None, None,
        'dpo_label_smoothing: 0.1 with rl: ipo: IPO has no label smoothing (TRL ignores it). Remove dpo_label_smoothing, or use rl: dpo with dpo_loss_type: [robust] for noisy labels.',
        dict(rl='ipo'), None, None),
    'label-smoothing-unused': (dict(dpo_label_smoothing=0.1), None, None,
        "dpo_label_smoothing: 0.1 has no effect with dpo_loss_type ['sigmoid']; only robust, exo_pair, aot and aot_unpaired use it. Set dpo_loss_type: [robust] or remove dpo_label_smoothing.",
        dict(dpo_label_smoothing=0.1, dpo_loss_type=['robust']), None, None),
    'kto-batch-size': (dict(rl='kto', micro_batch_size=1), None, None,
        'micro_batch_size: 1 with rl: kto: KTO estimates its KL term from the other rows of the batch, so TRL needs at least 2. Set micro_batch_size: 2 or more.',
        dict(rl='kto', micro_batch_size=2), None, None),
    'kto-label': (dict(rl='kto', datasets=[dict(path='prefnb:toy-kto', type='chatml.prompt_pairs')]), [KTO_STR], None,
        "datasets[0] (prefnb:toy-kto): rl: kto needs a boolean 'label' column (true = desirable), found a label column of type str. Add a true/false label column, or give paired chosen/rejected data (prefnb unpairs it).",
        dict(rl='kto', datasets=[dict(path='prefnb:toy-kto', type='chatml.prompt_pairs')]), [toy_rows('kto', 4)], None),
    'orpo-chat-template': (dict(rl='orpo', datasets=[dict(path='a/b', type='chat_template.argilla')]), None, None,
        'datasets[0].type: chat_template.argilla with rl: orpo needs an explicit chat template: ORPO trains on the rendered prompt, and without one it is silently not applied. Set chat_template (e.g. chat_template: tokenizer_default) or chat_template_jinja.',
        dict(rl='orpo', chat_template='chatml', datasets=[dict(path='a/b', type='chat_template.argilla')]), None, None),
    'loss-weights-length': (dict(dpo_loss_type=['sigmoid', 'sft'], dpo_loss_weights=[1.0]), None, None,
        "dpo_loss_weights: [1.0] has 1 entries but dpo_loss_type ['sigmoid', 'sft'] has 2; give one weight per loss type.",
        dict(dpo_loss_type=['sigmoid', 'sft'], dpo_loss_weights=[1.0, 1.0]), None, None),
    'dpo-loss-type': (dict(dpo_loss_type=['sigmiod']), None, None,
        "dpo_loss_type: 'sigmiod' is not a TRL 1.16 DPO loss; did you mean sigmoid? Choose from " + ', '.join(DPO_LOSS_TYPES) + '.',
        dict(dpo_loss_type=['sigmoid']), None, None),
    'exo-pair-smoothing': (dict(dpo_loss_type=['exo_pair']), None, None,
        "dpo_loss_type exo_pair needs dpo_label_smoothing > 0 (TRL refuses 0). Set dpo_label_smoothing: 0.001, the EXO paper's value.",
        dict(dpo_loss_type=['exo_pair'], dpo_label_smoothing=0.001), None, None),
    'aot-weighting': (dict(dpo_loss_type=['aot'], dpo_use_weighting=True), None, None,
        'dpo_use_weighting: true cannot be combined with dpo_loss_type aot (TRL: the AOT losses sort samples, so per-pair weights would be misaligned). Set dpo_use_weighting: false or choose another loss.',
        dict(dpo_loss_type=['aot'], dpo_use_weighting=False), None, None),
    'method-option': (dict(simpo_gamma=0.5), None, None, 'simpo_gamma: 0.5 is not used by rl: dpo (it belongs to simpo). Remove it, or change rl.',
        dict(rl='simpo', simpo_gamma=1.0), None, None),
    'quant-without-adapter': (dict(load_in_4bit=True), None, None,
        'load_in_4bit: true without an adapter: quantised weights cannot be fine-tuned directly. Set adapter: qlora (4-bit) or adapter: lora, or remove load_in_4bit.',
        dict(load_in_4bit=True, adapter='qlora'), None, None),
    'simpo-cpo-alpha': (dict(rl='simpo', cpo_alpha=1.0), None, None,
        'cpo_alpha: 1.0 with rl: simpo adds a chosen-NLL term: that is CPO-SimPO (TRL defaults to 1.0), not SimPO. prefnb defaults to cpo_alpha: 0 (pure SimPO); keep 1.0 only if you mean CPO-SimPO.',
        dict(rl='simpo', cpo_alpha=0.0), None, None),
    'precompute-no-reference': (dict(rl='orpo', precompute_ref_log_probs=True), None, None,
        'precompute_ref_log_probs: true with rl: orpo, which has no reference model. Remove precompute_ref_log_probs.',
        dict(rl='dpo', precompute_ref_log_probs=True), None, None),
    'bf16-and-fp16': (dict(bf16=True, fp16=True), None, None, 'bf16: true and fp16: true: choose one. Set both to auto to let prefnb pick for the GPU.',
        dict(bf16=True, fp16=False), None, L4),
    'bf16-unsupported': (dict(bf16=True), None, T4, 'bf16: true, but Tesla T4 does not support bf16. Set bf16: auto (prefnb then uses fp16 with loss scaling).',
        dict(bf16=True), None, L4),
    'fp16-on-bf16-gpu': (dict(fp16=True), None, L4,
        'fp16: true on NVIDIA L4, which supports bf16: fp16 overflows easily and gives NaN losses. Set fp16: auto and bf16: auto (bf16 is picked).',
        dict(fp16=True), None, T4),
    'lr-range': (dict(learning_rate=5e-4, base_model='Qwen/Qwen2.5-0.5B-Instruct'), None, None,
        'learning_rate: 0.0005 is outside the plausible range for DPO with full fine-tuning (1e-07..1e-05). Typical: 5e-07.',
        dict(learning_rate=5e-4), None, None),   # the random tiny models are exempt: the ranges are for pretrained models
    'lr-positive': (dict(learning_rate=0), None, None,
        "learning_rate: 0 must be greater than 0; it is the optimizer's step size, so 0 never changes the weights and a negative value makes the loss go up. Set a positive learning_rate, or remove it to use the method's default. Typical for DPO with full fine-tuning: 5e-07.",
        dict(learning_rate=1e-9), None, None),   # tiny and positive: only a range matter, and the tiny models are exempt from lr-range
    'beta-negative': (dict(rl='ipo', rl_beta=-0.1), None, None,
        'rl_beta: -0.1 must not be negative with rl: ipo; beta scales the reward, and a negative beta trains toward the rejected answers. Set a positive rl_beta, or remove it to use the default. Typical for IPO: 0.1.',
        dict(rl='ipo', rl_beta=0.0), None, None),   # 0 learns nothing but is only hparam-range's warning (the health tutorial trains it)
    'hparam-range': (dict(rl='simpo', rl_beta=0.1), None, None,
        'rl_beta: 0.1 is outside the sensible range for SimPO (1.0..10.0; default 2.0): scale of the length-normalised reward; the paper uses 2.0-2.5.',
        dict(rl='simpo', rl_beta=2.5), None, None),
    'strategy-name': (dict(datasets=[dict(path='Intel/orca_dpo_pairs', type='chatml.intell')]), None, None,
        None, dict(datasets=[dict(path='Intel/orca_dpo_pairs', type='chatml.intel')]), None, None),
    'axolotl-plugin-option': (dict(use_swanlab=True, swanlab_project='p'), None, None,
        'axolotl swanlab plugin options, which prefnb does not use (it loads no axolotl plugins): use_swanlab, swanlab_project (for SwanLab tracking here, set report_to: [swanlab])',
        dict(report_to=['swanlab']), None, None),
    'chat-template-name': (dict(datasets=[dict(path='a/b', type='chat_template.default', chat_template='cohere')]), None, None,
        "datasets[0].chat_template: 'cohere' is an axolotl template that prefnb does not render; use tokenizer_default (the model's own template), one of "
        + ', '.join(sorted(CHAT_TEMPLATES)) + ', tokenizer_default_fallback_NAME, or chat_template: jinja with chat_template_jinja',
        dict(datasets=[dict(path='a/b', type='chat_template.default', chat_template='qwen_25')]), None, None),
    'attention-conflict': (dict(attn_implementation='eager', flash_attention=True), None, None,
        'attn_implementation: eager and flash_attention: true ask for different attention kernels; keep one of them.',
        dict(attn_implementation='flash_attention_2', flash_attention=True), None, None),
    'early-stopping-eval': (dict(early_stopping_patience=3), None, None,
        'early_stopping_patience needs evaluations to compare, but there is no eval data; set val_set_size (e.g. 0.05) or test_datasets, or remove early_stopping_patience.',
        dict(early_stopping_patience=3, val_set_size=0.1), None, None),
    'tokenizer-no-template': (dict(base_model=str(NO_TEMPLATE), datasets=[dict(path='a/b', type='chat_template.default')]), None, None,
        f"datasets[0].type: chat_template.default renders the tokenizer's chat template, but the tokenizer in {NO_TEMPLATE} has none; "
        'set chat_template (e.g. chatml, llama3) or chat_template_jinja',
        dict(base_model=str(NO_TEMPLATE), datasets=[dict(path='a/b', type='chat_template.default', chat_template='chatml')]), None, None),
    'entry-option-unused': (dict(datasets=[dict(path='prefnb:toy-orca', type='chatml.intel', chat_template='llama3')]), None, None,
        "datasets[0].chat_template: set on a dataset entry whose type 'chatml.intel' does not read it (only chat_template.* strategies do); "
        'remove it or use type: chat_template.default',
        dict(datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')], chat_template='llama3'), None, None),
    'message-field-deprecated': (dict(datasets=[dict(path='a/b', type='chat_template.default', message_field_role='from')]), None, None,
        'datasets[0].message_field_role: from is deprecated (as in axolotl); it is read as message_property_mappings: {role: from}. Write that instead.',
        dict(datasets=[dict(path='a/b', type='chat_template.default', message_property_mappings={'role': 'from'})]), None, None),
    'warmup-both': (dict(warmup_steps=10, warmup_ratio=0.1), None, None, 'warmup_steps: 10 and warmup_ratio: 0.1: give one of them.',
        dict(warmup_steps=10, warmup_ratio=None), None, None),
    'steps-and-per-epoch': (dict(eval_steps=10, evals_per_epoch=2, save_steps=5, saves_per_epoch=1), None, None,
        'eval_steps and evals_per_epoch are both set: give one of them.', dict(eval_steps=10, saves_per_epoch=1), None, None),
}

def test_every_rule_has_a_case():
    assert set(CASES) == {r.id for r in RULES}

def found(over, data, device, rule):
    r = check_config({**GOOD, **over}, data, device)
    return [p for p in r.errors + r.warnings if p.rule == rule]

@pytest.mark.parametrize('rule', sorted(CASES))
def test_rule_bad_config_triggers_exact_message(rule):
    over, data, dev, msg, *_ = CASES[rule]
    hits = found(over, data, dev, rule)
    assert hits, f'{rule} did not fire'
    if msg is not None: assert hits[0].message == msg
    level = next(r.level for r in RULES if r.id == rule)
    assert all(h.level == level for h in hits)

@pytest.mark.parametrize('rule', sorted(CASES))
def test_rule_good_config_is_quiet(rule):
    *_, good, data, dev = CASES[rule]
    assert found(good, data, dev, rule) == []

def test_strategy_name_message_names_the_entry():
    (h,) = found(CASES['strategy-name'][0], None, None, 'strategy-name')
    assert h.message.startswith("datasets[0].type: unknown strategy 'chatml.intell' for rl=dpo; did you mean chatml.intel")

def test_errors_are_all_collected_in_one_user_error():
    bad = dict(GOOD, rl='kto', micro_batch_size=1, sample_packing=True, load_in_8bit=True, simpo_gamma=1.0, bogus_key=1)
    with pytest.raises(UserError) as e: load_config(bad)
    text = str(e.value)
    assert text.startswith('config has 5 errors:\n  - bogus_key: unknown option')
    assert 'micro_batch_size: 1 with rl: kto' in text and 'sample_packing: true cannot be used with rl: kto' in text
    assert 'load_in_8bit: true without an adapter' in text and 'simpo_gamma: 1.0 is not used by rl: kto' in text

def test_schema_errors_name_the_field():
    r = check_config(dict(base_model='m', rl='ppo', datasets=[dict(path='p', feild_chosen='c')]))
    msgs = [p.message for p in r.errors]
    assert "rl: got 'ppo': Input should be 'dpo', 'ipo', 'kto', 'orpo' or 'simpo'" in msgs
    assert any(m.startswith('datasets[0].feild_chosen: unknown dataset option; did you mean field_chosen?') for m in msgs)
    assert 'datasets: missing; it is required' in [p.message for p in check_config(dict(base_model='m')).errors]

LR_WHY = ("must be greater than 0; it is the optimizer's step size, so 0 never changes the weights and a negative value makes the "
          "loss go up. Set a positive learning_rate, or remove it to use the method's default.")
BETA_WHY = ('must not be negative with rl: {rl}; beta scales the reward, and a negative beta trains toward the rejected answers. '
            'Set a positive {f}, or remove it to use the default. Typical for {m}: {d}.')

@pytest.mark.parametrize('over,msg', [
    (dict(learning_rate=0.0), f'learning_rate: 0.0 {LR_WHY} Typical for DPO with full fine-tuning: 5e-07.'),
    (dict(learning_rate='-1e-5', adapter='lora'), f'learning_rate: -1e-5 {LR_WHY} Typical for DPO with lora: 5e-06.'),   # as written in YAML
    (dict(rl='orpo', learning_rate=float('nan')), f'learning_rate: nan {LR_WHY} Typical for ORPO with full fine-tuning: 8e-06.'),
    (dict(learning_rate=-5e-4, base_model='Qwen/Qwen2.5-0.5B-Instruct'), f'learning_rate: -0.0005 {LR_WHY} Typical for DPO with full fine-tuning: 5e-07.'),
    (dict(rl_beta=-1), 'rl_beta: -1 ' + BETA_WHY.format(rl='dpo', f='rl_beta', m='DPO', d=0.1)),
    (dict(rl='kto', rl_beta=-0.05), 'rl_beta: -0.05 ' + BETA_WHY.format(rl='kto', f='rl_beta', m='KTO', d=0.1)),
    (dict(rl='simpo', rl_beta=-2.0), 'rl_beta: -2.0 ' + BETA_WHY.format(rl='simpo', f='rl_beta', m='SimPO', d=2.0)),
    (dict(dpo_beta=-0.1), 'dpo_beta: -0.1 ' + BETA_WHY.format(rl='dpo', f='dpo_beta', m='DPO', d=0.1)),
])
def test_nonpositive_lr_and_negative_beta_are_errors_for_every_model(over, msg):
    r = check_config({**GOOD, **over})
    assert [p.message for p in r.errors] == [msg]
    assert not [p for p in r.warnings if p.rule in ('lr-range', 'hparam-range')]   # the error says it once

@pytest.mark.parametrize('over', [{}, dict(learning_rate=5e-7), dict(rl='simpo', rl_beta=2.5), dict(rl='orpo', orpo_alpha=0.1),
                                  dict(rl_beta=0.1, dpo_beta=0.1), dict(adapter='lora', learning_rate=5e-6)])
def test_positive_or_unset_lr_and_beta_are_quiet(over):
    assert [p.rule for p in check_config({**GOOD, **over}).errors] == []

def test_beta_0_stays_a_warning():
    "The health tutorial trains rl_beta: 0 on purpose to show loss_pinned; it must load (with hparam-range's warning)."
    r = check_config(dict(GOOD, rl_beta=0.0))
    assert r.errors == [] and [p.rule for p in r.warnings] == ['hparam-range']

# field: (bad value, exact schema message, a good value, method)
RANGES = {
    'warmup_ratio': (1.0, 'warmup_ratio: got 1.0: Input should be less than 1', 0.0, 'dpo'),
    'warmup_steps': (-5, 'warmup_steps: got -5: Input should be greater than or equal to 0', 0, 'dpo'),
    'weight_decay': (-0.01, 'weight_decay: got -0.01: Input should be greater than or equal to 0', 0.01, 'dpo'),
    'max_grad_norm': (-1.0, 'max_grad_norm: got -1.0: Input should be greater than or equal to 0', 0.0, 'dpo'),
    'eval_steps': (-1, 'eval_steps: got -1: Input should be greater than or equal to 0', 0, 'dpo'),
    'save_steps': (-1, 'save_steps: got -1: Input should be greater than or equal to 0', 0, 'dpo'),
    'evals_per_epoch': (-2, 'evals_per_epoch: got -2: Input should be greater than or equal to 0', 2, 'dpo'),
    'saves_per_epoch': (-2, 'saves_per_epoch: got -2: Input should be greater than or equal to 0', 1, 'dpo'),
    'dataset_num_proc': (0, 'dataset_num_proc: got 0: Input should be greater than or equal to 1', 2, 'dpo'),
    'dpo_label_smoothing': (0.5, 'dpo_label_smoothing: got 0.5: Input should be less than 0.5', 0.1, 'dpo'),
    'dpo_loss_weights': ([1.0, -0.5], 'dpo_loss_weights[1]: got -0.5: Input should be greater than or equal to 0', [1.0, 0.0], 'dpo'),
    'cpo_alpha': (-1.0, 'cpo_alpha: got -1.0: Input should be greater than or equal to 0', 0.0, 'simpo'),
    'orpo_alpha': (-0.1, 'orpo_alpha: got -0.1: Input should be greater than or equal to 0', 0.1, 'orpo'),
    'kto_desirable_weight': (-1.0, 'kto_desirable_weight: got -1.0: Input should be greater than or equal to 0', 1.0, 'kto'),
    'kto_undesirable_weight': (-1.0, 'kto_undesirable_weight: got -1.0: Input should be greater than or equal to 0', 1.33, 'kto'),
    # constrained before; listed so that loosening them is noticed
    'micro_batch_size': (0, 'micro_batch_size: got 0: Input should be greater than or equal to 1', 1, 'dpo'),
    'gradient_accumulation_steps': (0, 'gradient_accumulation_steps: got 0: Input should be greater than or equal to 1', 1, 'dpo'),
    'num_epochs': (0, 'num_epochs: got 0: Input should be greater than 0', 0.5, 'dpo'),
    'sequence_len': (0, 'sequence_len: got 0: Input should be greater than or equal to 16', 512, 'dpo'),
    'lora_r': (0, 'lora_r: got 0: Input should be greater than or equal to 1', 8, 'dpo'),
}

@pytest.mark.parametrize('field', sorted(RANGES))
def test_out_of_range_numbers_are_schema_errors(field):
    bad, msg, good, rl = RANGES[field]
    base = dict(GOOD, rl=rl)
    if field == 'dpo_loss_weights': base['dpo_loss_type'] = ['sigmoid', 'sft']
    if field == 'dpo_label_smoothing': base['dpo_loss_type'] = ['robust']
    assert [(p.rule, p.message) for p in check_config({**base, field: bad}).errors] == [('schema', msg)]
    assert check_config({**base, field: good}).errors == []

def test_long_values_are_shortened_in_schema_messages():
    r = check_config(dict(GOOD, learning_rate={'a': list(range(1, 41))}, datasets='x' * 500, rl={'x': 'y\n' * 100}))
    assert [p.message for p in r.errors] == [
        "rl: got {'x': 'y\\ny\\ny\\ny\\ny\\ny\\...y\\ny\\ny\\ny\\ny\\ny\\n'}: Input should be 'dpo', 'ipo', 'kto', 'orpo' or 'simpo'",
        "datasets: got 'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx': Input should be a valid list",
        "learning_rate: got {'a': [1, 2, 3, 4, 5, 6, ...]}: Input should be a valid number"]
    s = _short({f'k{i}': 'v' * 30 for i in range(10)})
    assert len(s) == 60 and s.endswith('...') and '\n' not in s
    assert (_short(0), _short('ppo'), _short([1.0, -0.5])) == ('0', "'ppo'", '[1.0, -0.5]')

def test_warnings_are_returned_not_raised():
    with pytest.warns(UserWarning, match='dpo_beta: 0.3 is the older name'):
        c = load_config(dict(GOOD, dpo_beta=0.3))
    assert c.rl_beta == 0.3 and [w.rule for w in c.warnings] == ['dpo-beta-renamed']

def test_method_defaults_follow_rl_and_adapter():
    c = load_config(dict(GOOD, rl='simpo'))
    assert (c.rl_beta, c.simpo_gamma, c.cpo_alpha, c.learning_rate) == (2.0, 1.0, 0.0, 5e-7)
    c.rl = 'kto'; c.adapter = 'lora'
    assert (c.rl_beta, c.simpo_gamma, c.kto_desirable_weight, c.learning_rate) == (0.1, None, 1.0, 5e-6)

def test_method_args_reach_trl_unchanged():
    import os; os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
    from trl.experimental.cpo import CPOConfig
    a = CPOConfig(use_cpu=True, bf16=False, report_to=[], **method_trl_args(load_config(dict(GOOD, rl='simpo'))))
    assert (a.loss_type, a.beta, a.simpo_gamma, a.cpo_alpha) == ('simpo', 2.0, 1.0, 0.0)

def test_dpo_loss_types_are_trls():
    import inspect, re
    from trl import DPOTrainer
    src = inspect.getsource(DPOTrainer._compute_loss)
    assert set(re.findall(r'loss_type == "(\w+)"', src)) == set(DPO_LOSS_TYPES)

def test_validate_config_on_a_built_config():
    c = PrefConfig(**GOOD)
    assert validate_config(c) == []
    c.sample_packing = True
    assert [p.rule for p in validate_config(c)] == ['sample-packing']

@pytest.mark.parametrize('over', [{}, dict(rl='simpo', adapter='lora', cpo_alpha=0.0), dict(rl='kto', special_tokens={'pad_token': '<pad>'},
                                  test_datasets=[dict(path='p', split='test', type={'field_prompt': 'q'})]),
                                  dict(dpo_loss_type=['sigmoid', 'sft'], dpo_loss_weights=[1.0, 0.5], report_to=['wandb'], bf16=False)])
@pytest.mark.parametrize('full', [False, True])
def test_yaml_round_trip_is_lossless(tmp_path, over, full):
    c = load_config({**GOOD, **over})
    c.to_yaml(tmp_path/'c.yml', full=full)
    back = load_config(tmp_path/'c.yml')
    assert back.model_dump() == c.model_dump()
    assert yaml.safe_load((tmp_path/'c.yml').read_text())['rl'] == c.rl

@pytest.mark.parametrize('name', ['dpo', 'kto', 'orpo', 'simpo'])
def test_axolotl_configs_load_and_validate(name):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        c = load_config(FIX/f'{name}.yml')
    assert c.rl == name
    assert [p.rule for p in c.warnings] == ['axolotl-key-unused']
    raw = read_config(FIX/f'{name}.yml')
    for k in ('lora_target_linear', 'tf32', 'evals_per_epoch', 'saves_per_epoch', 'special_tokens'):
        if k in raw: assert getattr(c, k) == raw[k]

def test_axolotl_keys_cover_the_fixtures():
    for f in FIX.glob('*.yml'):
        assert set(read_config(f)) <= AXOLOTL_KEYS | set(PrefConfig.model_fields)

# --- the CLI contract ---------------------------------------------------------------------------
def test_cli_valid_config_exits_0(cli):
    r = cli('check', FIX/'simpo.yml')
    assert r.returncode == 0 and r.stdout.startswith(f'{FIX/"simpo.yml"}: valid (rl: simpo), 0 errors, 1 warning')

def test_cli_invalid_config_exits_2_with_all_errors(tmp_path, cli):
    (tmp_path/'c.yml').write_text(yaml.safe_dump(dict(GOOD, rl='kto', micro_batch_size=1, sample_packing=True)))
    r = cli('check', tmp_path/'c.yml')
    assert r.returncode == 2 and 'Traceback' not in r.stdout + r.stderr
    assert 'INVALID, 2 errors, 0 warnings' in r.stdout and 'error [kto-batch-size]' in r.stdout and 'error [sample-packing]' in r.stdout

def test_cli_learning_rate_0_exits_2_on_the_tiny_model(tmp_path, cli):
    (tmp_path/'c.yml').write_text('base_model: prefnb:tiny-chatml\nrl: dpo\nlearning_rate: 0\n'
                                  'datasets: [{path: prefnb:toy-orca, type: chatml.intel}]\n')
    r = cli('check', tmp_path/'c.yml')
    assert r.returncode == 2 and 'Traceback' not in r.stdout + r.stderr
    assert r.stdout.splitlines() == [f'{tmp_path/"c.yml"}: INVALID, 1 error, 0 warnings',
                                     f'error [lr-positive]: learning_rate: 0 {LR_WHY} Typical for DPO with full fine-tuning: 5e-07.']

def test_cli_long_schema_value_stays_one_line(tmp_path, cli):
    (tmp_path/'c.yml').write_text('base_model: prefnb:tiny-chatml\nlearning_rate: {a: [%s]}\n'
                                  'datasets: [{path: prefnb:toy-orca, type: chatml.intel}]\n' % ','.join(map(str, range(1, 41))))
    r = cli('check', tmp_path/'c.yml')
    assert r.returncode == 2
    assert r.stdout.splitlines()[1:] == ["error [schema]: learning_rate: got {'a': [1, 2, 3, 4, 5, 6, ...]}: Input should be a valid number"]

def test_cli_json(tmp_path, cli):
    (tmp_path/'c.yml').write_text(yaml.safe_dump(dict(GOOD, fp16=True, bf16=True)))
    r = cli('check', tmp_path/'c.yml', '--json')
    d = json.loads(r.stdout)
    assert r.returncode == 2 and d['valid'] is False and [e['rule'] for e in d['errors']] == ['bf16-and-fp16']

@pytest.mark.parametrize('content,expect', [
    ('base_model: !!python/object/apply:os.system ["echo pwned"]\n', 'prefnb reads plain YAML only (no !!python tags)'),
    ('base_model: [unclosed\n', 'not valid YAML'),
    ('just a string\n', 'expected a mapping of option: value at the top level, got str'),
])
def test_cli_bad_files_never_show_a_traceback(tmp_path, content, expect, cli):
    (tmp_path/'c.yml').write_text(content)
    r = cli('check', tmp_path/'c.yml')
    assert r.returncode == 2 and expect in r.stderr and 'Traceback' not in r.stderr and 'pwned' not in r.stdout

def test_cli_missing_file_and_help(cli):
    r = cli('check', '/no/such/config.yml')
    assert r.returncode == 2 and "error: config: no file '/no/such/config.yml'" in r.stderr and 'Traceback' not in r.stderr
    h = cli('check', '--help')
    assert h.returncode == 0 and 'Validate a prefnb' in h.stdout

def test_cli_memory_plan(tmp_path, cli):
    (tmp_path/'c.yml').write_text(yaml.safe_dump(dict(GOOD, adapter='lora')))
    r = cli('check', tmp_path/'c.yml', '--gpu', 'T4', '--json')
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d['memory']['gpu'] == 'T4' and d['memory']['fits'] is True
    assert d['memory']['parts_gib']['reference'] == 0
    assert (d['device']['precision'], d['device']['trainable_dtype'], d['device']['attention']) == ('fp16', 'float32', 'sdpa')

def check_in_process(*args):
    "(exit code, stdout) of `prefnb check ARGS`, run in this process (the subprocess tests above cover the entry point)."
    import contextlib, io
    from prefnb.config import check_cli
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): rc = check_cli(list(map(str, args)))
    return rc, buf.getvalue()

@pytest.mark.parametrize('gpu,precision,rc', [('A100-80GB', 'bf16', 0), ('T4', 'fp16', 0), ('P100', 'fp16', 2)])
def test_cli_device_plan(gpu, precision, rc, tmp_path):
    "check --gpu says what train will do there: the device plan, under `device` in --json; a refused GPU exits 2."
    (tmp_path/'c.yml').write_text(yaml.safe_dump(dict(GOOD, adapter='lora')))
    code, out = check_in_process(tmp_path/'c.yml', '--gpu', gpu, '--json'); d = json.loads(out)
    assert (code, d['valid'], d['device']['precision'], bool(d['device']['refusals'])) == (rc, True, precision, rc == 2)
    text = check_in_process(tmp_path/'c.yml', '--gpu', gpu)[1]
    assert f'device plan ({gpu}):' in text and f"precision       {precision} (" in text and 'trainable       float32' in text
    if rc: assert 'REFUSED: P100 has compute capability 6' in text

def test_cli_bf16_rule_judges_the_named_gpu(tmp_path):
    (tmp_path/'c.yml').write_text(yaml.safe_dump(dict(GOOD, bf16=True)))
    code, out = check_in_process(tmp_path/'c.yml', '--gpu', 'T4')
    assert code == 2 and 'error [bf16-unsupported]: bf16: true, but T4 does not support bf16' in out
    assert check_in_process(tmp_path/'c.yml', '--gpu', 'A100-80GB')[0] == 0

def test_trl_really_refuses_what_the_trl_rules_catch(tmp_path):
    "The exo_pair and aot rules mirror errors TRL raises when the trainer is built: check that TRL still raises them."
    import os; os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer
    ds = Dataset.from_list([dict(prompt='a', chosen='b', rejected='c')]*2)
    from prefnb.zoo import resolve_model
    path = resolve_model('prefnb:tiny-chatml')
    for kw, exc, text in [(dict(loss_type=['exo_pair']), ValueError, 'Label smoothing must be greater than 0.0'),
                          (dict(loss_type=['aot'], use_weighting=True), NotImplementedError, 'WPO-style weighting')]:
        args = DPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], **kw)
        with pytest.raises(exc, match=text): DPOTrainer(model=path, args=args, train_dataset=ds)

def test_padding_free_belongs_to_dpo_and_ipo():
    from prefnb.config import check_config
    base = dict(base_model='prefnb:tiny-chatml', datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')])
    r = check_config({**base, 'rl': 'orpo', 'dpo_padding_free': True})
    assert [p.message for p in r.errors] == ['dpo_padding_free: True is not used by rl: orpo (it belongs to dpo, ipo). Remove it, or change rl.']
    for rl in ('dpo', 'ipo'): assert not check_config({**base, 'rl': rl, 'dpo_padding_free': True}).errors

def test_deprecated_message_fields_become_property_mappings():
    d = load_config({**GOOD, 'datasets': [dict(path='a/b', type='chat_template.default', message_field_role='from', message_field_content='value')]}).datasets[0]
    assert d.message_property_mappings == {'role': 'from', 'content': 'value'}
    d = load_config({**GOOD, 'datasets': [dict(path='a/b', type='chat_template.default', message_field_role='from',
                                               message_property_mappings={'role': 'speaker'})]}).datasets[0]
    assert d.message_property_mappings == {'role': 'speaker'}   # the current name wins

# --- check and preview agree: a config that checks clean previews and trains -----------------------
from prefnb.templates import template_options

def _template_config(tmp_path, option, where):
    "A config naming chat template `option` at the top (`where='config'`) or on its dataset entry; `jinja`'s text is a file named at the top."
    from prefnb.zoo import write_toy_file
    (tpl := tmp_path/'tpl.jinja').write_text(CHAT_TEMPLATES['zephyr'])
    entry = dict(path=str(write_toy_file(tmp_path/'rows.jsonl', 'messages', n=8)), type='chat_template.default')
    c = dict(base_model='prefnb:tiny-chatml', rl='dpo', datasets=[entry], sequence_len=1024, output_dir=str(tmp_path/'run'))
    (c if where == 'config' else entry)['chat_template'] = option
    if option == 'jinja': c['chat_template_jinja'] = str(tpl)   # on the entry, `jinja` takes the config's text (issue 25's case)
    (p := tmp_path/'c.yml').write_text(yaml.safe_dump(c))
    return p

def _preview_in_process(*args):
    import contextlib, io
    from prefnb.data import preview_cli
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): rc = preview_cli(list(map(str, args)))
    return rc, buf.getvalue()

# every value prefnb accepts at the top; on an entry, one of each kind (a name, the model's own, a fallback, jinja with the top's text)
TEMPLATE_CASES = [(o, 'config') for o in template_options()] + [(o, 'entry') for o in template_options()
                  if o in ('llama3', 'tokenizer_default', 'tokenizer_default_fallback_llama3', 'jinja')]

@pytest.mark.parametrize('option,where', TEMPLATE_CASES)
def test_every_template_option_that_checks_clean_previews(tmp_path, option, where):
    "Every `chat_template:` value prefnb accepts (read from prefnb.templates): `check` passes, then `preview` renders every row with it."
    p = _template_config(tmp_path, option, where)
    assert check_in_process(p) == (0, f'{p}: valid (rl: dpo), 0 errors, 0 warnings\n')
    rc, out = _preview_in_process(p, '--json')
    assert rc == 0 and json.loads(out)['datasets'][0]['kept'] == 8
    if option == 'jinja': assert '<|user|>' in _preview_in_process(p, '-n', '1')[1]   # rendered with the file's (zephyr) template, not the model's ChatML

def test_a_config_whose_entries_name_templates_trains_one_step(tmp_path):
    "The issue 25 config (chat_template: jinja + a .jinja file) with a second entry that takes `jinja` from the top and a third with its own name: check, preview, one step of train."
    from prefnb.run import train_cli
    p = _template_config(tmp_path, 'jinja', 'config')
    c = yaml.safe_load(p.read_text())
    c['datasets'] += [dict(c['datasets'][0], chat_template='jinja'), dict(c['datasets'][0], chat_template='llama3')]
    p.write_text(yaml.safe_dump(dict(c, max_steps=1, micro_batch_size=2, logging_steps=1, live_plots=False, health_checks=False)))
    assert check_in_process(p)[0] == 0 and _preview_in_process(p, '-n', '1')[0] == 0
    assert train_cli([str(p)]) == 0
    assert [m['step'] for m in map(json.loads, (tmp_path/'run'/'metrics.jsonl').read_text().splitlines()) if 'loss' in m] == [1]

def test_check_refuses_jinja_without_text_where_preview_would(tmp_path):
    "An entry's `chat_template: jinja` with no chat_template_jinja in its entry or at the top: `check` says what `preview` says."
    p = _template_config(tmp_path, 'llama3', 'entry')
    c = yaml.safe_load(p.read_text()); c['datasets'][0]['chat_template'] = 'jinja'; p.write_text(yaml.safe_dump(c))
    rc, out = check_in_process(p)
    assert rc == 2 and 'error [chat-template-name]: datasets[0].chat_template: jinja needs chat_template_jinja (the template text or a .jinja file)' in out
    with pytest.raises(UserError, match='chat_template: jinja needs chat_template_jinja'): _preview_in_process(p)

def test_a_tokenizer_without_a_template_is_refused_by_check_as_by_preview(tmp_path):
    "A local model whose tokenizer has no chat template, read by a chat_template.* entry: `check` says so, as `preview` would; naming a template fixes both."
    import shutil
    from prefnb.zoo import tiny_model_path
    shutil.copytree(tiny_model_path('prefnb:tiny-chatml'), base := tmp_path/'base', ignore=shutil.ignore_patterns('chat_template.jinja'))
    p = _template_config(tmp_path, 'tokenizer_default', 'entry')
    c = yaml.safe_load(p.read_text()); c['base_model'] = str(base); p.write_text(yaml.safe_dump(c))
    rc, out = check_in_process(p)
    assert rc == 2 and "error [tokenizer-no-template]: datasets[0].type: chat_template.default renders the tokenizer's chat template" in out
    with pytest.raises(UserError, match="renders the tokenizer's chat template, but the tokenizer in"): _preview_in_process(p)   # preview loads the config the same way
    from transformers import AutoTokenizer
    from prefnb.data import prepare
    with pytest.raises(UserError, match='chat_template: the tokenizer has no chat template'):   # past the rule: what preview met before it
        prepare(c, AutoTokenizer.from_pretrained(base))
    c['datasets'][0]['chat_template'] = 'zephyr'; p.write_text(yaml.safe_dump(c))
    assert check_in_process(p)[0] == 0 and _preview_in_process(p, '--json')[0] == 0
