"""prefnb.losses gives the numbers TRL 1.16 computes.

Two kinds of check:
- random token-level batches fed to TRL's real loss methods (`prefnb.losses.trl_reference`), many seeds and settings;
- real TRL trainers built on the tiny offline model, one batch from their own data pipeline, compared with
  prefnb's functions applied to log-probs computed from the same model.
"""
import subprocess, sys, tempfile
import pytest, torch
from prefnb.core import UserError
from prefnb.losses import (LOSS_FUNCTIONS, dpo_loss, kto_loss, simpo_loss, orpo_loss, loss_curves, plot_losses,
                           random_batch, prefnb_inputs, trl_reference, token_logps, log1mexp, as_batch)

DPO_KEYS = ('chosen_logps', 'rejected_logps', 'ref_chosen_logps', 'ref_rejected_logps', 'chosen_lengths', 'rejected_lengths')


EPS = 1e-5   # fp32 throughout (TRL's ORPO casts to fp32 itself): ~100 x fp32's rounding of the numbers compared


def size(x, beta=1.0):
    "How large the numbers are that the losses and metrics are computed from: the largest log-prob, times beta if above 1."
    return max(1.0, beta) * max(torch.as_tensor(v).abs().max().item() for k, v in x.items() if 'logps' in k)


def close(a, b, scale, eps=EPS):
    """`a` equals `b` to `eps` times the size of what both are computed from (`scale`, plus `b` itself): a margin or a
    log-odds is a difference of log-probs; its rounding is set by theirs, not by its own size, on any CPU's kernels."""
    return abs(a - b) <= eps * (abs(b) + scale)


def same(ours, trl_loss, trl_metrics, scale, eps=EPS):
    "Loss and every metric prefnb reports agree with TRL's (`close`); returns the metric names compared."
    assert close(ours.loss.item(), trl_loss, scale, eps), (ours.loss.item(), trl_loss)
    missing = set(ours.metrics) - set(trl_metrics)
    assert not missing, f"metrics TRL does not log: {missing}"
    for k, v in ours.metrics.items(): assert close(v, float(trl_metrics[k]), scale, eps), (k, v, trl_metrics[k])
    assert close(ours.losses.mean().item(), ours.loss.item(), 0.0, 1e-6)
    return sorted(ours.metrics)


# ---- random batches through TRL's own loss methods ---------------------------------------------------------------

@pytest.mark.numerics
@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('loss_type', list(LOSS_FUNCTIONS))
def test_dpo_loss_types_match_trl(loss_type, seed):
    b = random_batch(n=5, seed=seed); x = prefnb_inputs(b)
    for beta, eps in ((0.1, 0.0), (0.7, 0.2)):
        ours = dpo_loss(**{k: x[k] for k in DPO_KEYS}, beta=beta, loss_type=loss_type, label_smoothing=eps)
        keys = same(ours, *trl_reference('dpo', b, beta=beta, loss_type=loss_type, label_smoothing=eps), size(x, beta))
    assert keys == ['logps/chosen', 'logps/rejected', 'rewards/accuracies', 'rewards/chosen', 'rewards/margins', 'rewards/rejected']


@pytest.mark.parametrize('types,weights', [(['sigmoid', 'sft'], [1.0, 0.4]), (['sigmoid', 'sft'], None),
                                           (['ipo', 'hinge', 'robust'], [0.5, 0.25, 2.0])])
@pytest.mark.numerics
def test_dpo_combinations_match_trl(types, weights):
    b = random_batch(n=6, seed=3); x = prefnb_inputs(b)
    ours = dpo_loss(**{k: x[k] for k in DPO_KEYS}, beta=0.2, loss_type=types, loss_weights=weights, label_smoothing=0.1)
    same(ours, *trl_reference('dpo', b, beta=0.2, loss_type=types, loss_weights=weights, label_smoothing=0.1), size(x))


@pytest.mark.numerics
@pytest.mark.parametrize('labels', [[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [0, 1, 1, 0, 1]])
@pytest.mark.parametrize('loss_type', ['kto', 'apo_zero_unpaired'])
def test_kto_matches_trl(labels, loss_type):
    b = random_batch(n=5, seed=4); x = prefnb_inputs(b)
    b['label'] = torch.tensor(labels, dtype=torch.bool)
    hp = dict(beta=0.25, desirable_weight=1.2, undesirable_weight=0.8, loss_type=loss_type)
    ours = kto_loss(x['chosen_logps'], x['ref_chosen_logps'], b['label'], kl_logps=x['rejected_logps'],
                    ref_kl_logps=x['ref_rejected_logps'], **hp)
    same(ours, *trl_reference('kto', b, **hp), size(x))


@pytest.mark.numerics
def test_kto_kl_clamped_at_zero_like_trl():
    b = random_batch(n=4, seed=5)
    b['label'] = torch.tensor([1, 0, 1, 0], dtype=torch.bool)
    b['ref_logits'][4:] = 0.0            # uniform reference on the KL rows: the peaked random policy is less likely
    x = prefnb_inputs(b)
    raw = (x['rejected_logps'] - x['ref_rejected_logps']).mean().item()
    assert raw < 0
    ours = kto_loss(x['chosen_logps'], x['ref_chosen_logps'], b['label'], x['rejected_logps'], x['ref_rejected_logps'])
    same(ours, *trl_reference('kto', b), size(x))
    assert ours.metrics['kl'] == 0.0


@pytest.mark.parametrize('seed', [0, 1])
@pytest.mark.parametrize('beta,gamma,cpo_alpha,eps', [(2.0, 0.5, 0.0, 0.0), (2.5, 1.4, 0.0, 0.0), (0.1, 0.5, 1.0, 0.0),
                                                      (2.0, 1.0, 0.3, 0.1)])
@pytest.mark.numerics
def test_simpo_matches_trl_cpo_trainer(seed, beta, gamma, cpo_alpha, eps):
    b = random_batch(n=5, seed=seed); x = prefnb_inputs(b)
    ours = simpo_loss(x['chosen_logps'], x['rejected_logps'], x['chosen_lengths'], x['rejected_lengths'],
                      beta=beta, gamma=gamma, cpo_alpha=cpo_alpha, label_smoothing=eps)
    keys = same(ours, *trl_reference('simpo', b, beta=beta, gamma=gamma, cpo_alpha=cpo_alpha, label_smoothing=eps), size(x, beta))
    assert 'nll_loss' in keys


@pytest.mark.numerics
@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('beta', [0.1, 0.5])
def test_orpo_matches_trl(seed, beta):
    b = random_batch(n=5, seed=seed); x = prefnb_inputs(b)
    ours = orpo_loss(x['chosen_logps'], x['rejected_logps'], x['chosen_lengths'], x['rejected_lengths'], beta=beta,
                     nll_logps=x['nll_logps'], nll_lengths=x['nll_lengths'])
    keys = same(ours, *trl_reference('orpo', b, beta=beta), size(x))
    assert {'log_odds_ratio', 'log_odds_chosen', 'nll_loss'} <= set(keys)


@pytest.mark.numerics
def test_orpo_default_nll_is_completion_only_and_differs_from_trl():
    b = random_batch(n=5, seed=0); x = prefnb_inputs(b)
    ours = orpo_loss(x['chosen_logps'], x['rejected_logps'], x['chosen_lengths'], x['rejected_lengths'])
    trl_loss, trl_m = trl_reference('orpo', b)
    assert ours.metrics['nll_loss'] != pytest.approx(trl_m['nll_loss'], rel=1e-3)
    assert close(ours.metrics['log_odds_ratio'], float(trl_m['log_odds_ratio']), size(x))


@pytest.mark.numerics
def test_the_comparison_can_fail():
    b = random_batch(n=5, seed=0); x = prefnb_inputs(b)
    wrong_ipo = dpo_loss(**{k: x[k] for k in DPO_KEYS[:4]}, loss_type='ipo', chosen_lengths=torch.ones(5),
                         rejected_lengths=torch.ones(5))
    with pytest.raises(AssertionError): same(wrong_ipo, *trl_reference('dpo', b, loss_type='ipo'), size(x))
    right = dpo_loss(**{k: x[k] for k in DPO_KEYS})
    same(right, *trl_reference('dpo', b), size(x))   # and the same inputs pass when nothing is wrong
    with pytest.raises(AssertionError): same(right, *trl_reference('dpo', b, beta=0.2), size(x))


def test_gradients_flow_like_trl():
    "The loss is differentiable in the policy log-probs and not in the reference ones (as the trainer uses them)."
    b = random_batch(n=4, seed=0); x = prefnb_inputs(b)
    pc = x['chosen_logps'].clone().requires_grad_(); pr = x['rejected_logps'].clone().requires_grad_()
    dpo_loss(pc, pr, x['ref_chosen_logps'], x['ref_rejected_logps']).loss.backward()
    assert pc.grad is not None and (pc.grad < 0).all() and (pr.grad > 0).all()
    lp = x['chosen_logps'].clone().requires_grad_()
    kl = x['rejected_logps'].clone().requires_grad_()
    out = kto_loss(lp, x['ref_chosen_logps'], [1, 0, 1, 0], kl, x['ref_rejected_logps'])
    out.loss.backward()
    assert lp.grad is not None and kl.grad is None   # the KL reference point is detached


# ---- real trainers on the tiny model -----------------------------------------------------------------------------

def _perturb(model, seed=0):
    "Move the policy away from the reference so rewards are not all zero."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _logps(model, ids, attn, mask):
    with torch.no_grad(): return token_logps(model(input_ids=ids, attention_mask=attn).logits, ids, mask).sum(1)


@pytest.fixture(scope='module')
def tiny():
    from datasets import Dataset
    from prefnb.zoo import resolve_model, toy_rows
    return resolve_model('prefnb:tiny-chatml'), Dataset.from_list(toy_rows('pairs', 8, 0)), Dataset.from_list(toy_rows('kto', 8, 0))


def _common(**kw):
    return dict(output_dir=tempfile.mkdtemp(), use_cpu=True, bf16=False, report_to=[], per_device_train_batch_size=4,
                max_steps=1, **kw)


@pytest.mark.numerics
@pytest.mark.parametrize('loss_type,weights', [(['sigmoid'], None), (['ipo'], None), (['sigmoid', 'sft'], [1.0, 0.5])])
def test_real_dpo_trainer_on_tiny_model(tiny, loss_type, weights):
    from trl import DPOTrainer, DPOConfig
    path, pairs, _ = tiny
    tr = DPOTrainer(model=path, args=DPOConfig(**_common(beta=0.3, loss_type=loss_type, loss_weights=weights)), train_dataset=pairs)
    _perturb(tr.model); tr.model.train()
    batch = next(iter(tr.get_train_dataloader()))
    loss = tr.compute_loss(tr.model, batch)
    trl_m = {k: v[-1] for k, v in tr._metrics['train'].items()}
    ids, attn, cm = batch['input_ids'], batch['attention_mask'], batch['completion_mask']
    lp, rp, n = _logps(tr.model, ids, attn, cm), _logps(tr.ref_model, ids, attn, cm), ids.shape[0] // 2
    lens = cm.sum(1)
    ours = dpo_loss(lp[:n], lp[n:], rp[:n], rp[n:], beta=0.3, loss_type=loss_type, loss_weights=weights,
                    chosen_lengths=lens[:n], rejected_lengths=lens[n:])
    same(ours, loss.item(), trl_m, size(dict(logps=torch.cat([lp, rp]))))
    assert ours.metrics['rewards/margins'] != 0


@pytest.mark.numerics
def test_real_kto_trainer_on_tiny_model(tiny):
    from trl import KTOTrainer, KTOConfig
    path, _, kto = tiny
    args = KTOConfig(**_common(beta=0.2, desirable_weight=1.0, undesirable_weight=1.5))
    tr = KTOTrainer(model=path, args=args, train_dataset=kto)
    _perturb(tr.model); tr.model.train()
    batch = next(iter(tr.get_train_dataloader()))
    loss = tr.compute_loss(tr.model, batch)
    trl_m = {k: v[-1] for k, v in tr._metrics['train'].items()}
    lp = _logps(tr.model, batch['input_ids'], batch['attention_mask'], batch['completion_mask'])
    rp = _logps(tr.ref_model, batch['input_ids'], batch['attention_mask'], batch['completion_mask'])
    kl = _logps(tr.model, batch['KL_input_ids'], batch['KL_attention_mask'], batch['KL_completion_mask'])
    rkl = _logps(tr.ref_model, batch['KL_input_ids'], batch['KL_attention_mask'], batch['KL_completion_mask'])
    ours = kto_loss(lp, rp, batch['label'], kl, rkl, beta=0.2, desirable_weight=1.0, undesirable_weight=1.5)
    keys = same(ours, loss.item(), trl_m, size(dict(logps=torch.cat([lp, rp, kl, rkl]))))
    assert 'rewards/margins' in keys and ours.metrics['rewards/margins'] != 0   # a mixed batch, a policy that moved


def _pair_logps(model, batch, side):
    ids, attn, labels = batch[f'{side}_input_ids'], batch[f'{side}_attention_mask'], batch[f'{side}_labels']
    mask = (labels != -100).long()
    return _logps(model, ids, attn, mask), mask[:, 1:].sum(1).float(), _logps(model, ids, attn, attn), attn[:, 1:].sum(1).float()


@pytest.mark.numerics
@pytest.mark.parametrize('cpo_alpha', [0.0, 1.0])
def test_real_cpo_simpo_trainer_on_tiny_model(tiny, cpo_alpha):
    from trl.experimental.cpo import CPOTrainer, CPOConfig
    path, pairs, _ = tiny
    args = CPOConfig(**_common(loss_type='simpo', beta=2.0, simpo_gamma=0.8, cpo_alpha=cpo_alpha))
    tr = CPOTrainer(model=path, args=args, train_dataset=pairs, processing_class=_tok(path))
    tr.model.train()
    batch = next(iter(tr.get_train_dataloader()))
    loss, trl_m = tr.get_batch_loss_metrics(tr.model, batch)
    (pc, nc, _, _), (pr, nr, _, _) = _pair_logps(tr.model, batch, 'chosen'), _pair_logps(tr.model, batch, 'rejected')
    ours = simpo_loss(pc, pr, nc, nr, beta=2.0, gamma=0.8, cpo_alpha=cpo_alpha)
    same(ours, loss.item(), trl_m, size(dict(logps=torch.cat([pc / nc, pr / nr])), 2.0))


@pytest.mark.numerics
def test_real_orpo_trainer_on_tiny_model(tiny):
    from trl.experimental.orpo import ORPOTrainer, ORPOConfig
    path, pairs, _ = tiny
    tr = ORPOTrainer(model=path, args=ORPOConfig(**_common(beta=0.25)), train_dataset=pairs, processing_class=_tok(path))
    tr.model.train()
    batch = next(iter(tr.get_train_dataloader()))
    loss, trl_m = tr.get_batch_loss_metrics(tr.model, batch)
    (pc, nc, full, nfull), (pr, nr, _, _) = _pair_logps(tr.model, batch, 'chosen'), _pair_logps(tr.model, batch, 'rejected')
    ours = orpo_loss(pc, pr, nc, nr, beta=0.25, nll_logps=full, nll_lengths=nfull)
    same(ours, loss.item(), trl_m, size(dict(logps=torch.cat([pc / nc, pr / nr, full / nfull]))))


def _tok(path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(path)


# ---- user errors, curves, import hygiene -------------------------------------------------------------------------

def test_user_errors_name_the_argument():
    with pytest.raises(UserError, match=r"^rejected_logps: got 2 values, expected 3 like chosen_logps"):
        dpo_loss([1., 2., 3.], [1., 2.], [0., 0., 0.], [0., 0., 0.])
    with pytest.raises(UserError, match=r"^rejected_lengths: loss_type 'sigmoid_norm' averages over completion tokens"):
        dpo_loss([1.], [1.], [0.], [0.], loss_type='sigmoid_norm', chosen_lengths=[3])
    with pytest.raises(UserError, match=r"^dpo_loss_type: got \['rpo'\], expected one or more of"):
        dpo_loss([1.], [1.], [0.], [0.], loss_type='rpo')
    with pytest.raises(UserError, match=r"^dpo_loss_type: got \[\], expected"):
        dpo_loss([1.], [1.], [0.], [0.], loss_type=[])
    with pytest.raises(UserError, match=r"^labels: got 1 values, expected 2 like logps"):
        kto_loss([1., 2.], [0., 0.], [1])


@pytest.mark.numerics
def test_log1mexp_is_stable():
    x = torch.tensor([-1e-7, -1e-3, -0.69, -0.7, -5.0, -50.0], dtype=torch.float64)
    assert torch.allclose(log1mexp(x), torch.log(-torch.expm1(x)), rtol=1e-12)
    assert torch.isfinite(log1mexp(torch.tensor([-1e-8]))).all()


def test_loss_curves_and_plot(tmp_path):
    cv = loss_curves([-1.0, 0.0, 1.0], beta=0.5)
    assert cv['margins'] == [-1.0, 0.0, 1.0]
    assert cv['hinge'] == pytest.approx([2.0, 1.0, 0.0])
    assert cv['IPO'] == pytest.approx([(-2 - 1) ** 2, 1.0, (2 - 1) ** 2])    # (m/beta - 1/(2 beta))^2
    assert cv['SimPO (gamma=0.5)'][1] == pytest.approx(-torch.nn.functional.logsigmoid(torch.tensor(-0.5)).item())
    fig = plot_losses(cv, path=tmp_path / 'losses.png')
    assert (tmp_path / 'losses.png').stat().st_size > 1000 and len(fig.axes) == 5
