#!/usr/bin/env bash
# Drift check: install the newest versions that settings.ini's ranges allow, in a new virtual
# environment outside the checkout, and run the whole suite there. A pass with --update rewrites
# constraints.txt to those versions; a failure means a user who installs today would hit it too.
# Usage: bash tools/test_newest.sh [--update]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d -t prefnb-newest-XXXXXX)
python3 -m venv "$venv"; . "$venv/bin/activate"
pip install -q --upgrade pip
pip install -q --upgrade --upgrade-strategy eager torch -e ".[dev]"    # no constraints: newest inside the ranges
echo "== versions that differ from constraints.txt"
pip freeze --exclude-editable | sed -E 's/\+[A-Za-z0-9.]+$//' | LC_ALL=C sort -f > "$venv/now.txt"
grep -v '^#' constraints.txt | LC_ALL=C sort -f | diff - "$venv/now.txt" | grep '^[<>]' || echo "(none)"
bash tools/test.sh
if [ "${1:-}" = --update ]; then bash tools/constraints.sh; fi
