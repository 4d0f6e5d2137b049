"""Time README's main command on this machine: DPO on the real model (prefnb:smollm2) with
examples/smollm2_dpo.py, from an empty prefnb cache (so the one-time GGUF de-quantization is included) or a
warm one. Writes benchmarks/smollm2_main.json with everything README and the Benchmarks guide quote from it,
each measured here: the command's wall seconds (`prefnb`), the optimizer steps and their `train_runtime`
(`steps`, `train_runtime`, `step_s`), the before/after measure the script printed, the child's peak RSS
(`peak_rss_gib`, from getrusage(RUSAGE_CHILDREN)) and the machine's load before and after (the goal, <= 300 s,
is for two otherwise idle cores).

    python benchmarks/smollm2_main.py [--warm]
"""
import json, os, platform, re, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def steps_done(run:Path)->int|None:
    "The last optimizer step the run logged (metrics.jsonl), or None."
    f = run/'metrics.jsonl'
    if not f.exists(): return None
    steps = [json.loads(l).get('step') for l in f.read_text().splitlines() if l.strip()]
    return max((s for s in steps if isinstance(s, int)), default=None)

def main(warm=False):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRL_EXPERIMENTAL_SILENCE': '1'}
    tmp = Path(tempfile.mkdtemp(prefix='prefnb-smollm2-'))
    if not warm: env['PREFNB_CACHE'] = str(tmp/'cache')
    load0, t = os.getloadavg()[0], time.time()
    r = subprocess.run([sys.executable, str(ROOT/'examples'/'smollm2_dpo.py'), f'output_dir={tmp/"run"}', 'live_plots=false'],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    wall, load1 = time.time() - t, os.getloadavg()[0]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20   # KiB on Linux -> GiB; the only child is the script
    m = re.search(r'before (\d+)%, after (\d+)%', r.stdout)
    t = re.search(r"'train_runtime': '([0-9.]+)'", r.stdout + r.stderr)
    runtime, steps = float(t[1]) if t else None, steps_done(tmp/'run')
    step_s = runtime / steps if runtime and steps else None
    rec = dict(name='readme_main_smollm2_dpo', prefnb=round(wall, 1), baseline=None, unit='s', ratio=None, goal='prefnb <= 300',
               met=wall <= 300, before=int(m[1]) / 100 if m else None, after=int(m[2]) / 100 if m else None, returncode=r.returncode,
               train_runtime=runtime, steps=steps, step_s=None if step_s is None else round(step_s, 2), peak_rss_gib=round(peak, 2),
               load_before=round(load0, 1), load_after=round(load1, 1),
               note=f"python examples/smollm2_dpo.py ({'warm' if warm else 'empty'} prefnb cache): load, "
                    f'{steps} LoRA DPO steps, generations, sampled measure; load average {load0:.1f} -> {load1:.1f} '
                    f'({os.cpu_count()} cores shared with other jobs when above ~0.5); train_runtime {runtime} s for the {steps} steps '
                    f'({step_s:.1f} s a step); peak RSS of the script {peak:.1f} GiB' if step_s else 'the script failed: see returncode',
               machine=f'{os.cpu_count()} CPU cores, no GPU ({platform.machine()})')
    (ROOT/'benchmarks'/'smollm2_main.json').write_text(json.dumps(rec, indent=1) + '\n')
    print(json.dumps(rec, indent=1)); print(r.stdout[-2000:])
    if r.returncode: print(r.stderr[-3000:], file=sys.stderr)
    return r.returncode

if __name__ == '__main__': sys.exit(main('--warm' in sys.argv))
