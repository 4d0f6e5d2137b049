"""Load: a generated preference dataset of 100k and 1M short rows goes through `prefnb.data.prepare` with memory bounded
(memory-mapped Arrow, no full copies in Python lists) and time linear in rows. Each size runs in a fresh subprocess
with its own datasets cache; the figures are printed (run with -s to see them)."""
import json, os, subprocess, sys
import pytest

GEN = """
import sys, pyarrow as pa, pyarrow.parquet as pq
n, out = int(sys.argv[1]), sys.argv[2]
w = None
for s in range(0, n, 100_000):
    ids = range(s, min(n, s + 100_000))
    t = pa.table({'prompt': [f'Tell me about item {i}.' for i in ids], 'chosen': [f'Item {i} is calm and lovely.' for i in ids],
                  'rejected': [f'No. Item {i} is dull.' for i in ids]})
    w = w or pq.ParquetWriter(out, t.schema); w.write_table(t, row_group_size=10_000)   # hub-style row groups
w.close()
"""

MEASURE = """
import json, os, resource, sys, time
path, with_tok = sys.argv[1], sys.argv[2] == 'tok'
import datasets, prefnb.data as D
datasets.disable_progress_bars()
tok = None
if with_tok:
    from transformers import AutoTokenizer
    from prefnb.zoo import resolve_model
    tok = AutoTokenizer.from_pretrained(resolve_model('prefnb:tiny-chatml'))
def anon():   # private (anonymous) resident memory; memory-mapped Arrow pages are file-backed and not counted
    for l in open('/proc/self/status'):
        if l.startswith('RssAnon:'): return int(l.split()[1]) * 1024
import threading
top, done = [anon()], threading.Event()
def poll():
    while not done.wait(0.01): top[0] = max(top[0], anon())
base = anon(); th = threading.Thread(target=poll, daemon=True); th.start()
t = time.time()
p = D.prepare(dict(rl='dpo', sequence_len=64, seed=0, datasets=[dict(path=path, type='chatml.prompt_pairs')]), tok)
dt = time.time() - t
done.set(); th.join()
rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
n = len(p.train)
# what the same rows cost as Python dicts of str (the "full copy in Python lists" we must not make): measured on 20k, scaled
import tracemalloc; tracemalloc.start()
sample = p.train.select(range(min(20_000, n))).to_list()
per_row = tracemalloc.get_traced_memory()[0] / len(sample)
print(json.dumps(dict(rows=n, seconds=dt, rows_per_s=n / dt, peak_growth=top[0] - base, rss_peak=rss_peak, python_rows_bytes=per_row * n,
                      kept=p.report['totals']['kept'], on_disk=bool(p.train.cache_files))))
"""

def _measure(tmp_path, n, tok):
    data = tmp_path/f'{n}.parquet'
    if not data.exists(): subprocess.run([sys.executable, '-c', GEN, str(n), str(data)], check=True)
    env = {**os.environ, 'HF_DATASETS_CACHE': str(tmp_path/f'cache-{n}-{tok}'), 'OMP_NUM_THREADS': '2'}
    r = subprocess.run([sys.executable, '-c', MEASURE, str(data), tok], capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"load {n:>9,} rows ({'with' if tok == 'tok' else 'without'} tokenizer): {m['seconds']:.1f} s, {m['rows_per_s']:,.0f} rows/s, "
          f"peak private memory growth {m['peak_growth'] / 2**20:.0f} MiB, peak RSS incl. memory-mapped Arrow {m['rss_peak'] / 2**20:.0f} MiB "
          f"(the rows as Python dicts: {m['python_rows_bytes'] / 2**20:.0f} MiB)")
    assert m['rows'] == m['kept'] == n and m['on_disk']
    return m

def _check_scaling(small, big, factor):
    # memory: private memory grows far slower than the rows would as Python dicts (a full copy would be >= 1x);
    # the small run's growth is mostly one-off (reader and builder set-up), so compare the increments
    if big['rows'] >= 1_000_000: assert big['peak_growth'] < 0.5 * big['python_rows_bytes'], (small, big)
    assert big['peak_growth'] - small['peak_growth'] < 0.4 * (big['python_rows_bytes'] - small['python_rows_bytes']), (small, big)
    # time: linear in rows (generous for a shared 2-core CI machine: within 2.5x of proportional, either way)
    ratio = big['seconds'] / small['seconds']
    assert factor / 2.5 < ratio < factor * 2.5, (ratio, small, big)

def test_pipeline_scales_linearly_with_bounded_memory(tmp_path):
    "20k vs 200k rows (CI-sized): the strategy, filter, cast and shuffle stages of the pipeline."
    _check_scaling(_measure(tmp_path, 20_000, 'notok'), _measure(tmp_path, 200_000, 'notok'), 10)

@pytest.mark.slow
@pytest.mark.parametrize('tok', ['notok', 'tok'])
def test_one_million_rows(tmp_path, tok):
    "100k vs 1M rows, with and without the length check (tokenizer); figures printed for the report."
    _check_scaling(_measure(tmp_path, 100_000, tok), _measure(tmp_path, 1_000_000, tok), 10)
