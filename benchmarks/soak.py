"""Soak test: a 1,000-frame task over a link that fails 10% of requests, and a SIGKILL.

    .venv/bin/python benchmarks/soak.py [--frames 1000] [--rate 0.1] [--out bench-results/soak.json]

The test server fails a random tenth of all requests (500/502/503/504 answers, and
connections closed before or after the request is applied). `cvat-aa annotate` runs as a
subprocess, is killed with SIGKILL halfway through, and is run again with --resume. The
report gives the faults injected, the retries the runs made, the annotations expected and
found on the server, and duplicates (which must be zero). Exit status 1 if they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import PIL.Image

from cvat_aa_testing import TestServer

ROOT = Path(__file__).resolve().parent.parent

FUNCTION = """
import os, time
import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

def detect(context, image):
    n = int(context.frame_name.split("_")[1].split(".")[0])
    time.sleep(float(os.environ.get("FRAME_DELAY", "0")))
    return [cvat_aa.rectangle(0, [n % 50, n // 50, n % 50 + 3, n // 50 + 3])]
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "soak.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cvat-aa-soak-"))
    function_file = work / "function.py"
    function_file.write_text(FUNCTION)
    images = [PIL.Image.new("RGB", (32, 24), (i % 256, i // 256, 0)) for i in range(args.frames)]
    env = {**os.environ, "XDG_STATE_HOME": str(work / "state"), "PYTHONUNBUFFERED": "1"}

    with TestServer(data_dir=work / "server") as server:
        task = server.create_task(
            "soak", images=images, labels=[{"name": "car", "type": "rectangle"}], chunk_size=10
        )
        server.faults.fail_randomly(args.rate, seed=args.seed)
        command = [
            sys.executable,
            "-m",
            "cvat_aa",
            "annotate",
            str(task),
            "--function-file",
            str(function_file),
            "--upload-frames",
            "10",
            "--batch-size",
            "4",
            *server.cli_args(),
        ]
        print(f"Task {task}: {args.frames} frames; {args.rate:.0%} of requests fail at random")

        first = subprocess.Popen(
            command, env={**env, "FRAME_DELAY": "0.004"}, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 300
        while (
            time.monotonic() < deadline
            and len(server.annotations(task)["shapes"]) < args.frames // 2
        ):
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        _, first_err = first.communicate()
        at_kill = len(server.annotations(task)["shapes"])
        print(f"SIGKILL with {at_kill} annotations uploaded")

        second = subprocess.run(
            [*command, "--resume"], env=env, capture_output=True, text=True, timeout=900
        )
        print(second.stdout.strip())
        if second.returncode != 0:
            print(second.stderr[-2000:], file=sys.stderr)
        server.faults.fail_randomly(0)

        shapes = server.annotations(task)["shapes"]
        found = Counter((s["frame"], tuple(s["points"])) for s in shapes)
        expected = Counter(
            (n, (n % 50, n // 50, n % 50 + 3, n // 50 + 3)) for n in range(args.frames)
        )
        report = {
            "frames": args.frames,
            "failure_rate": args.rate,
            "requests": len(server.request_log),
            "faults_injected": dict(server.faults.injected),
            "faults_injected_total": sum(server.faults.injected.values()),
            "retries": sum(err.count("; retry ") for err in (first_err, second.stderr)),
            "annotations_at_kill": at_kill,
            "annotations_expected": sum(expected.values()),
            "annotations_found": len(shapes),
            "missing": sum((expected - found).values()),
            "duplicates": sum((found - expected).values()),
            "resumed_exit_code": second.returncode,
        }
    ok = report["missing"] == 0 and report["duplicates"] == 0 and second.returncode == 0
    report["ok"] = ok
    width = max(map(len, report))
    for key, value in report.items():
        print(f"  {key:<{width}}  {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"Wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
