"""Fit the memory planner's one measured CPU constant on shapes the planner benchmark does not check.

    python benchmarks/fit_planner.py      # writes benchmarks/planner_fit.json (about 5 minutes on 2 cores)

The constant: `prefnb.memory.CPU_HEAD_BYTES`, the bytes per value of one tile of TRL 1.16's fused LM head
(tokens x vocabulary columns, `prefnb.memory.HEAD_TILE`) at the backward's peak when TRL folds the tiles in torch,
as it does on a CPU. It is the `logits` part of a CPU plan for the methods on TRL's fused head (DPO, IPO, KTO);
everything else in a plan is counted from the model's shape (weights, gradients, optimizer state, activations per
layer) or is prefnb's own chunked head (ORPO, SimPO: `chunked_logits_bytes`, four fp32 chunks, from its code).

Procedure. For each shape in `run.FIT_SIZES` (none of them in `run.PLANNER_SIZES`, which `run.py --only planner`
checks: asserted in run.py) and for DPO and KTO, full fine-tuning and LoRA, one training run in a fresh process
(`run.py`'s planner child: peak RSS over the RSS before the model, glibc returning freed blocks over 64 KiB):

    implied = (measured - (estimate - logits)) / tile values

where `estimate` and `logits` are the plan's with the current constant (so `logits / CPU_HEAD_BYTES` is the number
of tile values). The record keeps each case and the median; set `CPU_HEAD_BYTES` in nbs/04_memory.ipynb to the
median, rounded, then check it with `python benchmarks/run.py --only planner` (other shapes, all four methods).
"""
import json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

def fit():
    from prefnb.memory import CPU_HEAD_BYTES
    cases = []
    for size, (h, L, V) in run.FIT_SIZES.items():
        for method in ('dpo', 'kto'):
            for adapter in ('full', 'lora'):
                r = run.planner_case(method, adapter, size)
                tile = r['parts']['logits'] / CPU_HEAD_BYTES
                other = r['estimate'] - r['parts']['logits']
                cases.append(dict(shape=f'{h}x{L} vocab {V}', method=method, adapter=adapter, measured_mib=round(r['measured'] / 2**20, 1),
                                  other_parts_mib=round(other / 2**20, 1), tile_values=int(tile),
                                  implied=round((r['measured'] - other) / tile, 2)))
                print(f"  {cases[-1]}", flush=True)
    med = statistics.median(c['implied'] for c in cases)
    rec = dict(constant='CPU_HEAD_BYTES', median=round(med, 2), used=CPU_HEAD_BYTES, cases=cases,
               fitted_on=[f'{h}x{L} vocab {V}' for h, L, V in run.FIT_SIZES.values()],
               checked_on=[f'{h}x{L} vocab {V}' for h, L, V in run.PLANNER_SIZES.values()],
               setup=run.PLANNER_SETUP, note=f'benchmarks/fit_planner.py, {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; {run.load()}',
               machine=run.machine())
    (run.HERE/'planner_fit.json').write_text(json.dumps(rec, indent=1) + '\n')
    print(f'median implied CPU_HEAD_BYTES {med:.2f} (prefnb.memory uses {CPU_HEAD_BYTES}) -> {run.HERE/"planner_fit.json"}')
    return rec

if __name__ == '__main__': fit()
