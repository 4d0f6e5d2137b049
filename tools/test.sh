#!/usr/bin/env bash
# The whole test suite, as README's test command and CI run it. Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TRL_EXPERIMENTAL_SILENCE=1
export TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg PYTHONWARNINGS=ignore::FutureWarning
# Start from nothing, as a newcomer's machine does: prefnb's own cache (the tiny models) and the Hugging Face
# caches are new, empty folders for every run, so nothing built by older code can make a test pass.
scratch=$(mktemp -d -t prefnb-test-XXXXXX); trap 'rm -rf "$scratch"' EXIT
export PREFNB_CACHE=$scratch/prefnb HF_HOME=$scratch/hf HF_DATASETS_CACHE=$scratch/hf/datasets MPLCONFIGDIR=$scratch/mpl
t0=$SECONDS
step() { echo; echo "== $* ($((SECONDS - t0)) s)"; }

step "notebooks and modules agree (nbdev_export + nbdev_clean change nothing)"
tmp=$(mktemp -d); cp -r nbs prefnb "$tmp/"
nbdev_export; nbdev_clean
if ! diff -r -q --no-dereference -x __pycache__ "$tmp/nbs" nbs || ! diff -r -q --no-dereference -x __pycache__ "$tmp/prefnb" prefnb; then
  echo "FAIL: nbdev_export / nbdev_clean changed the files above: edit the notebooks, export, clean, commit both."
  diff -r --no-dereference -x __pycache__ "$tmp/prefnb" prefnb | head -40 || true
  exit 1
fi
rm -rf "$tmp"

step "README.md agrees with nbs/index.ipynb, and holds the test command CI runs"
python tools/readme.py --check
testcmd=$(grep -v '^#' .ci/run | grep -m1 'pip install')
grep -qxF "$testcmd" README.md || { echo "FAIL: README.md must hold .ci/run's test command verbatim: $testcmd"; exit 1; }

step "docs site structure"
python tools/check_site.py

step "docs processing (nbdev_proc_nbs: Quarto cannot be installed here, so it says so and processes the notebooks)"
nbdev_proc_nbs > /tmp/prefnb-proc.log 2>&1 || { tail -40 /tmp/prefnb-proc.log; echo "FAIL: nbdev_proc_nbs"; exit 1; }
if grep -q "Found cells containing imports and other code" /tmp/prefnb-proc.log; then
  grep -A6 "Found cells containing imports" /tmp/prefnb-proc.log | head -30
  echo "FAIL: keep imports in cells of their own (the docs step runs every cell with an import)"; exit 1
fi
echo "processed $(ls _proc/nbs 2>/dev/null | wc -l) entries into _proc/"

step "notebooks (nbdev_test; cells flagged gpu or slow are skipped)"
# two notebooks at a time, each with half the cores: two torch processes that each take every core spin against
# each other (OpenMP busy-waits), which made the five real-model tutorials 5-9x slower (27 min instead of 5)
workers=2; threads=$(( $(nproc) / workers )); [ "$threads" -ge 1 ] || threads=1
OMP_NUM_THREADS=$threads nbdev_test --n_workers $workers --timing

step "pytest"
python -m pytest -q tests

step "the numerically sensitive tests (-m numerics) again under each other CPU kernel set this machine offers"
# The tests marked `numerics` compare with TRL or an exact reference where float rounding could decide the outcome.
# torch picks its kernels for this CPU (get_cpu_capability); ATEN_CPU_CAPABILITY selects a lower set, and MKL the
# matching code path (MKL_ENABLE_INSTRUCTIONS; for the lowest, MKL_CBWR=COMPATIBLE, the SSE2 path any x86 has), so a
# machine with AVX-512 also runs another machine's rounding. The lowest set also runs on one thread: the pytest
# step's thread count splits reductions differently (this alone moved fp32 rewards/margins by 3e-5 here).
read -r mkl variants < <(python -c "
import torch
sets = ['default', 'avx2', 'avx512']
cap = torch.backends.cpu.get_cpu_capability().lower()
print(int(torch.backends.mkl.is_available()), *(sets[:sets.index(cap)] if cap in sets else ['default']))")
for v in $variants; do
  case $v in default) env=(OMP_NUM_THREADS=1 MKL_CBWR=COMPATIBLE);; avx2) env=(MKL_ENABLE_INSTRUCTIONS=AVX2);; avx512) env=(MKL_ENABLE_INSTRUCTIONS=AVX512);; esac
  [ "$mkl" = 1 ] || env=("${env[@]:0:$(( ${#env[@]} - 1 ))}")   # no MKL in this torch: its variable means nothing
  env=(ATEN_CPU_CAPABILITY=$v "${env[@]}")
  got=$(env "${env[@]}" python -c "import torch; print(torch.backends.cpu.get_cpu_capability().lower())")
  [ "$got" = "$v" ] || { echo "FAIL: ATEN_CPU_CAPABILITY=$v gave torch's $got kernels"; exit 1; }
  echo "-- ${env[*]} ($((SECONDS - t0)) s)"
  env "${env[@]}" python -m pytest -q -m numerics tests -p no:cacheprovider
done

step "the form on Colab's ipywidgets 7.7.1 (tests/test_widgets.py again, ipywidgets 7.7.1 put in front of this environment's 8)"
w7=$scratch/ipywidgets-7.7.1
pip install -q --no-deps --target "$w7" ipywidgets==7.7.1 ipython_genutils==0.2.0
PYTHONPATH="$w7${PYTHONPATH:+:$PYTHONPATH}" PREFNB_EXPECT_IPYWIDGETS=7.7.1 python -m pytest -q tests/test_widgets.py -k "not tiny_model"

step "in a real browser: the DPO tutorial's live view and the form in JupyterLab (skipped without chromium)"
bash tools/browser.sh
echo "total $((SECONDS - t0)) s (caches started empty in $scratch)"
