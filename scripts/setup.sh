#!/usr/bin/env bash
# Create .venv and install cvat-aa, its plugins and the test tools into it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch/torchvision are pinned: these releases are on this machine's disk; others download GBs.
"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1" -e ".[test]"
