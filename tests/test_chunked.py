"""The chunked LM head (prefnb.chunked) against TRL's own `concatenated_forward`: the loss, every logged metric and
every trainable parameter's gradient, for ORPO, SimPO and CPO, full fine-tuning and LoRA, on right-padded batches of
the embedded tiny models, with chunk boundaries falling inside sequences; and a planted wrong boundary that must show."""
import math, os, tempfile
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
REL = 1e-5   # fp32

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

def build(name, **over):
    from prefnb.config import load_config
    from prefnb.trainer import build_trainer
    fields, attrs = CASES[name]
    cfg = dict(base_model='prefnb:tiny-chatml', sequence_len=256, micro_batch_size=4, max_steps=1, learning_rate=1e-4,
               gradient_checkpointing=False, output_dir=tempfile.mkdtemp(), seed=0, live_plots=False, health_checks=False,
               datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')]) | fields | over
    if cfg['base_model'] == 'prefnb:tiny-llama': cfg['datasets'] = [dict(path='prefnb:toy-orca', type='llama3.intel')]
    tr = build_trainer(load_config(cfg))
    for k, v in attrs.items(): setattr(tr, k, v)
    return tr

def loss_metrics_grads(tr, batch, chunked):
    tr.chunked_head = chunked
    tr.model.zero_grad(set_to_none=True)
    loss, metrics = tr.get_batch_loss_metrics(tr.model, batch)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}
    return loss.item(), metrics, grads

def differences(tr, batch)->dict:
    "Relative difference, chunked vs TRL, of the loss, each metric and each trainable parameter's gradient (by norm)."
    lt, mt, gt = loss_metrics_grads(tr, batch, False)
    lc, mc, gc = loss_metrics_grads(tr, batch, True)
    assert tr.prefnb_chunked['on'], tr.prefnb_chunked
    assert set(mc) == set(mt) and set(gc) == set(gt) and gt
    out = {'loss': abs(lc - lt) / abs(lt)}
    out |= {k: abs(mc[k] - mt[k]) / max(abs(mt[k]), 1e-6) for k in mt}
    out |= {f'grad {n}': ((gc[n] - gt[n]).norm() / gt[n].norm().clamp(min=1e-30)).item() for n in gt}
    return out

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

@pytest.mark.parametrize('name', list(CASES))
def test_chunked_head_equals_trl(name, small_chunks):
    tr = build(name)
    assert type(tr).__name__.startswith('Chunked') and small_chunks.chunk_tokens(512) == 5
    d = differences(tr, first_batch(tr))
    bad = {k: v for k, v in d.items() if not v <= REL}
    assert bad == {}, bad
    if 'head' in name:   # the head's own copy / adapter gets a gradient, and it matches
        assert any('lm_head' in k for k in d if k.startswith('grad ')), list(d)

def test_a_wrong_chunk_boundary_is_caught(small_chunks, monkeypatch):
    tr = build('orpo')
    batch = first_batch(tr)
    right = small_chunks._spans
    def planted(n, size):   # the second chunk starts one token early: a token twice, another never; still n in all
        s = right(n, size)
        return s[:1] + [(s[1][0] - 1, s[1][1] - 1)] + s[2:] if len(s) > 2 else s
    monkeypatch.setattr(small_chunks, '_spans', planted)
    bad = {k for k, v in differences(tr, batch).items() if not v <= REL}   # what test_chunked_head_equals_trl reports
    assert {'loss', 'nll_loss'} <= bad and any(k.startswith('grad ') for k in bad), bad

def test_the_full_logits_never_exist(small_chunks):
    import torch
    tr = build('orpo-lora')
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
    tr = build('simpo')
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
    tr = build('orpo', max_steps=2, logging_steps=1)
    tr.train()
    logged = [h for h in tr.state.log_history if 'loss' in h]
    assert logged and all(math.isfinite(h['loss']) for h in logged)
    assert {'logits/chosen', 'logits/rejected', 'nll_loss', 'log_odds_ratio', 'rewards/margins'} <= set(logged[0])
    assert tr.prefnb_chunked['on'] and any(n.startswith('chunked LM head') for n in tr.prefnb['notes'])
