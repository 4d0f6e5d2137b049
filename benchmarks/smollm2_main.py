"""Time README's main command on this machine: DPO on the real model (prefnb:smollm2) with
examples/smollm2_dpo.py, from an empty prefnb cache (so the one-time GGUF de-quantization is included) or a
warm one. Writes benchmarks/smollm2_main.json: wall seconds, the before/after measure the script printed,
and the machine's load (the goal, <= 300 s, is for two otherwise idle cores).

    python benchmarks/smollm2_main.py [--warm]
"""
import json, os, platform, re, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def main(warm=False):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRL_EXPERIMENTAL_SILENCE': '1'}
    tmp = Path(tempfile.mkdtemp(prefix='prefnb-smollm2-'))
    if not warm: env['PREFNB_CACHE'] = str(tmp/'cache')
    load0, t = os.getloadavg()[0], time.time()
    r = subprocess.run([sys.executable, str(ROOT/'examples'/'smollm2_dpo.py'), f'output_dir={tmp/"run"}', 'live_plots=false'],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    wall, load1 = time.time() - t, os.getloadavg()[0]
    m = re.search(r'before (\d+)%, after (\d+)%', r.stdout)
    t = re.search(r"'train_runtime': '([0-9.]+)'", r.stdout + r.stderr)
    rec = dict(name='readme_main_smollm2_dpo', prefnb=round(wall, 1), baseline=None, unit='s', ratio=None, goal='prefnb <= 300',
               met=wall <= 300, before=int(m[1]) / 100 if m else None, after=int(m[2]) / 100 if m else None, returncode=r.returncode,
               train_runtime=float(t[1]) if t else None,
               note=f"python examples/smollm2_dpo.py ({'warm' if warm else 'empty'} prefnb cache): load, "
                    '12 LoRA DPO steps, generations, sampled measure; load average %.1f -> %.1f' % (load0, load1),
               machine=f'{os.cpu_count()} CPU cores, no GPU ({platform.machine()})')
    (ROOT/'benchmarks'/'smollm2_main.json').write_text(json.dumps(rec, indent=1) + '\n')
    print(json.dumps(rec, indent=1)); print(r.stdout[-2000:])
    return r.returncode

if __name__ == '__main__': sys.exit(main('--warm' in sys.argv))
