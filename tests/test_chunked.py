"""The chunked LM head (prefnb.chunked) against TRL's own `concatenated_forward`: the loss, every logged metric and
every trainable parameter's gradient, for ORPO, SimPO and CPO, full fine-tuning and LoRA, on right-padded batches of
the embedded tiny models (and one at SmolLM2's vocabulary of 49,152), with chunk boundaries falling inside sequences;
and a planted wrong boundary that must show.

Where rounding cannot decide it. The comparison runs in fp64: model and head cast to double, so both sides agree
to ~1e-15 and a bar of 1e-9 is one that only a real difference crosses, on any CPU, kernel set or thread count (in
fp32 the two sides' different summation orders alone reach 2.5e-5 relative on `rewards/margins` and 4e-5 on
`log_odds_chosen`, differences of close numbers, with 2 threads on an AVX-512 machine; measured: fp64 leaves ~1e-15).
A few steps stay fp32 on both sides (TRL's `odds_ratio_loss` calls `.float()`, the RMS norms compute in fp32); both
sides feed them inputs equal to ~1e-15, which round to the same fp32 number unless one lies within 1e-15 of a rounding
boundary (odds ~1e-8 per number). Each metric's tolerance is scaled to the size of the numbers it is computed
from (the log-probs, the NLL, itself), not to its own value: a margin near 0 is a difference of two log-probs near -6.
One bf16 case has its own bound, from bf16's rounding (TRL's bf16 log-softmax, against our fp32 one)."""
import math, os, tempfile
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
EPS = {'float64': 1e-9,        # ~1e6 x fp64's rounding: far above what the two orders of summation leave, far below any bug
       'bfloat16': 2 ** -6}    # 4 x bf16's unit roundoff 2^-8: TRL rounds each token's log-prob to bf16, we keep fp32
GRAD_EPS = {'float64': 1e-9, 'bfloat16': 2 ** -4}   # gradient difference by norm, relative to the gradient's norm

LORA = dict(adapter='lora', lora_r=8, lora_alpha=16)
CASES = {   # name: (config fields, trainer attributes set after building)
    'orpo': (dict(rl='orpo'), {}),
    'simpo': (dict(rl='simpo', rl_beta=2.0, simpo_gamma=1.0), {}),
    'cpo-simpo': (dict(rl='simpo', rl_beta=2.0, simpo_gamma=1.0, cpo_alpha=1.0), {}),
    'cpo': (dict(rl='simpo', rl_beta=0.1, simpo_gamma=1.0), dict(loss_type='sigmoid', cpo_alpha=1.0)),   # TRL's CPO: summed log-probs
    'orpo-lora': (dict(rl='orpo', **LORA), {}),
    'simpo-lora': (dict(rl='simpo', rl_beta=2.0, simpo_gamma=1.0, cpo_alpha=0.5, base_model='prefnb:tiny-llama', **LORA), {}),
    'orpo-lora-head-saved': (dict(rl='orpo', lora_modules_to_save=['lm_head'], **LORA), {}),
    'cpo-lora-head-adapted': (dict(rl='simpo', rl_beta=0.1, lora_target_modules=['q_proj', 'v_proj', 'lm_head'], **LORA),
                              dict(loss_type='sigmoid', cpo_alpha=1.0)),
}

def build(name, dtype='float64', **over):
    "The case's trainer, its model cast to `dtype`, LoRA's B matrices random (not PEFT's zeros)."
    import torch
    from prefnb.config import load_config
    from prefnb.trainer import build_trainer
    fields, attrs = CASES[name]
    cfg = dict(base_model='prefnb:tiny-chatml', sequence_len=256, micro_batch_size=4, max_steps=1, learning_rate=1e-4,
               gradient_checkpointing=False, output_dir=tempfile.mkdtemp(), seed=0, live_plots=False, health_checks=False,
               datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')]) | fields | over
    if cfg['base_model'] == 'prefnb:tiny-llama': cfg['datasets'] = [dict(path='prefnb:toy-orca', type='llama3.intel')]
    tr = build_trainer(load_config(cfg))
    for k, v in attrs.items(): setattr(tr, k, v)
    tr.model.to(getattr(torch, dtype))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():   # B = 0 would make every lora_A gradient zero on both sides: equal by construction
        for n, p in tr.model.named_parameters():
            if 'lora_B' in n: p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return tr

def loss_metrics_grads(tr, batch, chunked):
    tr.chunked_head = chunked
    tr.model.zero_grad(set_to_none=True)
    loss, metrics = tr.get_batch_loss_metrics(tr.model, batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}
    return loss.item(), {k: float(v) for k, v in metrics.items()}, grads

def differences(tr, batch, dtype='float64')->dict:
    """Chunked vs TRL: each of the loss, the metrics and the trainable gradients as its difference over its tolerance
    (over 1 fails). A metric's tolerance is EPS times the size of what it is computed from: the log-probs (times
    beta where it scales them), the NLL and its own value; a gradient's, GRAD_EPS times the gradient's norm."""
    lt, mt, gt = loss_metrics_grads(tr, batch, False)
    lc, mc, gc = loss_metrics_grads(tr, batch, True)
    assert tr.prefnb_chunked['on'], tr.prefnb_chunked
    assert set(mc) == set(mt) and set(gc) == set(gt) and gt
    zero = [n for n in gt if gt[n].norm() == 0]
    assert not zero, f'gradients zero on TRL\'s side, equal by construction: {zero}'
    logps = max(1.0, tr.beta) * (abs(mt['logps/chosen']) + abs(mt['logps/rejected'])) + abs(mt.get('nll_loss', 0.0))
    tol = lambda a, b: EPS[dtype] * (abs(b) + logps)
    out = {'loss': abs(lc - lt) / tol(lc, lt)}
    out |= {k: abs(mc[k] - mt[k]) / tol(mc[k], mt[k]) for k in mt}
    out |= {f'grad {n}': ((gc[n] - gt[n]).double().norm() / (GRAD_EPS[dtype] * gt[n].double().norm())).item() for n in gt}
    return out

def failing(d): return {k: f'{v:.3g} x tolerance' for k, v in d.items() if not v <= 1}

@pytest.fixture
def small_chunks(monkeypatch):
    "Chunks of 5 tokens (vocabulary 512): boundaries fall inside every sequence."
    import prefnb.chunked as ch
    monkeypatch.setattr(ch, 'CHUNK_ELEMENTS', 5 * 512)
    return ch

def first_batch(tr):
    batch = next(iter(tr.get_train_dataloader()))
    am = tr.concatenated_inputs(batch, padding_value=0)['concatenated_attention_mask']
    assert (am == 0).any() and (am[:, 0] == 1).all()    # right-padded: real tokens first, then padding
    return batch

@pytest.mark.numerics
@pytest.mark.parametrize('name', list(CASES))
def test_chunked_head_equals_trl(name, small_chunks):
    tr = build(name)
    assert type(tr).__name__.startswith('Chunked') and small_chunks.chunk_tokens(512) == 5
    d = differences(tr, first_batch(tr))
    assert failing(d) == {}
    if 'head' in name:   # the head's own copy / adapter gets a gradient, and it matches
        assert any('lm_head' in k for k in d if k.startswith('grad ')), list(d)
    if 'lora' in name:   # both LoRA matrices of every adapted layer are compared, none zero
        assert any('lora_A' in k for k in d) and any('lora_B' in k for k in d)

@pytest.mark.numerics
def test_bf16_within_bf16s_rounding(small_chunks):
    "bf16 full fine-tuning: TRL's log-softmax rounds to bf16, ours is fp32; the two differ by bf16's rounding, no more."
    tr = build('orpo', dtype='bfloat16')
    d = differences(tr, first_batch(tr), dtype='bfloat16')
    assert failing(d) == {}

@pytest.fixture(scope='module')
def smollm2_vocab(tmp_path_factory):
    "The tiny ChatML model's shape and tokenizer with SmolLM2-135M's vocabulary (49,152), random weights, built here."
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from prefnb.zoo import _model_config, resolve_model
    dest = tmp_path_factory.mktemp('vocab49152')
    tok = AutoTokenizer.from_pretrained(resolve_model('prefnb:tiny-chatml'))
    cfg = _model_config('chatml', tok); cfg.vocab_size = 49_152
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(dest); tok.save_pretrained(dest)
    return str(dest)

@pytest.mark.numerics
@pytest.mark.parametrize('name', ['orpo', 'simpo-lora'])
def test_at_smollm2s_vocabulary(name, smollm2_vocab, monkeypatch):
    "V = 49,152 with chunks of 7 tokens (the real size would be 341, more than these sequences): the full head's numbers."
    import prefnb.chunked as ch
    monkeypatch.setattr(ch, 'CHUNK_ELEMENTS', 7 * 49_152)
    tr = build(name, base_model=smollm2_vocab, datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')], micro_batch_size=2)
    assert tr.model.get_output_embeddings().weight.shape[0] == 49_152 and ch.chunk_tokens(49_152) == 7
    assert failing(differences(tr, first_batch(tr))) == {}

@pytest.mark.numerics
def test_a_wrong_chunk_boundary_is_caught(small_chunks, monkeypatch):
    tr = build('orpo')
    batch = first_batch(tr)
    right = small_chunks._spans
    def planted(n, size):   # the second chunk starts one token early: a token twice, another never; still n in all
        s = right(n, size)
        return s[:1] + [(s[1][0] - 1, s[1][1] - 1)] + s[2:] if len(s) > 2 else s
    monkeypatch.setattr(small_chunks, '_spans', planted)
    d = differences(tr, batch)
    bad = failing(d)   # what test_chunked_head_equals_trl reports
    assert {'loss', 'nll_loss'} <= set(bad) and any(k.startswith('grad ') for k in bad), bad
    assert d['loss'] > 1e3   # not a near miss: far outside the bar

def test_the_full_logits_never_exist(small_chunks):
    tr = build('orpo-lora', dtype='float32')
    batch = first_batch(tr)
    head = small_chunks._lm(tr.model).get_output_embeddings()
    seen = []
    spy = head.register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    try:
        tr.chunked_head = True
        loss, _ = tr.get_batch_loss_metrics(tr.model, batch); loss.backward()
    finally: spy.remove()
    assert seen and all(s[0] <= 5 and s[-1] == 512 for s in seen)
    total = 2 * batch['chosen_input_ids'].shape[0] * max(batch['chosen_input_ids'].shape[1], batch['rejected_input_ids'].shape[1])
    assert sum(s[0] for s in seen) == total             # every position once: a frozen head is not run again in backward

def test_it_steps_aside_with_a_reason_and_then_is_trl():
    tr = build('simpo', dtype='float32')
    batch = first_batch(tr)
    tr.model.config.final_logit_softcapping = 30.0
    lc, mc, _ = loss_metrics_grads(tr, batch, True)
    assert tr.prefnb_chunked == dict(on=False, reason="TRL's full logits: the model transforms its logits after the head (final_logit_softcapping)")
    lt, mt, _ = loss_metrics_grads(tr, batch, False)
    assert lc == lt and mc == mt
    tr.model.config.final_logit_softcapping = None
    loss_metrics_grads(tr, batch, True)
    assert tr.prefnb_chunked['on']

def test_training_steps_log_trls_metric_names(tmp_path):
    tr = build('orpo', dtype='float32', max_steps=2, logging_steps=1)
    tr.train()
    logged = [h for h in tr.state.log_history if 'loss' in h]
    assert logged and all(math.isfinite(h['loss']) for h in logged)
    assert {'logits/chosen', 'logits/rejected', 'nll_loss', 'log_odds_ratio', 'rewards/margins'} <= set(logged[0])
    assert tr.prefnb_chunked['on'] and any(n.startswith('chunked LM head') for n in tr.prefnb['notes'])
