#!/usr/bin/env bash
# Development helper: build notebooks from jupytext percent sources in .nbsrc/ (ignored), run them so
# their outputs show, then export and clean. Usage: tools/nb.sh 00_core [01_config ...]
set -euo pipefail
cd "$(dirname "$0")/.."
for name in "$@"; do
  src=.nbsrc/$name.py; dst=nbs/$name.ipynb
  mkdir -p "$(dirname "$dst")"
  jupytext --quiet --from py:percent --to ipynb -o "$dst" "$src"
  nbdev_export
  HF_HUB_OFFLINE=1 python tools/run_nb.py "$dst"
done
nbdev_export
nbdev_clean
