"""Benchmark: cvat-aa's ``annotate_task`` against cvat-sdk's on a real CVAT server, with the
requests each one makes.

    CVAT_AA_IT_URL=http://127.0.0.1:58080 CVAT_AA_IT_USER=admin CVAT_AA_IT_PASSWORD=... \\
        .venv/bin/python benchmarks/real_cvat_vs_sdk.py [--frames 300,1000] [--repeat 2]

``benchmarks/driver_vs_sdk.py`` measures the drivers against cvat-aa's test server behind a
simulated link; this one measures them against a real server (issue 21, target 4), where
what a request costs is the server's own work (Django, PostgreSQL, the chunk cache) and not
a simulated latency. So that the comparison can say *where* the time goes, each child
process counts the requests its client makes (method, path template, status, bytes both
ways, and seconds until the body was read) by wrapping cvat-sdk's ``RESTClientObject.request``,
which every API call of both drivers goes through.

For each frame count it creates a task of 640x480 JPEG frames made from the demo photos
(uploaded, as ``tests/integration`` does), reads every chunk once so that the server's chunk
cache is warm, and then, for each measured run, puts one box per frame into the task (what a
previous run would have left) and runs a driver in a fresh child process with an empty
cvat-sdk cache: the mean-colour function of ``driver_vs_sdk.py`` (it reads every pixel and
returns one box per frame), ``clear_existing=True``. The best of ``--repeat`` runs is kept.

It prints a table (wall time, frames/s, the run's head and tail, that is the time before the
first frame reaches the function and after the last one leaves it, and the requests by kind
with their count, total seconds and bytes) and writes JSON to
bench-results/real_cvat_vs_sdk.json. The tasks are deleted at the end. Nothing is asserted:
the figures are for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from driver_vs_sdk import SIZE, MeanColourFunction, machine, make_frames, write_report

NAME_PREFIX = "cvat-aa-bench-real-"


# --- child: one measured run, its requests counted -----------------------------------------


_ID = re.compile(r"/\d+(?=/|$)")


def _kind(method: str, url: str, query: list[tuple[str, object]] | None) -> str:
    """``GET /api/tasks/{id}/data type=chunk``: the request without its ids and values, but
    with the query parameters that tell endpoints apart (type, action)."""
    path = url.split("://", 1)[-1]
    path = path[path.find("/") :].split("?", 1)[0]
    path = _ID.sub("/{id}", path)
    params = dict(query or ())
    if "?" in url:
        params.update(p.split("=", 1) for p in url.split("?", 1)[1].split("&") if "=" in p)
    extra = " ".join(f"{k}={params[k]}" for k in ("type", "action") if k in params)
    return f"{method} {path}{' ' + extra if extra else ''}"


class RequestCounter:
    """Counts every request cvat-sdk's REST client makes, by kind."""

    def __init__(self) -> None:
        self.kinds: dict[str, dict[str, float]] = defaultdict(
            lambda: {"count": 0, "seconds": 0.0, "bytes_up": 0, "bytes_down": 0, "errors": 0}
        )
        self._lock = threading.Lock()

    def _add(self, kind: str, seconds: float, up: int, down: int, status: int) -> None:
        with self._lock:
            entry = self.kinds[kind]
            entry["count"] += 1
            entry["seconds"] += seconds
            entry["bytes_up"] += up
            entry["bytes_down"] += down
            entry["errors"] += not 200 <= status <= 299

    def _more(self, kind: str, seconds: float, down: int) -> None:
        with self._lock:
            self.kinds[kind]["seconds"] += seconds
            self.kinds[kind]["bytes_down"] += down

    def install(self) -> None:
        from cvat_sdk.api_client import rest

        original = rest.RESTClientObject.request
        counter = self

        def request(self, method, url, query_params=None, headers=None, body=None, *a, **kw):
            kind = _kind(method, url, query_params)
            up = len(json.dumps(body)) if isinstance(body, dict | list) else len(body or b"")
            started = time.perf_counter()
            try:
                response = original(self, method, url, query_params, headers, body, *a, **kw)
            except Exception as ex:
                status = getattr(ex, "status", 0) or 0
                counter._add(kind, time.perf_counter() - started, up, 0, status)
                raise
            seconds = time.perf_counter() - started
            if kw.get("_parse_response", True):
                counter._add(kind, seconds, up, len(response.data), response.status)
                return response
            # A streamed body: counted now (a caller may never read it) and as it is read.
            counter._add(kind, seconds, up, 0, response.status)
            read = response.read

            def counted_read(amt=None, *args, **kwargs):
                started = time.perf_counter()
                data = read(amt, *args, **kwargs)
                counter._more(kind, time.perf_counter() - started, len(data))
                return data

            response.read = counted_read
            return response

        rest.RESTClientObject.request = request


def child(args: argparse.Namespace) -> None:
    from cvat_sdk import Client, Config

    counter = RequestCounter()
    counter.install()
    function = MeanColourFunction()
    # When the first frame reached the function and when the last left it: the run's head
    # (everything before detection) and its tail (everything after: uploads, clearing).
    detected: list[float] = []
    detect = function.detect

    def timed_detect(context, image):
        if not detected:
            detected.append(time.perf_counter())
        result = detect(context, image)
        detected[1:] = [time.perf_counter()]
        return result

    function.detect = timed_detect
    # Both drivers imported before the clock starts: the runs are measured, not the imports.
    import cvat_aa
    from cvat_sdk.auto_annotation import annotate_task

    client = Client(args.url, config=Config(cache_dir=Path(args.cache)))
    client.login((args.user, args.password))
    counter.kinds.clear()  # the login is not the run's
    with client:
        started = time.perf_counter()
        if args.driver == "sdk":
            annotate_task(client, args.task, function, clear_existing=True)
        else:
            cvat_aa.annotate_task(client, args.task, function, clear_existing=True)
        wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "wall_s": wall,
                "head_s": detected[0] - started,
                "tail_s": started + wall - detected[-1],
                "requests": dict(counter.kinds),
                "cvat_aa": cvat_aa.__file__,
            }
        )
    )


# --- parent ---------------------------------------------------------------------------------


def _client(args: argparse.Namespace, cache: Path):
    from cvat_sdk import Client, Config

    client = Client(args.url, config=Config(cache_dir=cache))
    client.login((args.user, args.password))
    return client


def create_task(client, frames: list[Path]) -> int:
    from cvat_sdk import models

    task = client.tasks.create_from_data(
        spec=models.TaskWriteRequest(
            name=f"{NAME_PREFIX}{len(frames)}",
            labels=[models.PatchedLabelRequest(name="object", type="rectangle")],
        ),
        resources=[str(p) for p in frames],
        data_params={"image_quality": 95, "sorting_method": "natural"},
    )
    return task.id


def warm_chunk_cache(client, task_id: int) -> None:
    """Read every chunk once: the server makes and caches a chunk on its first request."""
    import io

    task = client.tasks.retrieve(task_id)
    for chunk in range((task.size + task.data_chunk_size - 1) // task.data_chunk_size):
        task.download_chunk(chunk, io.BytesIO(), quality="original")


def reset_annotations(client, task_id: int, frames: int) -> None:
    """One box a frame, as a previous run would have left: what clear_existing replaces."""
    label = client.tasks.retrieve(task_id).get_labels()[0].id
    client.api_client.call_api(
        "/api/tasks/{id}/annotations/",
        "PUT",
        path_params={"id": task_id},
        header_params={"Content-Type": "application/json"},
        body={
            "version": 0,
            "tags": [],
            "tracks": [],
            "shapes": [
                {
                    "type": "rectangle",
                    "frame": f,
                    "label_id": label,
                    "points": [1.0, 1.0, 20.0, 20.0],
                    "source": "manual",
                    "attributes": [],
                    "group": 0,
                    "occluded": False,
                    "z_order": 0,
                }
                for f in range(frames)
            ],
        },
        _parse_response=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument("--task", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--url", default=os.environ.get("CVAT_AA_IT_URL"))
    parser.add_argument("--user", default=os.environ.get("CVAT_AA_IT_USER"))
    parser.add_argument("--password", default=os.environ.get("CVAT_AA_IT_PASSWORD"))
    parser.add_argument("--frames", default="300,1000", help="frame counts (default 300,1000)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per driver (best kept)")
    parser.add_argument(
        "--drivers", default="sdk,ours", help="which drivers, in order (default sdk,ours)"
    )
    parser.add_argument(
        "--before",
        metavar="LABEL=DIR",
        action="append",
        default=[],
        help="also run the cvat_aa package found in DIR (say, an older commit's core/, from"
        " 'git archive') as the driver LABEL, for a side-by-side comparison; may be repeated",
    )
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "real_cvat_vs_sdk.json"))
    args = parser.parse_args()
    if not (args.url and args.user and args.password):
        parser.error("give --url, --user and --password (or CVAT_AA_IT_URL, _USER, _PASSWORD)")
    if args.child:
        child(args)
        return 0
    return parent(args)


def run_child(args: argparse.Namespace, work: Path, driver: str, task_id: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--driver",
        driver,
        "--task",
        str(task_id),
        "--cache",
        tempfile.mkdtemp(dir=work, prefix="cache-"),
        "--url",
        args.url,
        "--user",
        args.user,
        "--password",
        args.password,
    ]
    # Each run gets its own state directory: journals and locks of one run are not another's.
    env = {**os.environ, "XDG_STATE_HOME": tempfile.mkdtemp(dir=work, prefix="state-")}
    trees = dict(b.split("=", 1) for b in args.before)
    if driver in trees:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [trees[driver], env.get("PYTHONPATH")]))
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{driver} on task {task_id} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_run(row: dict) -> None:
    requests = row["requests"]
    total = sum(r["count"] for r in requests.values())
    seconds = sum(r["seconds"] for r in requests.values())
    print(
        f"\n{row['driver']:<5} {row['frames']:>5} frames  {row['wall_s']:7.2f} s"
        f"  {row['frames_per_s']:7.1f} frames/s  head {row['head_s']:5.2f} s  tail"
        f" {row['tail_s']:5.2f} s  {total} requests, {seconds:.2f} s in them"
        f" (all runs: {', '.join(f'{w:.2f}' for w in row['all_wall_s'])} s)"
    )
    for kind, r in sorted(requests.items(), key=lambda item: -item[1]["seconds"]):
        print(
            f"    {r['count']:4d} x {kind:<52} {r['seconds']:7.3f} s"
            f"  up {r['bytes_up'] / 1024:8.1f} KiB  down {r['bytes_down'] / 1024:8.1f} KiB"
            + (f"  {r['errors']} errors" if r["errors"] else "")
        )


def parent(args: argparse.Namespace) -> int:
    counts = [int(n) for n in args.frames.split(",")]
    drivers = args.drivers.split(",") + [b.split("=", 1)[0] for b in args.before]
    work = Path(tempfile.mkdtemp(prefix="cvat-aa-bench-real-"))
    frames = make_frames(work / "frames", max(counts))
    frame_bytes = sum(p.stat().st_size for p in frames) / len(frames)
    results: list[dict] = []
    ratios: dict[str, float] = {}
    with _client(args, work / "parent-cache") as client:
        tasks: dict[int, int] = {}
        try:
            for n in counts:
                tasks[n] = create_task(client, frames[:n])
                warm_chunk_cache(client, tasks[n])
            print(
                f"CVAT at {args.url}; frames {SIZE[0]}x{SIZE[1]} JPEG,"
                f" {frame_bytes / 1024:.0f} KiB on average; best of {args.repeat}"
            )
            for n in counts:
                runs: dict[str, list[dict]] = {d: [] for d in drivers}
                # Alternate the drivers, so that a busy moment of the machine hurts both.
                for _ in range(args.repeat):
                    for driver in drivers:
                        reset_annotations(client, tasks[n], n)
                        runs[driver].append(run_child(args, work, driver, tasks[n]))
                best = {}
                for driver in drivers:
                    row = min(runs[driver], key=lambda r: r["wall_s"])
                    row = dict(
                        row,
                        driver=driver,
                        frames=n,
                        frames_per_s=n / row["wall_s"],
                        all_wall_s=[r["wall_s"] for r in runs[driver]],
                    )
                    results.append(row)
                    best[driver] = row
                    print_run(row)
                print()
                for ours in [d for d in drivers if d != "sdk"]:
                    if "sdk" in best and ours in best:
                        ratio = best[ours]["frames_per_s"] / best["sdk"]["frames_per_s"]
                        ratios[f"{ours}_vs_sdk_frames_per_s_{n}"] = ratio
                        print(f"  {n} frames: cvat-aa ({ours}) at {ratio:.2f}x cvat-sdk's speed")
        finally:
            for task_id in tasks.values():
                client.api_client.tasks_api.destroy(task_id)

    report = {
        "machine": machine(),
        "server": args.url,
        "frame_size": SIZE,
        "mean_frame_bytes": frame_bytes,
        "repeat": args.repeat,
        "runs": results,
        "ratios": ratios,
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
