#!/usr/bin/env bash
# The live view and the config form in a real browser (tools/browser_test.py): JupyterLab + headless Chromium.
# Chromium is the system's (Debian: apt-get install chromium), never downloaded by Playwright; without it this
# step says so and passes. JupyterLab and Playwright live in their own small venv (tools/browser-requirements.txt);
# the notebooks run in a kernel of the current python (the prefnb environment). Screenshots: $PREFNB_SCREENS or screens/.
set -euo pipefail
cd "$(dirname "$0")/.."
chrome=${PREFNB_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chrome" ] || ! "$chrome" --version >/dev/null 2>&1; then
  echo "SKIPPED: no working chromium here (Debian/Ubuntu: apt-get install chromium); the browser test did not run"; exit 0
fi
venv=${PREFNB_BROWSER_VENV:-.venv-browser}
if [ ! -x "$venv/bin/jupyter-lab" ] || [ ! -x "$venv/bin/playwright" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q -r tools/browser-requirements.txt
fi
"$venv/bin/python" tools/browser_test.py --kernel-python "$(command -v python)" --chromium "$chrome" --out "${PREFNB_SCREENS:-screens}"
