"""prefnb against TRL set up by hand: ratios of back-to-back runs in one process, medians over repeats.

    python benchmarks/run.py [--quick] [--out FILE] [--only NAME ...] [--update]

Writes a JSON list of {"name", "prefnb", "baseline", "unit", "ratio", "goal", "met"} records (plus "note" and
"machine") to --out (default benchmarks/results.json) and a markdown table next to it (same name, .md).
`ratio` is always prefnb / baseline; `goal` says what must hold ("ratio >= 0.98", "prefnb >= 0.75") and `met`
whether it did (null where there is no goal); each record also says which `benchmark` wrote it, when (`measured`, UTC) and
whether with --quick, and its note ends with the machine's load average. --update keeps the file's records of the benchmarks
not run. Benchmarks: overhead, padding, dataprep, memory, planner, head, scaling, startup
(the GPU one is benchmarks/gpu.py). Each is described in nbs/guides/benchmarks.ipynb.
"""
import argparse, json, math, os, platform, random, statistics, subprocess, sys, tempfile, time
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')
os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
QUICK = False

# ---------------------------------------------------------------- records

def machine()->str:
    try:
        import torch
        if torch.cuda.is_available(): return f'{os.cpu_count()} CPU cores, {torch.cuda.get_device_name(0)}'
    except ImportError: pass
    return f'{os.cpu_count()} CPU cores, no GPU ({platform.processor() or platform.machine()})'

def check_goal(goal:str|None, prefnb, ratio)->bool|None:
    "Evaluate a goal string such as 'ratio >= 0.98' or 'prefnb <= 1.2'."
    if not goal: return None
    if goal == 'ran': return False
    lhs, op, rhs = goal.split()
    v = dict(ratio=ratio, prefnb=prefnb)[lhs]
    if v is None or (isinstance(v, float) and math.isnan(v)): return False
    return {'>=': v >= float(rhs), '<=': v <= float(rhs)}[op]

def record(name, prefnb, baseline, unit, goal=None, note='', ratio=None):
    if ratio is None: ratio = prefnb / baseline if baseline not in (None, 0) and prefnb is not None else None
    rnd = lambda x: None if x is None else float(f'{float(x):.6g}')   # 6 significant digits: 0.0283 s keeps its ratio
    r = dict(name=name, prefnb=rnd(prefnb), baseline=rnd(baseline), unit=unit, ratio=rnd(ratio), goal=goal,
             met=check_goal(goal, prefnb, ratio), note=f'{note}; {load()}' if note else load(), machine=MACHINE)
    print(f"  {name}: prefnb {r['prefnb']} {unit}, baseline {r['baseline']}, ratio {r['ratio']}, goal {goal} -> {r['met']}", flush=True)
    return r

def median(xs): return statistics.median(xs)

def load()->str:
    "The machine's load average now (the machines are shared: it says how far to trust a time)."
    return 'load average %.1f / %.1f / %.1f (1 / 5 / 15 min) on %d cores' % (*os.getloadavg(), os.cpu_count())

def quiet():
    import warnings, datasets, transformers
    warnings.filterwarnings('ignore')
    datasets.disable_progress_bars(); transformers.logging.set_verbosity_error(); transformers.logging.disable_progress_bar()

# ---------------------------------------------------------------- shared pieces

def step_timer():
    "A callback recording the wall time at the end of every optimizer step."
    from transformers import TrainerCallback
    class StepTimer(TrainerCallback):
        def __init__(self): self.times = []
        def on_train_begin(self, args, state, control, **kw): self.times = [time.perf_counter()]
        def on_step_end(self, args, state, control, **kw): self.times.append(time.perf_counter())
        def steps_per_s(self, skip=2):
            t = self.times[1 + skip:]   # skip the first steps (allocator / dataloader warm-up)
            return (len(t) - 1) / (t[-1] - t[0])
        @property
        def seconds(self): return self.times[-1] - self.times[0]
    return StepTimer()

def no_printer(trainer):
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    for c in (PrinterCallback, ProgressCallback): trainer.remove_callback(c)
    return trainer

SAME_AS_PREFNB = dict(bf16=False, gradient_checkpointing=False, optim='adamw_torch', lr_scheduler_type='cosine', warmup_steps=0.1,
                      logging_first_step=True, data_seed=42)

def trl_dpo_by_hand(model_path, tok, train_ds, callbacks=(), **args):
    "What a user writes without prefnb: TRL's DPOTrainer with its defaults plus the same batch, seed and lr."
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype='float32')
    kw = dict(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to='none', save_strategy='no') | args   # progress bar on, as TRL's default and prefnb's
    if 'bf16' not in args: kw |= SAME_AS_PREFNB   # TRL's CPU defaults are bf16 autocast + gradient checkpointing; compare like with like
    return no_printer(DPOTrainer(model=model, args=DPOConfig(**kw), train_dataset=train_ds, processing_class=tok, callbacks=list(callbacks)))

def rows_file(rows)->str:
    "Write rows to a JSON-lines file (configs name data by path)."
    f = Path(tempfile.mkdtemp())/'rows.jsonl'
    f.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return str(f)

def tiny_cfg(**kw):
    from prefnb.config import load_config
    base = dict(base_model='prefnb:tiny-chatml', rl='dpo', rl_beta=0.1, sequence_len=1024, micro_batch_size=8, gradient_accumulation_steps=1,
                num_epochs=1, learning_rate=3e-4, gradient_checkpointing=False, logging_steps=4, seed=42,
                output_dir=tempfile.mkdtemp(), datasets=[dict(path='prefnb:toy-orca', type='chatml.intel')])
    cfg = base | kw
    if cfg['rl'] == 'orpo': cfg.pop('rl_beta')   # ORPO reads orpo_alpha; the config refuses another method's option
    return load_config(cfg)

WORDS = None
def long_tailed_rows(n, seed=0, prompt_words=60, response_words=150, sigma=0.6, cut=700):
    "Pairs with log-normal prompt / response lengths (in words) and a long tail, cut at `cut` words per sequence."
    global WORDS
    from prefnb.zoo import toy_rows
    if WORDS is None: WORDS = sorted({w for r in toy_rows('pairs', 200, 0) for k in ('prompt', 'chosen', 'rejected') for w in r[k].split()})
    rng = random.Random(seed)
    ln = lambda med: max(1, int(rng.lognormvariate(math.log(med), sigma)))
    txt = lambda k: ' '.join(rng.choice(WORDS) for _ in range(k))
    rows = []
    for _ in range(n):
        p = min(ln(prompt_words), cut // 2)
        rows.append(dict(prompt=txt(p), chosen=txt(min(ln(response_words), cut - p)), rejected=txt(min(ln(response_words), cut - p))))
    return rows

def prefnb_length(p, c, r): return p + max(c, r)          # prefnb.trainer.add_length_column's definition

def padding_fraction(lens, batches):
    "useful / computed tokens of DPO batches: TRL pads prompt+chosen and prompt+rejected of a batch to one length."
    useful = computed = 0
    for b in batches:
        rows = [lens[i] for i in b]
        useful += sum(2 * p + c + r for p, c, r in rows)
        computed += 2 * len(rows) * max(p + max(c, r) for p, c, r in rows)
    return useful / computed

def packed_fraction(lens, batches, one_row):
    "useful / computed tokens when prefnb packs each batch's 2 x batch sequences (prefnb.packing._bins decides the rows)."
    from prefnb.packing import _bins
    useful = computed = 0
    for b in batches:
        seqs = [lens[i][0] + lens[i][1] for i in b] + [lens[i][0] + lens[i][2] for i in b]
        rows = _bins(seqs, one_row)
        useful += sum(seqs); computed += len(rows) * max(sum(seqs[i] for i in r) for r in rows)
    return useful / computed

def sorted_fraction(lens, bs):
    "The useful fraction of batches cut from all rows sorted by length: the bound for any grouping that pads."
    order = sorted(range(len(lens)), key=lambda i: prefnb_length(*lens[i]))
    return padding_fraction(lens, [order[i:i + bs] for i in range(0, len(order), bs)])

def random_batches(n, bs, seed):
    idx = list(range(n)); random.Random(seed).shuffle(idx)
    return [idx[i:i + bs] for i in range(0, n, bs)]

def grouped_batches(lens, bs, seed):
    "Batches in the order transformers' LengthGroupedSampler (group_by_length) yields, with prefnb's lengths."
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler
    g = torch.Generator(); g.manual_seed(seed)
    idx = list(LengthGroupedSampler(bs, lengths=[prefnb_length(*l) for l in lens], generator=g))
    return [idx[i:i + bs] for i in range(0, len(idx), bs)]

def simulated_lengths(n, seed=0, cut=1024, prompt=100, response=250, sigma=0.8):
    "UltraFeedback-like token lengths: log-normal prompts around 100 and responses around 250, each sequence cut at `cut`."
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = min(int(rng.lognormvariate(math.log(prompt), sigma)) + 1, cut // 2)
        c, r = (min(int(rng.lognormvariate(math.log(response), sigma)) + 1, cut - p) for _ in range(2))
        out.append((p, c, r))
    return out

# ---------------------------------------------------------------- 1. wrapper overhead

def bench_overhead():
    "Steps/s of prefnb.train (health + live-plot callbacks on) vs the identical TRL DPOTrainer, interleaved."
    quiet()
    from prefnb.run import train
    from prefnb.tokenizer import load_tokenizer
    from prefnb.data import prepare
    from prefnb.zoo import resolve_model, toy_rows
    n, reps = (128, 5) if QUICK else (256, 7)   # ~10 ms steps: fewer steps per run leave the ratio to noise
    # batch 1: no padding between rows, so prefnb's length-grouped order and TRL's random order compute the same
    # tokens per epoch and only the wrapper differs.  Steps of the tiny model are ~10 ms: a worst case for overhead.
    common = dict(micro_batch_size=1, logging_steps=4, learning_rate=3e-4, seed=42, sequence_len=256)
    datasets = [dict(path=rows_file(toy_rows('orca', n, 0)), type='chatml.intel')]
    cfg0 = tiny_cfg(datasets=datasets, **common)
    tok = load_tokenizer(cfg0)
    data = prepare(cfg0, tok)
    ours, theirs, ours_wall, theirs_wall = [], [], [], []
    for rep in range(reps):
        for who in ((0, 1) if rep % 2 == 0 else (1, 0)):
            t = step_timer()
            if who == 0:
                cfg = tiny_cfg(datasets=datasets, live_plots=True, health_checks=True, **common)
                w = time.perf_counter()
                import contextlib, io
                with contextlib.redirect_stdout(io.StringIO()): train(cfg, overwrite=True, callbacks=[t])
                ours_wall.append(time.perf_counter() - w); ours.append(t.steps_per_s())
            else:
                w = time.perf_counter()
                tr = trl_dpo_by_hand(resolve_model('prefnb:tiny-chatml'), tok, data.train, [t], per_device_train_batch_size=1,
                                     learning_rate=3e-4, seed=42, max_length=256, logging_steps=4, num_train_epochs=1)
                tr.train(); tr.save_model(tempfile.mkdtemp())
                theirs_wall.append(time.perf_counter() - w); theirs.append(t.steps_per_s())
    return [record('overhead_steps_per_s', median(ours), median(theirs), 'steps/s', 'ratio >= 0.98',
                   f'tiny model, batch 1, {n} steps per run, medians of {reps} interleaved runs; prefnb with HealthCallback, '
                   'LivePlotCallback (outside a notebook: final figure only), MetricsFile, NanGuard, GracefulStop'),
            record('overhead_end_to_end_s', median(ours_wall), median(theirs_wall), 's', None,
                   'whole call: prefnb.train (prepared data reused? no: prepare + build + train + save + health + metrics.png) '
                   'vs TRL DPOTrainer build + train + save_model on already prepared rows')]

# ---------------------------------------------------------------- 2. padding waste

def bench_padding():
    quiet()
    out = []
    n = 20000 if QUICK else 60000
    lens = simulated_lengths(n)
    rnd, grp = padding_fraction(lens, random_batches(n, 8, 0)), padding_fraction(lens, grouped_batches(lens, 8, 0))
    out.append(record('padding_useful_fraction_simulated', grp, rnd, 'useful/computed tokens', 'prefnb >= 0.75',
                      f'{n} simulated UltraFeedback-like rows (log-normal prompt ~100, responses ~250, cut 1024), batch 8; '
                      "prefnb = transformers' LengthGroupedSampler on p + max(c, r), baseline = random batches (TRL default)"))
    one, rows = packed_fraction(lens, random_batches(n, 8, 0), True), packed_fraction(lens, grouped_batches(lens, 8, 0), False)
    out.append(record('padding_free_useful_fraction_one_row', one, rnd, 'useful/computed tokens', 'prefnb >= 0.95',
                      f'same {n} simulated rows, random batches of 8 pairs, prefnb padding_free with FlashAttention 2 (all 16 sequences '
                      'in one row; TRL 1.16 has padding_free off for DPO)'))
    out.append(record('padding_free_useful_fraction_sdpa', rows, rnd, 'useful/computed tokens', None,
                      f'same rows, group_by_length batches, prefnb padding_free with SDPA / eager: first-fit rows no longer than the '
                      'longest sequence (one long row would cost more attention than the padding saves)'))
    out.extend(real_epoch())
    return out

def _useful(tr, packed=None):
    "useful / computed tokens of one pass over the trainer's real train dataloader (its sampler and TRL's collator)."
    from prefnb.packing import pack
    u = c = 0
    for b in tr.get_train_dataloader():
        m = b['attention_mask']; u += int(m.sum())
        c += m.numel() if packed is None else pack(dict(b, labels=b['input_ids']), packed)[0]['input_ids'].numel()
    return u / c

def _tiny_pair(n, seed=0, **lengths):
    "prefnb's trainer (padded or padding-free) and TRL's by hand on the same `n` long-tailed rows (prepared once)."
    from prefnb.trainer import build_trainer
    from prefnb.tokenizer import load_tokenizer
    from prefnb.data import prepare
    from prefnb.zoo import resolve_model
    rows = long_tailed_rows(n, seed, **lengths)
    cfg = tiny_cfg(datasets=[dict(path=rows_file(rows), type='chatml.prompt_pairs')], micro_batch_size=8, sequence_len=512,
                   live_plots=False, health_checks=False)
    tok = load_tokenizer(cfg); data = prepare(cfg, tok)
    def ours(cbs=(), packed=False):
        c = cfg.model_copy(update=dict(dpo_padding_free=packed))
        tr = no_printer(build_trainer(c, callbacks=list(cbs), data=data)); tr.args.save_strategy = 'no'; return tr
    def theirs(cbs=()):
        return trl_dpo_by_hand(resolve_model('prefnb:tiny-chatml'), tok, data.train.select_columns(['prompt', 'chosen', 'rejected']), cbs,
                               per_device_train_batch_size=8, learning_rate=3e-4, seed=42, max_length=512, logging_steps=4, num_train_epochs=1)
    return ours, theirs, len(data.train)

def real_epoch():
    "Real collated batches, and one CPU epoch of the tiny model: TRL's random batches vs prefnb's group_by_length, padded or packed."
    n_frac = 1000 if QUICK else 4000
    ours, theirs, kept = _tiny_pair(n_frac, prompt_words=20, response_words=50, cut=200)
    desc = f'{kept} long-tailed rows (log-normal prompts ~20 words, responses ~50, tiny tokenizer ~2-3 tokens a word), batch 8'
    tr = ours()
    out = [record('padding_useful_fraction_real', _useful(tr), _useful(theirs()), 'useful/computed tokens', 'prefnb >= 0.75',
                  f'attention masks of one pass over the real train dataloaders (sampler + TRL collator), {desc}'),
           record('padding_free_useful_fraction_real_sdpa', _useful(tr, False), _useful(theirs()), 'useful/computed tokens', None,
                  f'the same batches as prefnb padding_free packs them for SDPA (rows no longer than the longest sequence), {desc}')]
    n, reps = (256, 3) if QUICK else (1600, 3)
    ours, theirs, kept = _tiny_pair(n, 1, prompt_words=10, response_words=25, cut=100)
    runs = {'padded': lambda cbs: ours(cbs), 'packed': lambda cbs: ours(cbs, packed=True), 'trl': theirs}
    times, useful = {k: [] for k in runs}, {}
    for rep in range(reps):
        for who in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
            t = step_timer(); tr = runs[who]([t])
            useful[who] = _useful(tr, False if who == 'packed' else None); tr.train(); times[who].append(t.seconds)
    m = {k: median(v) for k, v in times.items()}
    head = f'one training epoch on CPU (SDPA), tiny model, {kept} rows, batch 8, medians of {reps} interleaved runs: '
    return out + [record('padding_epoch_s', m['padded'], m['trl'], 's/epoch', 'ratio <= 0.77',
                         head + f"prefnb group_by_length (useful {useful['padded']:.2f}) vs TRL random order (useful {useful['trl']:.2f}); "
                         f"speed-up {m['trl'] / m['padded']:.2f}x (goal: 1.3x)"),
                  record('padding_free_epoch_s', m['packed'], m['trl'], 's/epoch', 'ratio <= 0.77',
                         head + f"prefnb group_by_length + padding_free (useful {useful['packed']:.2f}) vs TRL random order; "
                         f"speed-up {m['trl'] / m['packed']:.2f}x")]

# ---------------------------------------------------------------- 3. data preparation

def orca_as_trl_conversations(rows):
    "The hand-written mapping a TRL user needs for Intel/orca_dpo_pairs: conversational prompt / chosen / rejected."
    out = []
    for r in rows:
        prompt = ([dict(role='system', content=r['system'])] if r['system'] else []) + [dict(role='user', content=r['question'])]
        out.append(dict(prompt=prompt, chosen=[dict(role='assistant', content=r['chosen'])],
                        rejected=[dict(role='assistant', content=r['rejected'])]))
    return out

def trl_prepare(ds, tok, max_length=4096):
    "TRL 1.16's own dataset preparation (chat template, tokenisation), without building a model."
    from trl import DPOConfig, DPOTrainer
    tr = DPOTrainer.__new__(DPOTrainer); tr._tokenizer = tok
    args = DPOConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to='none', max_length=max_length)
    return tr._prepare_dataset(ds, tok, args, 'train')

def prefnb_trainer_prepare(ds, tok, max_length=4096):
    "What prefnb's trainer does with prepared DPO rows: keep the ids `prepare` made (drop prompts that fill max_length)."
    from trl import DPOConfig
    from prefnb.trainer import trainer_class
    from prefnb.methods import METHODS
    cls = trainer_class(METHODS['dpo'], ds); tr = cls.__new__(cls); tr._tokenizer = tok
    args = DPOConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to='none', max_length=max_length)
    return tr._prepare_dataset(ds, tok, args, 'train')

TEXT = ['prompt', 'chosen', 'rejected']

def time_dataprep(n, tok, model='chatml', ours_first=False):
    from datasets import Dataset
    from prefnb.data import prepare, IDS
    from prefnb.zoo import toy_rows
    rows = toy_rows('orca', n, 1)
    cfg = dict(rl='dpo', sequence_len=4096, datasets=[dict(path=rows, type=f'{model}.intel')])
    import gc   # each side starts without the other's garbage to collect (the ids of thousands of rows)
    def theirs():
        gc.collect(); t = time.perf_counter(); d = trl_prepare(Dataset.from_list(orca_as_trl_conversations(rows)), tok); return d, time.perf_counter() - t
    def prefnb_():
        gc.collect(); t = time.perf_counter(); d = prefnb_trainer_prepare(prepare(cfg, tok).train, tok); return d, time.perf_counter() - t
    if ours_first: (ours, t_ours), (base, t_base) = prefnb_(), theirs()   # alternate the order between repeats: load drifts
    else: (base, t_base), (ours, t_ours) = theirs(), prefnb_()
    trl_on_ours = trl_prepare(ours.select_columns(TEXT), tok)   # TRL's own tokenisation of prefnb's text
    bag = lambda d, c: sorted(map(tuple, d[c]))   # prepare shuffles rows, so compare the sets of rows
    same = dict(prompt=bag(base, 'prompt_ids') == bag(ours, 'prompt_ids'),
                completions=all(bag(base, c) == bag(ours, c) for c in ('chosen_ids', 'rejected_ids')),
                trl=all(list(ours[c]) == list(trl_on_ours[c]) for c in IDS))
    return n / t_ours, n / t_base, same

def bench_dataprep():
    quiet()
    from transformers import AutoTokenizer
    from prefnb.zoo import resolve_model
    n, reps = (2000, 5) if QUICK else (10000, 5)   # 5 even in --quick: a load burst on one side of one repeat moves a median of 3
    out = []
    for model in ('chatml', 'llama'):
        tok = AutoTokenizer.from_pretrained(resolve_model(f'prefnb:tiny-{model}'))
        res = [time_dataprep(n, tok, 'llama3' if model == 'llama' else 'chatml', rep % 2 == 1) for rep in range(reps)]
        s3 = res[0][2]
        same = (f"ids identical to TRL's own tokenisation of the same text: {s3['trl']}; against the hand-mapped conversations: "
                f"prompts {s3['prompt']}, completions {s3['completions']}"
                + ('' if s3['completions'] else " (prefnb's axolotl-style strategies end a completion at the end-of-turn token; "
                   "TRL's conversational template also trains on the newline the template writes after it)"))
        out.append(record(f'dataprep_rows_per_s_{model}', median(r[0] for r in res), median(r[1] for r in res), 'rows/s', 'ratio >= 2',
                          f'{n} Intel-orca rows, tiny-{model} tokenizer, medians of {reps}: prefnb.data.prepare (strategy, length fit, '
                          'ids kept) + the trainer\'s dataset step (what prefnb.train does) vs hand mapping to conversations + '
                          f'TRL DPOTrainer preparation. {same}'))
    return out

# ---------------------------------------------------------------- 4. memory by reference strategy

STRATEGIES = {   # name: config fields
    'full-copy': dict(rl='dpo'),
    'lora-adapter-disabled': dict(rl='dpo', adapter='lora', lora_r=16, lora_alpha=32),
    'precomputed': dict(rl='dpo', precompute_ref_log_probs=True),
    'simpo-ref-free': dict(rl='simpo', rl_beta=2.0, simpo_gamma=1.0),
    'orpo-ref-free': dict(rl='orpo'),
}

def mid_model(dest:Path, hidden=768, layers=12, vocab=None):
    "A Qwen2 shape with random weights (the tiny tokenizer; ~75M parameters by default), so weights dominate peak memory."
    if (dest/'config.json').exists(): return dest
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    from prefnb.zoo import resolve_model
    tok = AutoTokenizer.from_pretrained(resolve_model('prefnb:tiny-chatml'))
    cfg = Qwen2Config(vocab_size=vocab or len(tok), hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers, num_attention_heads=hidden // 64,
                      num_key_value_heads=4, max_position_embeddings=1024, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(cfg).save_pretrained(dest); tok.save_pretrained(dest)
    return dest

def memory_child(strategy, model_dir, steps):
    "Run in a fresh process: build prefnb's trainer for `strategy`, train `steps` steps, print peak RSS and step time."
    import resource
    quiet()
    from prefnb.trainer import build_trainer
    from prefnb.zoo import toy_rows
    cfg = tiny_cfg(base_model=str(model_dir), datasets=[dict(path=rows_file(toy_rows('orca', 8 * steps, 0)), type='chatml.intel')],
                   micro_batch_size=4, sequence_len=256, max_steps=steps, live_plots=False, health_checks=False,
                   learning_rate=1e-5, **STRATEGIES[strategy])
    t = step_timer()
    tr = no_printer(build_trainer(cfg, callbacks=[t]))
    tr.args.save_strategy = 'no'
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tr.train()
    steps_t = [b - a for a, b in zip(t.times[1:], t.times[2:])]
    print('RESULT ' + json.dumps(dict(peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, built_mib=rss_built,
                                      step_s=median(steps_t) if steps_t else t.seconds)))

def bench_memory():
    hidden, layers = (512, 8) if QUICK else (768, 12)
    model_dir = mid_model(Path(tempfile.gettempdir())/f'prefnb-bench-qwen2-{hidden}x{layers}', hidden, layers)
    from transformers import AutoConfig
    c = AutoConfig.from_pretrained(model_dir)
    params = sum(p for p in [c.vocab_size * c.hidden_size] + [c.num_hidden_layers * (2 * c.hidden_size ** 2 + 2 * c.hidden_size * c.num_key_value_heads * 64
                                                                                     + 3 * c.hidden_size * c.intermediate_size)])
    steps = 3 if QUICK else 8
    res = {}
    for s in STRATEGIES:
        p = subprocess.run([sys.executable, __file__, '--child', 'memory', s, str(model_dir), str(steps)], capture_output=True, text=True)
        line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
        if not line: raise RuntimeError(f'memory child {s} failed:\n{p.stderr[-3000:]}')
        res[s] = json.loads(line[0][7:])
    base = res['full-copy']
    out = []
    for s, r in res.items():
        out.append(record(f'memory_peak_rss_{s}', r['peak_mib'], base['peak_mib'], 'MiB', None,
                          f'CPU peak RSS of a fresh process ({params / 1e6:.0f}M-param Qwen2 shape {hidden}x{layers}, fp32, batch 4, AdamW); baseline = full reference copy; '
                          f'RSS after build {r["built_mib"]:.0f} MiB'))
        out.append(record(f'memory_step_s_{s}', r['step_s'], base['step_s'], 's/step', None, 'median step time, same runs'))
    return out

# ---------------------------------------------------------------- 4b. planner against measured peaks

PLANNER_SIZES = {'small': (256, 4, 16384), 'mid': (512, 8, 32000)}   # hidden, layers, vocab (a vocabulary that makes the head matter)
# The shape prefnb.memory.CPU_HEAD_BYTES is fitted on (benchmarks/fit_planner.py): not one the planner is checked on.
FIT_SIZES = {'fit': (768, 3, 24576)}   # hidden a multiple of 256: mid_model's 4 KV heads divide its heads
assert not set(PLANNER_SIZES.values()) & set(FIT_SIZES.values()), 'the planner is checked on shapes it was not fitted on'
PLANNER_SETUP = dict(micro_batch_size=2, sequence_len=256, gradient_checkpointing=True, lora_r=16)

def _status(key):
    import re
    return int(re.search(key + r':\s+(\d+)', Path('/proc/self/status').read_text()).group(1)) * 1024

def planner_child(method, adapter, size):
    """Run in a fresh process (glibc returns every block over 64 KiB to the kernel, MALLOC_MMAP_THRESHOLD_), so RSS follows
    live tensors: peak RSS (VmHWM, reset before training) minus RSS before the model exists, against the planner's parts."""
    quiet()
    import torch, trl, peft, transformers   # imported before the baseline is read: libraries are not the run's memory
    from trl import DPOTrainer, KTOTrainer
    from trl.experimental.cpo import CPOTrainer
    from trl.experimental.orpo import ORPOTrainer
    from prefnb.trainer import build_trainer
    hidden, layers, vocab = (PLANNER_SIZES | FIT_SIZES)[size]
    model_dir = mid_model(Path(tempfile.gettempdir())/f'prefnb-bench-planner-{hidden}x{layers}x{vocab}', hidden, layers, vocab)
    text = ' '.join(f'word{i % 97}' for i in range(600))   # every sequence truncated to sequence_len: batches are as long as planned
    rows = [dict(system='', question=f'{i} ' + text[:80], chosen=f'yes {i} ' + text, rejected=f'no {i} ' + text) for i in range(16)]
    cfg = tiny_cfg(base_model=str(model_dir), rl=method, datasets=[dict(path=rows_file(rows), type='chatml.intel')],
                   excess_length_strategy='truncate', max_steps=2, live_plots=False, health_checks=False, learning_rate=1e-5,
                   adapter=None if adapter == 'full' else adapter, lora_alpha=32, **PLANNER_SETUP)
    before = _status('VmRSS')
    tr = no_printer(build_trainer(cfg)); tr.args.save_strategy = 'no'
    Path('/proc/self/clear_refs').write_text('5')
    tr.train()
    from prefnb.memory import plan_memory
    plan = plan_memory(str(model_dir), method, adapter=None if adapter == 'full' else adapter, optimizer=cfg.optimizer, dtype='fp32',
                       device='cpu', **PLANNER_SETUP)   # the CPU plan: fp32, TRL's torch fallback head, no CUDA context
    parts = plan.parts
    print('RESULT ' + json.dumps(dict(measured=_status('VmHWM') - before, estimate=sum(parts.values()), parts=parts)))

def planner_case(method, adapter, size):
    "One planner case in a fresh process: {'measured', 'estimate', 'parts'} in bytes."
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='65536', OMP_NUM_THREADS='1')
    p = subprocess.run([sys.executable, __file__, '--child', 'planner', method, adapter, size], capture_output=True, text=True, env=env)
    line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
    if not line: raise RuntimeError(f'planner child {method} {adapter} {size} failed:\n{p.stderr[-3000:]}')
    r = json.loads(line[0][7:]); print(f'    {method} {adapter} {size}: {r}', flush=True)
    return r

def bench_planner():
    "The memory planner against measured CPU peaks: two model sizes, full and LoRA, DPO/KTO/ORPO/SimPO; ratio = estimate / measured."
    from prefnb.memory import CPU_HEAD_BYTES
    fit = json.loads((HERE/'planner_fit.json').read_text()) if (HERE/'planner_fit.json').exists() else {}
    fitted = (f"CPU_HEAD_BYTES = {CPU_HEAD_BYTES} (the only fitted constant: TRL's CPU head on DPO/KTO) was fitted by "
              f"benchmarks/fit_planner.py on {', '.join(f'{h}x{L} vocab {V}' for h, L, V in FIT_SIZES.values())}, not on this shape"
              + (f" (median of its cases {fit['median']:.1f}; planner_fit.json)" if fit else ''))
    out = []
    for size in (('small',) if QUICK else PLANNER_SIZES):
        for adapter in ('full', 'lora'):
            for method in ('dpo', 'kto', 'orpo', 'simpo'):
                r = planner_case(method, adapter, size)
                h, L, V = PLANNER_SIZES[size]
                out.append(record(f'planner_{method}_{adapter}_{size}_cpu', r['estimate'] / 2**20, r['measured'] / 2**20, 'MiB',
                                  None, f'Qwen2 shape {h}x{L}, vocab {V}, fp32 on CPU, batch 2 x 256 tokens, checkpointing; '
                                  'estimate = plan_memory(..., dtype=fp32, device=cpu); measured = peak RSS over RSS before the model; '
                                  'goal: within 15% (0.85 <= ratio <= 1.15); parts MiB ' +
                                  ', '.join(f'{k} {v / 2**20:.0f}' for k, v in r['parts'].items()) + '; ' + fitted,
                                  ratio=r['estimate'] / r['measured']))
                out[-1].update(goal='0.85 <= ratio <= 1.15', met=0.85 <= out[-1]['ratio'] <= 1.15)
    return out

# ---------------------------------------------------------------- 4b. ORPO / SimPO: chunked LM head vs TRL's full logits

HEAD_METHODS = {'orpo': dict(rl='orpo'), 'simpo': dict(rl='simpo', rl_beta=2.0, simpo_gamma=1.0)}
OTHER_METHODS = {'dpo': dict(rl='dpo')}   # for the docs' table (TRL's own fused head; IPO is the same trainer)
HEAD_LAYERS = 6       # of SmolLM2-135M's 30: a 30-layer step at S=1024 takes > 10 min on 2 shared cores
HEAD_ADAPTER = dict(adapter='lora', lora_r=16, lora_alpha=32)   # the VRAM-limited setting: LoRA on every linear layer, head frozen

def smollm2_shape(dest:Path, layers=30):
    "SmolLM2-135M's shape (V = 49,152, hidden 576, 30 layers, tied embeddings), random weights, with the tiny tokenizer."
    if (dest/'config.json').exists(): return dest
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from prefnb.zoo import resolve_model
    tok = AutoTokenizer.from_pretrained(resolve_model('prefnb:tiny-chatml'))
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers, num_attention_heads=9,
                      num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(dest); tok.save_pretrained(dest)
    return dest

def _proc_kib(field):
    import re
    return int(re.search(field + r':\s+(\d+)', Path('/proc/self/status').read_text()).group(1))

def head_child(method, impl, S, model_dir):
    """Fresh process: one ORPO/SimPO training step (forward, backward, AdamW) at length S, batch 4 pairs, with prefnb's
    chunked head or TRL's own `concatenated_forward`; prints the step's peak memory above what was resident before it."""
    import gc, torch
    quiet()
    from prefnb.trainer import build_trainer
    from prefnb.zoo import toy_rows
    S = int(S)
    cfg = tiny_cfg(base_model=str(model_dir), datasets=[dict(path=rows_file(toy_rows('orca', 16, 0)), type='chatml.intel')],
                   **(dict(micro_batch_size=4, sequence_len=S, max_steps=1, live_plots=False, health_checks=False, learning_rate=1e-5,
                           gradient_checkpointing=True) | HEAD_ADAPTER | (HEAD_METHODS | OTHER_METHODS)[method]))
    tr = no_printer(build_trainer(cfg))
    tr.chunked_head = impl == 'prefnb'
    model = tr.model
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={'use_reentrant': False}); model.train()
    opt = tr.create_optimizer()
    tr.current_gradient_accumulation_steps = 1   # what Trainer.train sets before its first step
    def batch(n):
        g = torch.Generator().manual_seed(n)
        ids = lambda k: torch.randint(3, 500, (k,), generator=g).tolist()
        if method == 'dpo':   # 4 pairs of n tokens: a quarter prompt, the rest completion, through TRL's collator
            return tr.data_collator([dict(prompt_ids=ids(n // 4), chosen_ids=ids(n - n // 4), rejected_ids=ids(n - n // 4)) for _ in range(4)])
        out = {}
        for side in ('chosen', 'rejected'):
            ids = torch.randint(3, 500, (4, n), generator=g)
            out[f'{side}_input_ids'], out[f'{side}_attention_mask'] = ids, torch.ones_like(ids)
            out[f'{side}_labels'] = ids.masked_fill(torch.arange(n) < n // 4, -100)   # a quarter prompt, not scored
        return out
    def step(b):
        tr.training_step(model, b); opt.step(); opt.zero_grad(set_to_none=True)
    step(batch(32))                        # allocates the optimizer state, so the measured step holds only its own memory
    b = batch(S); gc.collect()
    Path('/proc/self/clear_refs').write_text('5')   # resets the peak RSS (VmHWM) to the current RSS
    before = _proc_kib('VmRSS')
    t = time.perf_counter(); step(b); dt = time.perf_counter() - t
    peak = _proc_kib('VmHWM')
    print('RESULT ' + json.dumps(dict(step_mib=(peak - before) / 1024, peak_mib=peak / 1024, before_mib=before / 1024, step_s=dt,
                                      plan=getattr(tr, 'prefnb_chunked', {}).get('reason', ''))))

def _head_case(method, impl, S, model_dir):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')   # big blocks straight from and back to the OS: RSS follows the tensors
    p = subprocess.run([sys.executable, __file__, '--child', 'head', method, impl, str(S), str(model_dir)], capture_output=True, text=True, env=env)
    line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
    if not line: raise RuntimeError(f'head child {method} {impl} {S} failed:\n{p.stderr[-3000:]}')
    r = json.loads(line[0][7:]); print(f'    {method} {impl} S={S}: {r}', flush=True)
    return r

def bench_head():
    model_dir = smollm2_shape(Path(tempfile.gettempdir())/f'prefnb-bench-smollm2-shape-{HEAD_LAYERS}', HEAD_LAYERS)
    lengths = (256, 512) if QUICK else (512, 1024)
    res = {(m, i, S): _head_case(m, i, S, model_dir) for S in lengths for m in HEAD_METHODS for i in ('prefnb', 'trl')}
    res |= {(m, 'prefnb', lengths[-1]): _head_case(m, 'prefnb', lengths[-1], model_dir) for m in OTHER_METHODS}
    V, H, rows = 49152, 576, 8                   # 4 pairs = 8 sequences of S tokens
    lo, hi = lengths
    out, note = [], (f'SmolLM2-135M shape (V 49,152, hidden 576, MLP 1536, 9/3 heads, tied embeddings; {HEAD_LAYERS} of its 30 layers, random init), fp32, '
                     'LoRA r 16 on every linear layer (head frozen), gradient checkpointing, '
                     'batch 4 pairs (8 sequences, no padding), one step = forward + backward + AdamW, fresh process per case; '
                     'memory = peak RSS during the step above the RSS before it (weights and optimizer state resident); '
                     'baseline = the same trainer with TRL\'s own concatenated_forward (chunked_head off). 2 shared CPU cores: times are single steps, noisy')
    for m in HEAD_METHODS:
        for S in lengths:
            ours, trl = res[(m, 'prefnb', S)], res[(m, 'trl', S)]
            goal = 'ratio <= 0.5' if S == hi else None
            out.append(record(f'{m}_peak_mem_s{S}', ours['step_mib'], trl['step_mib'], 'MiB', goal,
                              f'{note}; whole-process peak {ours["peak_mib"]:.0f} vs {trl["peak_mib"]:.0f} MiB; the full logits of this batch: '
                              f'{rows * S * V * 4 / 2**20:.0f} MiB fp32'))
            out.append(record(f'{m}_step_s{S}', ours['step_s'], trl['step_s'], 's/step', 'ratio <= 1.05' if S == hi else None, 'same runs'))
        per_tok = {i: (res[(m, i, hi)]['step_mib'] - res[(m, i, lo)]['step_mib']) * 2**20 / (rows * (hi - lo)) / 1024 for i in ('prefnb', 'trl')}
        out.append(record(f'{m}_peak_mem_per_token', per_tok['prefnb'], per_tok['trl'], 'KiB/token', f'prefnb <= {V * 4 // 1024}',
                          f'slope of the step\'s peak memory from S={lo} to {hi}, per token of the batch; goal: below one fp32 logits row '
                          f'(4 V bytes = {V * 4 // 1024} KiB), i.e. set by the hidden size: prefnb {per_tok["prefnb"] * 1024 / (4 * H):.0f} x 4H bytes, '
                          f'TRL {per_tok["trl"] * 1024 / (4 * V):.1f} x 4V bytes'))
    for m in OTHER_METHODS:   # no baseline: TRL's own trainer, for the memory table of "Choosing a method"
        r = res[(m, 'prefnb', hi)]
        out.append(record(f'{m}_peak_mem_s{hi}', r['step_mib'], None, 'MiB', None, f'{note.split("; baseline")[0]}; LoRA DPO, reference = adapter disabled, TRL\'s fused LM head (on a CPU its torch path: no Triton)'))
    return out

# ---------------------------------------------------------------- 5. scaling

def bench_scaling():
    quiet()
    from transformers import AutoTokenizer
    from prefnb.zoo import resolve_model
    tok = AutoTokenizer.from_pretrained(resolve_model('prefnb:tiny-chatml'))
    sizes = (1000, 4000) if QUICK else (1000, 10000, 100000)
    per_row = {}
    time_dataprep(200, tok)   # warm-up: the first call pays for imports and the tokenizer's caches, which is no per-row cost
    for n in sizes:
        # best of several, alternating who goes first: another job's burst only ever adds time (timeit's rule), and a
        # 1000-row pass lasts ~0.2 s, so one burst would move a median of 3; >= 8000 rows timed per size and side
        runs = [time_dataprep(n, tok, ours_first=rep % 2 == 1) for rep in range(max(3, 8000 // n) if QUICK else 1)]
        per_row[n] = (min(1 / r[0] for r in runs), min(1 / r[1] for r in runs))
    lo, hi = sizes[0], sizes[-1]
    out = [record(f'scaling_dataprep_time_per_row_{lo}_to_{hi}', per_row[hi][0] / per_row[lo][0], per_row[hi][1] / per_row[lo][1],
                  'x growth of s/row', 'prefnb <= 1.25',
                  'seconds per row at the largest size / at the smallest (1 = linear), best of >= 8000 rows timed per size and side; ' +
                  ', '.join(f'{n}: prefnb {1e6 * per_row[n][0]:.0f} us/row, TRL {1e6 * per_row[n][1]:.0f} us/row' for n in sizes))]
    fr = {}
    grouped_batches(simulated_lengths(1000), 8, 0)   # warm-up: the first call pays for imports
    for n in (1000, 10000, 100000):
        lens, ts, reps = simulated_lengths(n), [], max(3, 300_000 // n)   # at least 300k rows timed per size: a 1k-row pass lasts ~1 ms
        for rep in range(reps):
            t = time.perf_counter(); b = grouped_batches(lens, 8, rep); ts.append(time.perf_counter() - t)
        fr[n] = (padding_fraction(lens, b), median(ts))   # only the sampler is timed, not this benchmark's own accounting
    out.append(record('scaling_grouping_time_per_row_1k_to_100k', (fr[100000][1] / 1e5) / (fr[1000][1] / 1e3), None,
                      'x growth of s/row', None, 'LengthGroupedSampler + batching, median seconds per row over >= 300k rows per size, at 100k / at 1k; '
                      'no goal: the sampler is O(n) (one random permutation, sorts inside megabatches of 50 batches), so the per-row growth is the '
                      'working set outgrowing the CPU caches, nothing prefnb can change; '
                      'useful fraction ' + ', '.join(f'{n}: {fr[n][0]:.3f}' for n in fr)))
    for cut in (256, 512, 1024, 2048):
        lens = simulated_lengths(20000, cut=cut)
        bound = sorted_fraction(lens, 8)
        out.append(record(f'scaling_padding_useful_fraction_cut_{cut}', padding_fraction(lens, grouped_batches(lens, 8, 0)),
                          padding_fraction(lens, random_batches(len(lens), 8, 0)), 'useful/computed tokens', f'prefnb >= {0.95 * bound:.3f}',
                          f'simulated UltraFeedback-like lengths cut at {cut} tokens, batch 8, group_by_length vs random; goal: within 5% of '
                          f'{bound:.3f}, the fraction of batches cut from all rows sorted by length, the most any grouping with padding reaches '
                          f'(what remains is chosen vs rejected length inside a pair: one pair per batch gives {padding_fraction(lens, [[i] for i in range(len(lens))]):.3f}); with '
                          f'dpo_padding_free: {packed_fraction(lens, grouped_batches(lens, 8, 0), False):.3f} (SDPA rows), 1.0 (FlashAttention 2)'))
    out.extend(step_scaling())
    return out

def flops_per_token(c, L, causal=False):
    "Matmul FLOPs per token of one forward pass at length L: 2 x the linear weights, plus QK^T and AV over L keys (half if causal)."
    h, kv = c.hidden_size, c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    linear = c.num_hidden_layers * (2 * h * h + 2 * h * kv + 3 * h * c.intermediate_size) + h * c.vocab_size
    return 2 * linear + c.num_hidden_layers * 4 * L * h * (0.5 if causal else 1)

def step_scaling():
    "Forward+backward time per token of a small Qwen2 shape as the sequence grows 256 -> 2048 (no quadratic blow-up)."
    import torch
    from transformers import AutoModelForCausalLM
    path = mid_model(Path(tempfile.gettempdir())/'prefnb-bench-h256', hidden=256, layers=4)
    model = AutoModelForCausalLM.from_pretrained(path, dtype='float32')
    model.config.max_position_embeddings = 4096
    per_tok = {}
    model(input_ids=torch.randint(3, 500, (2, 2048))).logits.float().logsumexp(-1).mean().backward()   # warm-up
    for L in (256, 512, 1024, 2048):
        x = torch.randint(3, 500, (2, L))
        ts = []
        for _ in range(4 if QUICK else 8):
            t = time.perf_counter(); model(input_ids=x).logits.float().logsumexp(-1).mean().backward(); ts.append(time.perf_counter() - t)
        per_tok[L] = median(ts[1:]) / (2 * L)
    dense, causal = (flops_per_token(model.config, 2048, c) / flops_per_token(model.config, 256, c) for c in (False, True))
    return [record('scaling_step_time_per_token_256_to_2048', per_tok[2048] / per_tok[256], None, 'x growth of s/token', f'prefnb <= {dense:.2f}',
                   'Qwen2 shape, hidden 256, 4 layers, random weights: forward+backward (batch 2 sequences, SDPA), s/token at 2048 / at 256; '
                   f"goal: the growth of FLOPs per token ({dense:.2f}x with the whole L x L score matrix, as a dense attention kernel computes it; "
                   f"{causal:.2f}x if only the causal half were computed): attention's share is quadratic in any transformer; " +
                   ', '.join(f'{L}: {1e6 * v:.2f} us/token' for L, v in per_tok.items()))]

# ---------------------------------------------------------------- 6. import and start-up

def _import_time(stmt, reps):
    "Median wall time of a fresh interpreter running `stmt` (a module name means `import` it)."
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run([sys.executable, '-c', stmt if ' ' in stmt else f'import {stmt}'], check=True)
        ts.append(time.perf_counter() - t)
    return median(ts)

BY_HAND = '''
import os, sys
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer
from datasets import Dataset
from prefnb.zoo import resolve_model, toy_rows
p = resolve_model("prefnb:tiny-chatml")
tok = AutoTokenizer.from_pretrained(p)
rows = [dict(prompt=[dict(role="user", content=r["question"])], chosen=[dict(role="assistant", content=r["chosen"])],
             rejected=[dict(role="assistant", content=r["rejected"])]) for r in toy_rows("orca", 256, 0)]
args = DPOConfig(output_dir=sys.argv[1], use_cpu=True, report_to="none", max_steps=1, logging_steps=1, logging_first_step=True,
                 per_device_train_batch_size=8, disable_tqdm=True, save_strategy="no", max_length=256)
tr = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(p), args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
tr.train(); tr.save_model(sys.argv[1])
'''

def _cpu_s(pid)->float:
    "CPU seconds (user + system, all threads) a running process has used so far (/proc/PID/stat)."
    f = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')

def _first_log(cmd, env=None):
    """Seconds from launching `cmd` to the first logged loss on its stdout and to its exit, and the CPU seconds the
    process had used by then: on a shared machine the wall time waits for the other jobs, the CPU time much less."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    first = first_cpu = None
    for line in p.stdout:
        if first is None and ("'loss'" in line or '"loss"' in line): first, first_cpu = time.perf_counter() - t, _cpu_s(p.pid)
    _, status, ru = os.wait4(p.pid, 0); p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode: raise RuntimeError(f'{cmd} exited {p.returncode}')
    return first, time.perf_counter() - t, first_cpu, ru.ru_utime + ru.ru_stime

def bench_startup():
    reps = 2 if QUICK else 5
    out = [record('import_prefnb_s', _import_time('prefnb', reps), _import_time('trl', reps), 's', 'prefnb <= 0.5',
                  'fresh `python -c "import prefnb"` vs `import trl`, median wall time (includes ~the interpreter start-up)'),
           ]
    if not QUICK:   # about a minute each on a loaded 2-core machine
        out.append(record('import_prefnb_trainer_s', _import_time('prefnb.trainer', reps), _import_time('from trl import DPOTrainer', reps), 's',
                          'ratio <= 1.1', 'prefnb.trainer imports transformers at module top (its callbacks subclass TrainerCallback), '
                          'which pulls in transformers.trainer, accelerate and peft: about what `from trl import DPOTrainer` costs'))
    script = Path(tempfile.mkdtemp())/'by_hand.py'; script.write_text(BY_HAND)
    ours, theirs = [], []
    prefnb_bin = str(Path(sys.executable).parent/'prefnb')
    for rep in range(3 if QUICK else reps):   # each way round: the order costs (disk cache, load) otherwise
        for who in ((0, 1) if rep % 2 == 0 else (1, 0)):
            d = tempfile.mkdtemp()
            if who == 0: ours.append(_first_log([prefnb_bin, 'train', 'examples/tiny-dpo.yml', '--set', 'max_steps=1', 'logging_steps=1',
                                                 f'output_dir={d}', 'test_datasets=null']))
            else: theirs.append(_first_log([sys.executable, str(script), d]))
    out.append(record('startup_to_first_step_s', median(o[0] for o in ours), median(t[0] for t in theirs), 's', 'ratio <= 1.1',
                      '`prefnb train examples/tiny-dpo.yml --set max_steps=1` vs a hand-written TRL script, launch to first logged loss, median of ' + str(len(ours)) + ' interleaved runs each'))
    out.append(record('startup_to_first_step_cpu_s', median(o[2] for o in ours), median(t[2] for t in theirs), 'CPU s', 'ratio <= 1.1',
                      'the same runs, CPU seconds (user + system) the process had used at its first logged loss: what the start-up costs '
                      'without the waits for the other jobs on a shared machine, so its ratio stays near the idle machine\'s wall-time ratio'))
    out.append(record('startup_whole_command_s', median(o[1] for o in ours), median(t[1] for t in theirs), 's', None,
                      'launch to exit, 1 step: prefnb also writes config.yml, trl_args.json, data_report.json, health.json/md, metrics.png'))
    return out

# ---------------------------------------------------------------- main

BENCHMARKS = dict(overhead=bench_overhead, padding=bench_padding, dataprep=bench_dataprep, memory=bench_memory, head=bench_head,
                  planner=bench_planner, scaling=bench_scaling, startup=bench_startup)

PREFIXES = {'overhead_': 'overhead', 'padding_': 'padding', 'dataprep_': 'dataprep', 'memory_': 'memory', 'orpo_': 'head', 'simpo_': 'head',
            'dpo_peak': 'head', 'planner_': 'planner', 'scaling_': 'scaling', 'import_': 'startup', 'startup_': 'startup'}

def benchmark_of(r)->str:
    "The benchmark a record came from (records written before the `benchmark` field: by their name)."
    return r.get('benchmark') or next(b for p, b in PREFIXES.items() if r['name'].startswith(p))

def fmt(v):
    if v is None: return '–'
    return f'{v:.3g}' if abs(v) < 1000 else f'{v:,.0f}'

def markdown(records)->str:
    lines = [f'Machine: {MACHINE}. `ratio` = prefnb / baseline. Generated {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.', '',
             '| benchmark | prefnb | baseline | unit | ratio | goal | met | measured | note |', '|---|---|---|---|---|---|---|---|---|']
    for r in records:
        met = {True: 'yes', False: '**no**', None: '–'}[r['met']]
        when = (r.get('measured') or 'before 2026-12-02') + (' (--quick)' if r.get('quick') else '')
        lines.append(f"| {r['name']} | {fmt(r['prefnb'])} | {fmt(r['baseline'])} | {r['unit']} | {fmt(r['ratio'])} | "
                     f"{r['goal'] or '–'} | {met} | {when} | {r.get('note', '')} |")
    return '\n'.join(lines) + '\n'

def main(argv=None):
    global QUICK
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='smaller sizes and fewer repeats (under 10 minutes on 2 CPU cores)')
    ap.add_argument('--out', default=str(HERE/'results.json'), help='JSON result file; the markdown table goes next to it (.md)')
    ap.add_argument('--only', nargs='+', choices=list(BENCHMARKS), help='run only these benchmarks')
    ap.add_argument('--update', action='store_true', help="keep the --out file's records of the benchmarks not run (replace only those run)")
    ap.add_argument('--child', nargs='+', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child and a.child[0] == 'planner': return planner_child(*a.child[1:4]) or 0
    if a.child and a.child[0] == 'head': return head_child(*a.child[1:]) or 0
    if a.child: return memory_child(a.child[1], a.child[2], int(a.child[3])) or 0
    QUICK = a.quick
    records, t0, failed = [], time.perf_counter(), []
    out = Path(a.out)
    run = a.only or list(BENCHMARKS)
    kept = [r for r in json.loads(out.read_text()) if benchmark_of(r) not in run] if a.update and out.exists() else []
    def save():   # after each benchmark, so an interrupted run keeps its figures; records in BENCHMARKS order
        recs = sorted(kept + records, key=lambda r: list(BENCHMARKS).index(benchmark_of(r)))
        out.write_text(json.dumps(recs, indent=1) + '\n'); out.with_suffix('.md').write_text(markdown(recs))
    for name in run:
        t = time.perf_counter(); print(f'{name} ...', flush=True)
        try: new = BENCHMARKS[name]()
        except Exception as e:   # one broken benchmark must not lose the others' figures
            import traceback; traceback.print_exc(); failed.append(name)
            new = [dict(name=f'{name}_failed', prefnb=None, baseline=None, unit='', ratio=None, goal='ran', met=False,
                        note=f'{type(e).__name__}: {e}'[:300], machine=MACHINE)]
        stamp = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
        records.extend(dict(r, benchmark=name, measured=stamp, quick=QUICK) for r in new)
        print(f'{name}: {time.perf_counter() - t:.0f} s', flush=True)
        save()
    print(f'{len(records)} records in {time.perf_counter() - t0:.0f} s -> {out}, {out.with_suffix(".md")}')
    return 1 if failed else 0

MACHINE = machine() if '--child' not in sys.argv else ''
if __name__ == '__main__': sys.exit(main())
