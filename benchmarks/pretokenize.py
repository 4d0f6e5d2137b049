"""Rows/s: TRL 1.16's own DPO dataset preparation (row by row) vs prefnb.data.pretokenize (batched).

Usage: python benchmarks/pretokenize.py [N_ROWS] [tiny-llama|tiny-chatml|MODEL_PATH]
Both produce the same prompt_ids / chosen_ids / rejected_ids (checked here and in tests/test_data.py).
"""
import os, sys, time
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
import datasets
datasets.disable_progress_bars()
from transformers import AutoTokenizer
from prefnb.testing import resolve_model, toy_rows
from prefnb import data as D

n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
name = sys.argv[2] if len(sys.argv) > 2 else 'tiny-llama'
tok = AutoTokenizer.from_pretrained(resolve_model(f'prefnb:{name}') if name.startswith('tiny-') else name)
prep = D.prepare(dict(rl='dpo', sequence_len=4096, datasets=[dict(path=toy_rows('orca', n), type='llama3.intel')]), tok)
ds = prep.train

from trl import DPOConfig, DPOTrainer
trainer = DPOTrainer.__new__(DPOTrainer)          # only its dataset preparation is timed: no model is built
trainer._tokenizer = tok
args = DPOConfig(output_dir='/tmp/bench', use_cpu=True, bf16=False, report_to=[], max_length=4096)
t = time.perf_counter(); theirs = trainer._prepare_dataset(ds, tok, args, 'train'); t_trl = time.perf_counter() - t
t = time.perf_counter(); ours = D.pretokenize(ds, tok, 'dpo'); t_ours = time.perf_counter() - t
for c in ('prompt_ids', 'chosen_ids', 'rejected_ids'): assert list(theirs[c]) == list(ours[c]), c
print(f'{n} rows, {name}: TRL {n / t_trl:,.0f} rows/s, prefnb.pretokenize {n / t_ours:,.0f} rows/s '
      f'({t_trl / t_ours:.1f}x); token ids identical')
