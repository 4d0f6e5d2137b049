#!/usr/bin/env bash
# Write constraints.txt: the exact versions installed in the active environment, which the suite has
# just passed with. README's test command and CI install with `-c constraints.txt`, so a failure never
# comes from a silent upgrade. Local version labels (torch's +cpu) are dropped: `torch==2.13.0` also
# matches the CUDA build a GPU machine gets. Run from the repository root, inside the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# The exact versions the test suite last passed with (tools/constraints.sh wrote this; see CONTRIBUTING.md)."
  echo "# Users get the ranges in settings.ini; this file pins the test environment only."
  python -m pip freeze --exclude-editable --all | grep -v -E '^(pip|setuptools|wheel|prefnb)==' | sed -E 's/\+[A-Za-z0-9.]+$//' | LC_ALL=C sort -f
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
