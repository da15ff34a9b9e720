#!/usr/bin/env bash
# Set everything up (scripts/setup.sh), then annotate a demo task by plugin name on the
# embedded CVAT-compatible test server: no external server, no internet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PATH="$PWD/.venv/bin:$PATH" exec .venv/bin/python scripts/demo.py
