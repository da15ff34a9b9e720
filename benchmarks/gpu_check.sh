#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU and a clean clone, set up, run the CUDA tests
# and a short GPU benchmark (cvat-aa batched against cvat-sdk one by one on a torchvision
# detector, and the model-only floors), and print one table. About 5 minutes.
#
#   bash benchmarks/gpu_check.sh [--cpu] [--no-setup] [--frames N] [--out FILE]
#
#   --cpu       run it all on the CPU (the CUDA tests are then skipped): checks the script
#               itself on a machine without a GPU; 16 frames unless --frames says otherwise
#   --no-setup  skip scripts/setup.sh and use $PYTHON (default .venv/bin/python, else
#               python3), for a machine whose Python already has cvat-aa and its plugins
#   --frames N  frames in the benchmark's task (default 200)
#   --out FILE  the benchmark's JSON (default bench-results/gpu_check.json)
#
# Exit status: 0 when the tests passed and the benchmark ran; 2 without a CUDA device (and
# without --cpu); otherwise the failing step's.
set -euo pipefail
cd "$(dirname "$0")/.."

cpu=0 setup=1 frames="" out=bench-results/gpu_check.json
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cpu) cpu=1 ;;
        --no-setup) setup=0 ;;
        --frames) frames="$2"; shift ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
    shift
done

started=$SECONDS
if [[ $setup == 1 ]]; then
    echo "== setup (scripts/setup.sh)"
    bash scripts/setup.sh
    PYTHON=.venv/bin/python
elif [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if [[ $cpu == 0 ]]; then
    if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_check.sh: no CUDA device: run with --cpu to check the script on the CPU" >&2
        exit 2
    fi
    device=cuda
    frames=${frames:-200}
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
    device=cpu
    frames=${frames:-16}
fi
"$PYTHON" -c 'import platform, os, torch, torchvision; print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, torch {torch.__version__}, torchvision {torchvision.__version__}, CUDA {torch.version.cuda}")'

echo "== CUDA tests (pytest -k cuda: they run on the GPU, or are skipped without one)"
# Every test with cuda in its name; the ones that check the message without a device are
# skipped where there is one, and the other way round.
"$PYTHON" -m pytest -q -p no:cacheprovider -k cuda -rs \
    cvat-aa-torch/tests \
    plugins/torchvision-detection/tests \
    plugins/ultralytics-yolo/tests \
    plugins/segment-anything/tests
tests_s=$((SECONDS - started))

echo "== benchmark (benchmarks/gpu_batched.py, $frames frames on $device)"
"$PYTHON" benchmarks/gpu_batched.py --device "$device" --frames "$frames" --out "$out"
echo "== done in $((SECONDS - started)) s (setup and tests $tests_s s)"
