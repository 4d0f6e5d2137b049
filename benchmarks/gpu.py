"""GPU benchmark: a DPO step of a 0.5B-class Qwen2 shape (random weights) in bf16 with LoRA, prefnb vs TRL by hand.

    python benchmarks/gpu.py [--steps 20] [--batch 4] [--out benchmarks/results-gpu.json] [--planner]

Reports tokens/s (useful = non-padding tokens), model FLOPs utilisation (MFU) and prefnb's memory planner estimate
against torch.cuda.max_memory_allocated. Needs a CUDA GPU; on any other machine it exits with status 2 and says so.
MFU counts, per useful token, 2N FLOPs for the policy's forward, 2N for its backward to the activations (frozen base
weights need no weight gradients; LoRA's are negligible), 2N for the adapter-disabled reference forward, and the
attention score FLOPs; N = parameters without the embedding table.

--planner also checks the memory planner against torch.cuda.max_memory_allocated (records `gpu_planner_*`, ratio =
estimate / measured, goal within 15%): DPO, KTO, ORPO and SimPO, full fine-tuning and LoRA in this GPU's plan, and
fp16 QLoRA as a T4 runs it (the T4's device plan forced on this GPU), each in a fresh process.
"""
import argparse, json, math, os, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')

PEAK_BF16_TFLOPS = {'H200': 989, 'H100': 989, 'A100': 312, 'L40S': 362, 'L4': 121, 'A10G': 125, 'RTX 4090': 165, 'T4': 65}
QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True)

def peak_tflops(name:str)->float|None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)

def build_model_dir(dest:Path)->Path:
    "Save a random-weight 0.5B Qwen2 shape (bf16) with the tiny ChatML tokenizer (its ids all fit the vocabulary)."
    if (dest/'config.json').exists(): return dest
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    from prefnb.zoo import resolve_model
    tok = AutoTokenizer.from_pretrained(resolve_model('prefnb:tiny-chatml'))
    cfg = Qwen2Config(**QWEN2_05B, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(dest); tok.save_pretrained(dest)
    return dest

class Counter:
    "Wraps a data collator to count useful and computed tokens of each batch."
    def __init__(self, collate): self.collate, self.useful, self.computed, self.per_batch = collate, 0, 0, []
    def __call__(self, examples):
        b = self.collate(examples)
        m = b['attention_mask']; u = int(m.sum())
        self.useful += u; self.computed += m.numel(); self.per_batch.append((u, m.shape[0], m.shape[1]))
        return b

def flops_per_step(n_params, cfg, batches):
    "Model FLOPs of the DPO steps (see the module docstring)."
    h, L = cfg.hidden_size, cfg.num_hidden_layers
    total = 0
    for useful, rows, length in batches:
        total += 6 * n_params * useful + 3 * 2 * 2 * L * h * length * useful   # matmuls + attention scores/values
    return total

def run_one(who, model_dir, rows_path, a):
    import torch
    from run import step_timer, no_printer, tiny_cfg, quiet
    quiet()
    torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    common = dict(micro_batch_size=a.batch, sequence_len=a.seq, max_steps=a.steps, learning_rate=1e-5, logging_steps=5)
    t = step_timer()
    if who == 'prefnb':
        from prefnb.trainer import build_trainer
        cfg = tiny_cfg(base_model=str(model_dir), datasets=[dict(path=rows_path, type='chatml.prompt_pairs')], adapter='lora',
                       lora_r=16, lora_alpha=32, gradient_checkpointing=True, live_plots=True, health_checks=True, **common)
        tr = no_printer(build_trainer(cfg, callbacks=[t])); tr.args.save_strategy = 'no'
    else:
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import DPOConfig, DPOTrainer
        from prefnb.data import prepare
        tok = AutoTokenizer.from_pretrained(model_dir)
        data = prepare(dict(rl='dpo', sequence_len=a.seq, datasets=[dict(path=rows_path, type='chatml.prompt_pairs')]), tok).train
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
        args = DPOConfig(output_dir=tempfile.mkdtemp(), bf16=True, report_to='none', save_strategy='no', disable_tqdm=True,
                         per_device_train_batch_size=a.batch, max_length=a.seq, max_steps=a.steps, learning_rate=1e-5,
                         logging_steps=5, gradient_checkpointing=True, seed=42)
        tr = no_printer(DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[t],
                                   peft_config=LoraConfig(r=16, lora_alpha=32, target_modules='all-linear', task_type='CAUSAL_LM')))
    counter = Counter(tr.data_collator); tr.data_collator = counter
    tr.train()
    skip = 2
    steps_s = t.times[1 + skip:]
    secs = steps_s[-1] - steps_s[0]
    timed = counter.per_batch[1 + skip:1 + skip + len(steps_s) - 1]
    useful = sum(u for u, _, _ in timed)
    n = sum(p.numel() for n_, p in tr.model.named_parameters() if 'embed_tokens' not in n_)
    flops = flops_per_step(n, tr.model.config, timed)
    return dict(tokens_per_s=useful / secs, flops_per_s=flops / secs, peak_gib=torch.cuda.max_memory_allocated() / 2**30,
                useful_fraction=counter.useful / counter.computed)

PLANNER_CASES = [(m, a, gpu) for m in ('dpo', 'kto', 'orpo', 'simpo') for a, gpu in (('full', None), ('lora', None), ('qlora', 'T4'))]

def planner_child(method, adapter, gpu, model_dir, rows_path, batch, seq):
    "One planner case in a fresh process: train 3 steps, print the measured peak and the planner's estimate."
    import torch
    from run import tiny_cfg, no_printer, quiet
    quiet()
    from prefnb.trainer import build_trainer
    from prefnb.core import device_info
    from prefnb.memory import device_plan, gpu_facts, plan_memory
    facts = gpu_facts(gpu) | dict(bitsandbytes='installed') if gpu else device_info()
    cfg = tiny_cfg(base_model=model_dir, rl=method, datasets=[dict(path=rows_path, type='chatml.prompt_pairs')],
                   adapter=None if adapter == 'full' else adapter, lora_r=16, lora_alpha=32, gradient_checkpointing=True,
                   micro_batch_size=batch, sequence_len=seq, excess_length_strategy='truncate', max_steps=3,
                   learning_rate=1e-5, live_plots=False, health_checks=False)
    torch.cuda.reset_peak_memory_stats()
    tr = no_printer(build_trainer(cfg, info=facts)); tr.args.save_strategy = 'no'
    tr.train()
    plan = device_plan(cfg, facts)
    est = plan_memory(model_dir, method, adapter=None if adapter == 'full' else adapter, micro_batch_size=batch, sequence_len=seq,
                      dtype=plan['precision'], gradient_checkpointing=True)
    parts = {k: v for k, v in est.parts.items() if k != 'overhead'}   # max_memory_allocated leaves out the CUDA context
    print('RESULT ' + json.dumps(dict(measured=torch.cuda.max_memory_allocated(), estimate=sum(parts.values()), precision=plan['precision'])))

def planner_records(model_dir, a):
    import subprocess
    from run import record, rows_file, long_tailed_rows
    rows_path = rows_file(long_tailed_rows(a.batch * 8 * 2, cut=a.seq * 2))
    out = []
    for method, adapter, gpu in PLANNER_CASES:
        p = subprocess.run([sys.executable, __file__, '--child', method, adapter, gpu or '', str(model_dir), rows_path, str(a.batch), str(a.seq)],
                           capture_output=True, text=True)
        line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
        if not line:
            out.append(dict(name=f'gpu_planner_{method}_{adapter}_failed', prefnb=None, baseline=None, unit='', ratio=None, goal='ran', met=False,
                            note=p.stderr[-300:])); continue
        r = json.loads(line[0][7:])
        rec = record(f"gpu_planner_{method}_{adapter}_{r['precision']}" + ('_as_T4' if gpu else ''), r['estimate'] / 2**30, r['measured'] / 2**30,
                     'GiB', None, f'Qwen2-0.5B shape, batch {a.batch} x {a.seq} (truncated to full length), checkpointing; estimate = plan_memory '
                     'without the CUDA overhead (prefnb column), measured = torch.cuda.max_memory_allocated (baseline column)',
                     ratio=r['estimate'] / r['measured'])
        rec.update(goal='0.85 <= ratio <= 1.15', met=0.85 <= rec['ratio'] <= 1.15); out.append(rec)
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=20); ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--seq', type=int, default=1024); ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--out', default=str(Path(__file__).resolve().parent/'results-gpu.json'))
    ap.add_argument('--planner', action='store_true', help='also check the memory planner (fresh process per case)')
    ap.add_argument('--child', nargs=7, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        m, ad, g, md, rp, b, sq = a.child
        return planner_child(m, ad, g or None, md, rp, int(b), int(sq)) or 0
    import torch
    if not torch.cuda.is_available():
        print('benchmarks/gpu.py needs a CUDA GPU and this machine has none (torch.cuda.is_available() is False); '
              'run it on a GPU machine, e.g. a free Colab T4 or an H100.', file=sys.stderr)
        return 2
    from run import record, rows_file, long_tailed_rows, markdown, median
    import run as R
    name = torch.cuda.get_device_name(0); R.MACHINE = f'{os.cpu_count()} CPU cores, {name}'
    model_dir = build_model_dir(Path(tempfile.gettempdir())/'prefnb-bench-qwen2-0.5b-shape')
    rows_path = rows_file(long_tailed_rows(a.batch * (a.steps + 4) * 2))
    res = {'prefnb': [], 'trl': []}
    for rep in range(a.reps):
        for who in (('prefnb', 'trl') if rep % 2 == 0 else ('trl', 'prefnb')): res[who].append(run_one(who, model_dir, rows_path, a))
    m = {w: {k: median(r[k] for r in rs) for k in rs[0]} for w, rs in res.items()}
    peak = peak_tflops(name)
    from prefnb.memory import plan_memory
    plan = plan_memory(str(model_dir), 'dpo', adapter='lora', micro_batch_size=a.batch, sequence_len=a.seq, gradient_checkpointing=True)
    recs = [record('gpu_tokens_per_s', m['prefnb']['tokens_per_s'], m['trl']['tokens_per_s'], 'useful tokens/s', 'ratio >= 0.98',
                   f'DPO + LoRA r16, bf16, Qwen2-0.5B shape (random weights), batch {a.batch}, seq <= {a.seq}, {a.steps} steps, '
                   f'medians of {a.reps} interleaved; useful fraction prefnb {m["prefnb"]["useful_fraction"]:.2f}, TRL {m["trl"]["useful_fraction"]:.2f}'),
            record('gpu_mfu', m['prefnb']['flops_per_s'] / (peak * 1e12) if peak else None,
                   m['trl']['flops_per_s'] / (peak * 1e12) if peak else None, 'fraction of peak bf16', None,
                   f'peak {peak} TFLOPS assumed for {name}' if peak else f'unknown peak for {name}'),
            record('gpu_peak_memory_gib', m['prefnb']['peak_gib'], m['trl']['peak_gib'], 'GiB', None, 'torch.cuda.max_memory_allocated'),
            record('gpu_planner_estimate_vs_measured', plan.total_gib, m['prefnb']['peak_gib'], 'GiB', 'ratio >= 1',
                   'prefnb.memory.plan_memory estimate (prefnb column) vs the measured peak (baseline column); >= 1 means it does not under-estimate')]
    if a.planner: recs += planner_records(model_dir, a)
    out = Path(a.out); out.write_text(json.dumps(recs, indent=1) + '\n'); out.with_suffix('.md').write_text(markdown(recs))
    print(f'-> {out}')
    return 0

if __name__ == '__main__': sys.exit(main())
