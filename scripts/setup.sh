#!/usr/bin/env bash
# Create .venv and install cvat-aa, its test server (cvat-aa-testing), the torch helpers
# (cvat-aa-torch), its plugins, the example plugin and the test tools into it.
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
# torch/torchvision are pinned: these releases are on this machine's disk; others download GBs.
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    "torch==2.14.1" "torchvision==0.29.1" \
    -e ".[test]" \
    -e cvat-aa-testing \
    -e cvat-aa-torch \
    -e plugins/torchvision-detection \
    -e plugins/torchvision-keypoint-detection \
    -e plugins/torchvision-instance-segmentation \
    -e plugins/torchvision-classification \
    -e plugins/ultralytics-yolo \
    -e plugins/opencv-tracker \
    -e plugins/segment-anything \
    -e plugins/video-tracks \
    -e plugins/sliced-inference \
    -e examples/simple-interactors-trackers \
    -e examples/face-detection
