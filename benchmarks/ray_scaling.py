"""Benchmark: frames/s against the number of Ray actors, beside the local executor.

    .venv/bin/python benchmarks/ray_scaling.py [--frames 160] [--cost-ms 50] [--out bench-results/ray_scaling.json]

The function sleeps a fixed time per frame (``--cost-ms``) and boxes the frame, so its cost
does not depend on the CPU: more actors than cores still help, and the numbers show what the
executor and the driver around it cost. The test server runs in this process; each
configuration annotates a fresh task of ``--frames`` small PNG frames. Ray runs on a local
cluster started once; each executor's actors are started (and the function loaded) by a
warm-up run on a one-frame task, timed separately as ``start_s``.

It prints a table and writes JSON with frames/s, wall time and the speed-up over the local
executor.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cvat_aa
import PIL.Image
from cvat_aa_testing import TestServer

ROOT = Path(__file__).resolve().parent.parent
ACTORS = (1, 2, 4)
BATCH_SIZE = 4

FUNCTION = """
import time

import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("object", 0, type="rectangle")])


def create(cost_ms: int = 50):
    class Sleeps:
        '''Costs cost_ms per frame, whatever the machine.'''

        def __init__(self):
            self.spec = spec

        def detect(self, context, image):
            time.sleep(cost_ms / 1000)
            return [cvat_aa.rectangle(0, [1, 1, image.width - 1, image.height - 1])]

    return Sleeps()
"""


def make_task(server: TestServer, frames: int) -> int:
    images = [PIL.Image.new("RGB", (64, 48), (i % 256, 80, 160)) for i in range(frames)]
    return server.create_task(
        "bench", images=images, labels=[{"name": "object", "type": "rectangle"}], chunk_size=16
    )


def measure(server, client, function, frames: int, executor) -> dict[str, float]:
    task = make_task(server, frames)
    started = time.perf_counter()
    summary = cvat_aa.annotate_task(
        client, task, function, executor=executor, batch_size=BATCH_SIZE
    )
    wall = time.perf_counter() - started
    assert summary.annotations == frames, summary
    return {"wall_s": round(wall, 3), "frames_per_s": round(frames / wall, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--cost-ms", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "ray_scaling.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    params = {"cost_ms": args.cost_ms}
    rows: list[dict[str, object]] = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        TestServer(data_dir=Path(scratch) / "server") as server,
    ):
        function_file = Path(scratch) / "sleeps.py"
        function_file.write_text(FUNCTION)
        function = cvat_aa.load_function(str(function_file), **params)
        with server.make_client(cache_dir=Path(scratch) / "cache") as client:
            local = measure(server, client, function, args.frames, cvat_aa.LocalExecutor())
            rows.append({"executor": "local", "actors": None, "start_s": 0.0, **local})
            started = time.perf_counter()
            ray.init(
                num_cpus=max(ACTORS),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            ray_start = round(time.perf_counter() - started, 3)
            try:
                for actors in ACTORS:
                    with cvat_aa.RayExecutor(function_file, params, actors=actors) as executor:
                        started = time.perf_counter()
                        measure(server, client, function, 1, executor)
                        start = round(time.perf_counter() - started, 3)
                        result = measure(server, client, function, args.frames, executor)
                    rows.append({"executor": "ray", "actors": actors, "start_s": start, **result})
            finally:
                ray.shutdown()

    for row in rows:
        row["speedup"] = round(float(row["frames_per_s"]) / local["frames_per_s"], 2)
    ideal = 1000 / args.cost_ms
    print(
        f"{args.frames} frames, {args.cost_ms} ms per frame (one worker's ceiling {ideal:.0f} frames/s),"
        f" batch size {BATCH_SIZE}, {os.cpu_count()} CPUs; Ray cluster start {ray_start:.1f} s"
    )
    print(
        f"{'executor':<10} {'actors':>6} {'start s':>8} {'wall s':>7} {'frames/s':>9} {'speed-up':>8}"
    )
    for row in rows:
        print(
            f"{row['executor']:<10} {row['actors'] or '-':>6} {row['start_s']:>8.2f} {row['wall_s']:>7.2f}"
            f" {row['frames_per_s']:>9.1f} {row['speedup']:>7.2f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "frames": args.frames,
                "cost_ms": args.cost_ms,
                "batch_size": BATCH_SIZE,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "ray": ray.__version__,
                "ray_cluster_start_s": ray_start,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
