#!/usr/bin/env bash
# Development helper: build notebooks from jupytext percent sources in .nbsrc/ (ignored), run them so
# their outputs show, then export and clean just those notebooks.
# Usage: tools/nb.sh 01_config [02_methods ...]      (names without .ipynb; subfolders allowed)
# To edit an existing notebook without its .nbsrc file: jupytext --to py:percent -o .nbsrc/NAME.py nbs/NAME.ipynb
set -euo pipefail
cd "$(dirname "$0")/.."
for name in "$@"; do
  src=.nbsrc/$name.py; dst=nbs/$name.ipynb
  mkdir -p "$(dirname "$dst")"
  jupytext --quiet --from py:percent --to ipynb -o "$dst" "$src"
  nbdev_export --path "$dst"
  HF_HUB_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1 MPLBACKEND=Agg python tools/run_nb.py "$dst"
  nbdev_export --path "$dst"
  nbdev_clean --fname "$dst"
done
