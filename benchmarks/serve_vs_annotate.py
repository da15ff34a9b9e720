"""Benchmark: CVAT's task-wide automatic annotation through ``cvat-aa serve``, against
``cvat-aa annotate`` on an identical task, side by side in one run.

    .venv/bin/python benchmarks/serve_vs_annotate.py [--server testserver|real|both]
        [--frames 200] [--repeat 1] [--out bench-results/serve_vs_annotate.json]

Paths, each on a task of its own with the same frames and labels:
  serve     ``cvat-aa serve`` (a subprocess that has loaded both functions) stands where the
            server expects its Nuclio dashboard; the benchmark makes a task-wide request
            (``POST /api/lambda/requests`` with cleanup) and polls it every 0.2 s until it has
            finished. The server then invokes the function once per frame, one call after
            another (CVAT 2.73's ``LambdaJob._call_detector``). serve has answered one call of
            each function before anything is timed, as a serve that has been running has;
  annotate  ``cvat_aa.annotate_task(..., clear_existing=True)`` in a fresh child process,
            timed from the call to its return (the function is loaded before);
  floor     the same function called directly on the frames, decoded in memory beforehand, in
            a plain loop in a child process, after one untimed call: the model's own time.

Servers (``--server``; by default both when the real one answers, else the test server):
  testserver  cvat-aa-testing's TestServer in this process, its lambda manager pointed at serve
  real        the CVAT at ``--cvat-url``, which expects its Nuclio dashboard on this machine at
              ``--nuclio-port`` (dashboard invoke method); when another run holds that port,
              starting serve is tried again for up to 3 minutes
Neither link is slowed: client, server and functions share this machine's loopback and cores.

Cases (frames are 640x480 JPEGs made from the demo photos, as in driver_vs_sdk.py):
  mean   benchmarks/mean_colour_function.py: reads every pixel, returns one box; about 0.5 ms
         a frame, so a path's wall is the path's own cost
  model  torchvision_detection with ssdlite320_mobilenet_v3_large, random weights, on the CPU,
         10 boxes a frame (``-p detections_per_img=int:10``)

Both tasks' original chunks are fetched once before anything is timed, so neither path pays for
the server preparing them. After each run the task's annotations are counted; the benchmark
fails if the two paths left different numbers. CPU times: the serve process, the annotate
child, and the server (the test server: this process; the real one: its uvicorn processes and
its annotation worker with the work horses it has reaped).

Last, one request is taken apart inside cvat-aa serve, on the first frame and the mean-colour
function, in this process: JSON parsing, base64, JPEG decoding, the queue hop to the worker
thread, validation and conversion, the reply's JSON, and whole HTTP calls through the Gateway
made as CVAT makes them (a new ``requests`` session, so a new connection, for every call).

It prints tables and writes JSON with walls, frames/s, ratios to the floor and between the
paths, serve's latency and batch sizes (its ``/api/metrics``), CPU times and the profile.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import PIL.Image
from driver_vs_sdk import make_frames

ROOT = Path(__file__).resolve().parent.parent
MEAN_FUNCTION = Path(__file__).resolve().parent / "mean_colour_function.py"
MODEL = "ssdlite320_mobilenet_v3_large"
BOXES_PER_FRAME = 10
FUNCTION_IDS = {"mean": "cvat-aa-bench-mean", "model": "cvat-aa-bench-ssdlite"}
CASE_NAMES = {"mean": "mean colour", "model": "SSDlite, random weights"}
REAL_URL = "http://127.0.0.1:58080"
REAL_USER, REAL_PASSWORD = "admin", "Admin-pass-123"
REAL_NUCLIO_PORT = 58070
POLL_S = 0.2
PORT_WAIT_S = 180.0
START_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 900.0


def model_parameters(weights: Path) -> dict[str, Any]:
    """The torchvision_detection plugin's parameters, as ``-p`` gives them to serve."""
    return {
        "model_name": MODEL,
        "weights_path": str(weights),
        "device": "cpu",
        "detections_per_img": BOXES_PER_FRAME,
    }


def load(case: str, weights: Path) -> Any:
    import cvat_aa

    if case == "mean":
        return cvat_aa.load_function(str(MEAN_FUNCTION))
    return cvat_aa.load_function("torchvision_detection", **model_parameters(weights))


# --- child: one measured run --------------------------------------------------------------


def child(job: dict[str, Any]) -> dict[str, Any]:
    function = load(job["case"], Path(job["weights"]))
    if job["mode"] == "floor":
        from cvat_aa.interface import FrameContext

        paths = sorted(Path(job["images"]).iterdir())[: job["frames"]]
        images = [PIL.Image.open(p).convert("RGB") for p in paths]
        context = FrameContext(frame_name="frame", conf_threshold=None)
        function.detect(context, images[0])  # warm, as serve is
        cpu, started = time.process_time(), time.perf_counter()
        for image in images:
            function.detect(context, image)
        wall = time.perf_counter() - started
    else:
        import cvat_aa
        from cvat_sdk import Client, Config

        client = Client(
            job["url"], config=Config(cache_dir=Path(job["cache"])), check_server_version=False
        )
        client.login((job["user"], job["password"]))
        with client:
            cpu, started = time.process_time(), time.perf_counter()
            cvat_aa.annotate_task(client, job["task"], function, clear_existing=True)
            wall = time.perf_counter() - started
    return {"wall_s": wall, "client_cpu_s": time.process_time() - cpu}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{job['mode']} of {job['case']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- CPU time of other processes ----------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def process_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of the children it has waited for."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS  # utime stime cutime cstime


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds of ``roots`` and all their living descendants (with what they reaped)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                parents[int(entry)] = int(fields[1])
    members, frontier = set(roots), list(roots)
    while frontier:
        pid = frontier.pop()
        for child_pid, parent in parents.items():
            if parent == pid and child_pid not in members:
                members.add(child_pid)
                frontier.append(child_pid)
    return sum(process_cpu(pid) for pid in members)


def cvat_processes(*, worker_only: bool = False) -> list[int]:
    """A real CVAT's uvicorn server and its annotation worker (the rq worker of the queue
    that runs lambda requests), found by their command lines."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            words = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        worker = "rqworker" in words and "annotation" in words
        if worker or ("cvat.asgi:application" in words and not worker_only):
            found.append(int(entry))
    return found


# --- servers --------------------------------------------------------------------------------


@attrs.define
class Target:
    name: str
    url: str
    user: str
    password: str
    nuclio_port: int
    server_cpu: Callable[[], float]
    worker_cpu: Callable[[], float] | None = None
    """The CPU time of the process that calls the function, where it is one of the server's."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def real_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/server/about", timeout=5) as reply:
            return reply.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def test_server(work: Path) -> Iterator[Target]:
    from cvat_aa_testing import TestServer

    port = free_port()
    with TestServer(data_dir=work / "server", nuclio_url=f"http://127.0.0.1:{port}") as server:
        yield Target(
            "testserver",
            server.url,
            server.username,
            server.password,
            port,
            # The test server runs in this process, as does the polling (a small share).
            lambda: time.process_time(),
        )


@contextlib.contextmanager
def real_server(args: argparse.Namespace) -> Iterator[Target]:
    yield Target(
        "real",
        args.cvat_url,
        args.cvat_user,
        args.cvat_password,
        args.nuclio_port,
        lambda: tree_cpu(cvat_processes()),
        lambda: tree_cpu(cvat_processes(worker_only=True)),
    )


class Serve:
    """``cvat-aa serve`` of both functions on the target's Nuclio port."""

    def __init__(self, port: int, weights: Path, log: Path) -> None:
        self.port = port
        self.log = log
        params = []
        for name, value in model_parameters(weights).items():
            params += ["-p", f"{name}={type(value).__name__}:{value}"]
        self.command = [
            *(sys.executable, "-m", "cvat_aa", "serve", "--host", "127.0.0.1"),
            *("--port", str(port), "--no-direct"),
            *("-f", str(MEAN_FUNCTION), "--id", FUNCTION_IDS["mean"]),
            *("-f", "torchvision_detection", "--id", FUNCTION_IDS["model"], *params),
        ]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        deadline = time.monotonic() + PORT_WAIT_S
        while True:
            with self.log.open("w") as log:
                self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=log)
            started = time.monotonic()
            while self.process.poll() is None and "serving on" not in self.output():
                if time.monotonic() - started > START_TIMEOUT_S:
                    self.stop()
                    raise SystemExit(f"cvat-aa serve did not start:\n{self.output()[-3000:]}")
                time.sleep(0.2)
            if self.process.poll() is None:
                return
            if "in use" not in self.output() or time.monotonic() > deadline:
                raise SystemExit(f"cvat-aa serve did not start:\n{self.output()[-3000:]}")
            print(f"  port {self.port} is in use; trying again in 5 s", flush=True)
            time.sleep(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def warm(self, frame: Path) -> None:
        """One call of each function, untimed: a serve that has been running is warm."""
        body = json.dumps({"image": base64.b64encode(frame.read_bytes()).decode()}).encode()
        for function_id in FUNCTION_IDS.values():
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/api/function_invocations",
                data=body,
                headers={"x-nuclio-function-name": function_id},
            )
            with urllib.request.urlopen(request, timeout=300) as reply:
                reply.read()

    def cpu(self) -> float:
        assert self.process is not None
        return process_cpu(self.process.pid)

    def metrics(self, function_id: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/metrics") as reply:
            return json.load(reply)[function_id]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


def metrics_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What serve's metrics say about the requests between ``before`` and ``after``."""
    requests = after["requests"] - before["requests"]
    latency_sum = (after["latency_s"]["mean"] or 0) * after["requests"] - (
        before["latency_s"]["mean"] or 0
    ) * before["requests"]
    sizes = {
        size: count - before["batch_sizes"].get(size, 0)
        for size, count in after["batch_sizes"].items()
        if count - before["batch_sizes"].get(size, 0)
    }
    batches = sum(sizes.values())
    return {
        "requests": requests,
        "errors": {k: v - before["errors"].get(k, 0) for k, v in after["errors"].items()},
        "mean_latency_s": latency_sum / requests if requests else None,
        "latency_p50_s": after["latency_s"]["p50"],
        "latency_p95_s": after["latency_s"]["p95"],
        "batches": batches,
        "mean_batch_size": sum(int(s) * c for s, c in sizes.items()) / batches if batches else None,
        "batch_sizes": sizes,
    }


# --- runs -----------------------------------------------------------------------------------


def create_task(client: Any, name: str, frames: list[Path], labels: list[dict]) -> int:
    from cvat_sdk import models

    spec = models.TaskWriteRequest(
        name=name, labels=[models.PatchedLabelRequest(**label) for label in labels]
    )
    task = client.tasks.create_from_data(
        spec,
        resources=[str(p) for p in frames],
        data_params={"image_quality": 70, "sorting_method": "predefined"},
    )
    # Every original chunk once, so that neither path pays for the server making them.
    task.fetch()
    for index in range(math.ceil(task.size / task.data_chunk_size)):
        task.download_chunk(index, io.BytesIO(), quality="original")
    return int(task.id)


def annotation_count(client: Any, task_id: int) -> int:
    data = client.tasks.retrieve(task_id).get_annotations()
    return len(data.shapes) + len(data.tags) + len(data.tracks)


def serve_run(client: Any, target: Target, serve: Serve, case: str, task_id: int) -> dict:
    from cvat_sdk import models

    api = client.api_client.lambda_api
    function_id = FUNCTION_IDS[case]
    before = serve.metrics(function_id)
    server_cpu, serve_cpu = target.server_cpu(), serve.cpu()
    worker_cpu = target.worker_cpu() if target.worker_cpu else None
    started = time.perf_counter()
    request, _ = api.create_requests(
        models.FunctionCallRequest(function=function_id, task=task_id, cleanup=True)
    )
    while str(request.status) not in ("finished", "failed"):
        if time.perf_counter() - started > REQUEST_TIMEOUT_S:
            raise SystemExit(f"the request on {target.name} is still {request.status}")
        time.sleep(POLL_S)
        request, _ = api.retrieve_requests(request.id)
    wall = time.perf_counter() - started
    if str(request.status) == "failed":
        raise SystemExit(f"the request on {target.name} failed:\n{request.exc_info}")
    # For rq to reap its work horse, whose CPU time counts from then on, and to note when the
    # job ended (CVAT may show it finished a moment before).
    time.sleep(1.0)
    request, _ = api.retrieve_requests(request.id)
    row = {
        "wall_s": wall,
        "server_wall_s": (
            (request.ended - request.enqueued).total_seconds() if request.ended else None
        ),
        "serve_cpu_s": serve.cpu() - serve_cpu,
        "server_cpu_s": target.server_cpu() - server_cpu,
        "serve_metrics": metrics_delta(before, serve.metrics(function_id)),
    }
    if target.worker_cpu and worker_cpu is not None:
        row["worker_cpu_s"] = target.worker_cpu() - worker_cpu
    return row


def annotate_run(target: Target, case: str, task_id: int, work: Path, weights: Path) -> dict:
    server_cpu = target.server_cpu()
    row = run_child(
        {
            "mode": "annotate",
            "case": case,
            "weights": str(weights),
            "url": target.url,
            "user": target.user,
            "password": target.password,
            "task": task_id,
            "cache": tempfile.mkdtemp(dir=work, prefix="cache-"),
        }
    )
    row["server_cpu_s"] = target.server_cpu() - server_cpu
    return row


def median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def bench_server(
    target: Target, args: argparse.Namespace, work: Path, frames: list[Path], weights: Path
) -> list[dict]:
    from cvat_sdk import Client, Config

    labels = [{"name": "object", "type": "rectangle"}] + [
        {"name": name} for name in coco_categories()
    ]
    serve = Serve(target.nuclio_port, weights, work / f"serve-{target.name}.log")
    client = Client(
        target.url,
        config=Config(cache_dir=work / "cache", status_check_period=0.5),
        check_server_version=False,
    )
    client.login((target.user, target.password))
    rows = []
    with client:
        stamp = time.strftime("%H%M%S")
        tasks = {
            path: create_task(client, f"serve_vs_annotate {stamp} {path}", frames, labels)
            for path in ("serve", "annotate")
        }
        serve.start()
        try:
            serve.warm(frames[0])
            for case in args.cases:
                by_path: dict[str, list[dict]] = {"serve": [], "annotate": []}
                for _ in range(args.repeat):
                    run = serve_run(client, target, serve, case, tasks["serve"])
                    run["annotations"] = annotation_count(client, tasks["serve"])
                    by_path["serve"].append(run)
                    run = annotate_run(target, case, tasks["annotate"], work, weights)
                    run["annotations"] = annotation_count(client, tasks["annotate"])
                    by_path["annotate"].append(run)
                for path, runs in by_path.items():
                    row = dict(
                        median_run(runs),
                        server=target.name,
                        case=case,
                        path=path,
                        frames=len(frames),
                        task=tasks[path],
                        annotations_each_run=[r["annotations"] for r in runs],
                    )
                    row["frames_per_s"] = len(frames) / row["wall_s"]
                    if path == "serve":
                        # What each frame cost besides serve's own answer: the server's side.
                        row["outside_serve_ms_per_frame"] = (
                            row["wall_s"] / len(frames) - row["serve_metrics"]["mean_latency_s"]
                        ) * 1000
                    rows.append(row)
                    print_row(row)
        finally:
            serve.stop()
            for task_id in tasks.values():
                with contextlib.suppress(Exception):
                    client.tasks.remove_by_ids([task_id])
    return rows


def coco_categories() -> list[str]:
    import torchvision

    coco = torchvision.models.get_model_weights(MODEL).DEFAULT
    return [name for name in dict.fromkeys(coco.meta["categories"]) if name != "N/A"]


def make_weights(path: Path) -> None:
    """Random weights (seed 0), saved where the plugin's ``weights_path`` takes them."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(MODEL, weights=None, weights_backbone=None, num_classes=91)
    torch.save(model.state_dict(), path)


# --- one request, taken apart ---------------------------------------------------------------


def _median_us(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def profile_request(frame: Path, repeat: int) -> list[dict]:
    """Median microseconds of each step of one detector call inside cvat-aa serve."""
    import cvat_aa
    import requests
    from cvat_aa.interface import FrameContext
    from cvat_aa.pipeline.detection import run_batch
    from cvat_aa.pipeline.label_mapping import LabelMapper, spec_as_task_labels
    from cvat_aa.serve import FunctionChoice, Gateway, ServedFunction
    from cvat_aa.serve.nuclio import parse_detector_payload, to_nuclio

    function = cvat_aa.load_function(str(MEAN_FUNCTION))
    image_b64 = base64.b64encode(frame.read_bytes()).decode()
    payload = {"image": image_b64}
    body = json.dumps(payload).encode()
    request = parse_detector_payload(body)
    context = FrameContext(frame_name="frame", conf_threshold=None)
    served = ServedFunction(FunctionChoice(source=function, id="profile"), batch_size=8)
    catalog = served.catalog
    mapper = LabelMapper(
        served.spec.labels,
        spec_as_task_labels(served.spec.labels, [info.type for info in catalog]),
        allow_unmatched_labels=False,
        conv_mask_to_poly=False,
    )

    def convert() -> list:
        annotations = run_batch(function, [context], [request.image], [(0, "frame")])[0]
        tags, shapes = mapper.map_frame(annotations, 0, frame_size=request.image.size)
        return to_nuclio(catalog, tags, shapes)

    items = convert()
    steps: list[tuple[str, str, Callable[[], Any]]] = [
        (
            "CVAT",
            "base64 of the frame file + JSON body",
            lambda: json.dumps({"image": base64.b64encode(frame.read_bytes()).decode()}),
        ),
        ("serve", "json.loads of the body", lambda: json.loads(body)),
        (
            "serve",
            "base64 decode (validate=True)",
            lambda: base64.b64decode(image_b64, validate=True),
        ),
        (
            "serve",
            "JPEG decode (PIL open + load)",
            lambda: PIL.Image.open(io.BytesIO(base64.b64decode(image_b64))).load(),
        ),
        ("serve", "parse_detector_payload (the three above)", lambda: parse_detector_payload(body)),
        ("function", "the function (mean colour)", lambda: function.detect(context, request.image)),
        ("serve", "hooks + function + validation + conversion, same thread", convert),
        ("serve", "ServedFunction.detect (the above + queue hop)", lambda: served.detect(request)),
        ("serve", "json.dumps of the reply", lambda: json.dumps(items).encode()),
    ]
    rows = [
        {"side": side, "step": step, "median_us": _median_us(call, repeat)}
        for side, step, call in steps
    ]

    with Gateway([served], port=0, direct=False) as gateway:
        url = f"{gateway.url}/api/function_invocations"
        headers = {"x-nuclio-function-name": "profile"}

        def cvat_call() -> None:
            # As CVAT's LambdaGateway: a new session (and connection) for every call.
            with requests.Session() as session:
                session.post(url, headers=headers, json=payload, timeout=60).raise_for_status()

        with requests.Session() as kept:

            def kept_call() -> None:
                kept.post(url, headers=headers, json=payload, timeout=60).raise_for_status()

            rows.append(
                {
                    "side": "both",
                    "step": "HTTP call as CVAT makes it (new connection), client-observed",
                    "median_us": _median_us(cvat_call, repeat),
                }
            )
            rows.append(
                {
                    "side": "both",
                    "step": "HTTP call on a kept-alive connection, client-observed",
                    "median_us": _median_us(kept_call, repeat),
                }
            )
        metrics = gateway.metrics.as_dict()["profile"]
        rows.append(
            {
                "side": "serve",
                "step": "serve's own latency of those calls (metrics p50)",
                "median_us": metrics["latency_s"]["p50"] * 1e6,
            }
        )
    return rows


# --- output ---------------------------------------------------------------------------------


def _num(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _server_cpu(row: dict) -> str:
    text = _num(row.get("server_cpu_s"))
    if row.get("worker_cpu_s") is not None:
        text += f" ({row['worker_cpu_s']:.1f})"
    return text


def print_row(row: dict) -> None:
    metrics = row.get("serve_metrics") or {}
    extra = ""
    if metrics.get("mean_latency_s") is not None:
        extra = (
            f"  serve latency {metrics['mean_latency_s'] * 1000:6.1f} ms,"
            f" outside serve {row['outside_serve_ms_per_frame']:5.1f} ms/frame,"
            f" batch {metrics['mean_batch_size']:.2f}, serve cpu {row['serve_cpu_s']:5.1f} s"
        )
    if "client_cpu_s" in row:
        extra += f"  client cpu {row['client_cpu_s']:5.1f} s"
    if "server_cpu_s" in row:
        extra += f"  server cpu {_server_cpu(row)} s"
    print(
        f"  {row['server']:<10} {row['case']:<5} {row['path']:<8} {row['frames']:>4} frames"
        f"  {row['wall_s']:7.2f} s  {row['frames_per_s']:6.1f} frames/s"
        f"  {row['wall_s'] / row['frames'] * 1000:6.1f} ms/frame"
        f"  {row.get('annotations', '-')!s:>5} annotations{extra}",
        flush=True,
    )


def markdown(rows: list[dict], floors: dict[str, dict], ratios: dict[str, float]) -> str:
    lines = [
        (
            "| server | case | path | frames | wall (s) | frames/s | ms/frame | ÷ floor"
            " | serve latency (ms, mean) | outside serve (ms/frame) | mean batch"
            " | serve CPU (s) | client CPU (s) | server CPU (s) (worker) | annotations |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        floor = floors[row["case"]]
        metrics = row.get("serve_metrics") or {}
        latency = metrics.get("mean_latency_s")
        lines.append(
            f"| {row['server']} | {CASE_NAMES[row['case']]} | {row['path']} | {row['frames']}"
            f" | {row['wall_s']:.2f} | {row['frames_per_s']:.1f}"
            f" | {row['wall_s'] / row['frames'] * 1000:.1f}"
            f" | {row['wall_s'] / floor['wall_s']:.2f}"
            f" | {_num(None if latency is None else latency * 1000)}"
            f" | {_num(row.get('outside_serve_ms_per_frame'))}"
            f" | {_num(metrics.get('mean_batch_size'), 2)}"
            f" | {_num(row.get('serve_cpu_s'))} | {_num(row.get('client_cpu_s'))}"
            f" | {_server_cpu(row)} | {row.get('annotations', '')} |"
        )
    for case, floor in floors.items():
        lines.append(
            f"| (none) | {CASE_NAMES[case]} | floor | {floor['frames']} | {floor['wall_s']:.2f}"
            f" | {floor['frames_per_s']:.1f} | {floor['wall_s'] / floor['frames'] * 1000:.1f}"
            f" | 1.00 | | | | | {floor['client_cpu_s']:.1f} | | |"
        )
    lines += ["", "| ratio | measured |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in ratios.items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--server",
        choices=["testserver", "real", "both"],
        help="where to run (default: both when the real CVAT answers, else testserver)",
    )
    parser.add_argument("--frames", type=int, default=200, help="frames per task (default 200)")
    parser.add_argument(
        "--cases",
        default="mean,model",
        type=lambda text: [c for c in text.split(",") if c],
        help="comma-separated: mean, model (default both)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument(
        "--profile-repeat", type=int, default=200, help="calls per step of the request profile"
    )
    parser.add_argument("--cvat-url", default=REAL_URL)
    parser.add_argument("--cvat-user", default=REAL_USER)
    parser.add_argument("--cvat-password", default=REAL_PASSWORD)
    parser.add_argument(
        "--nuclio-port",
        type=int,
        default=REAL_NUCLIO_PORT,
        help="where the real CVAT expects its Nuclio dashboard (default 58070)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench-results" / "serve_vs_annotate.json"
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    unknown = set(args.cases) - set(FUNCTION_IDS)
    if unknown:
        parser.error(f"--cases: unknown {', '.join(sorted(unknown))}")
    return parent(args)


def parent(args: argparse.Namespace) -> int:
    servers = {"both": ["testserver", "real"]}.get(args.server or "", [args.server])
    if args.server is None:
        servers = ["testserver", "real"] if real_answers(args.cvat_url) else ["testserver"]
    elif "real" in servers and not real_answers(args.cvat_url):
        raise SystemExit(f"no CVAT answers at {args.cvat_url}")

    work = Path(tempfile.mkdtemp(prefix="cvat-aa-bench-serve-"))
    frames = make_frames(work / "frames", args.frames)
    weights = work / "ssdlite.pth"
    make_weights(weights)
    frame_kib = sum(p.stat().st_size for p in frames) / len(frames) / 1024
    print(
        f"{len(frames)} frames of 640x480 JPEG, {frame_kib:.0f} KiB on average;"
        f" servers: {', '.join(servers)}; cases: {', '.join(args.cases)}",
        flush=True,
    )

    floors = {}
    for case in args.cases:
        floor = median_run(
            [
                run_child(
                    {
                        "mode": "floor",
                        "case": case,
                        "weights": str(weights),
                        "images": str(work / "frames"),
                        "frames": len(frames),
                    }
                )
                for _ in range(args.repeat)
            ]
        )
        floor.update(frames=len(frames), frames_per_s=len(frames) / floor["wall_s"])
        floors[case] = floor
        print(
            f"  floor      {case:<5} {len(frames):>4} frames  {floor['wall_s']:7.2f} s"
            f"  {floor['frames_per_s']:6.1f} frames/s",
            flush=True,
        )

    rows: list[dict] = []
    for name in servers:
        target = test_server(work) if name == "testserver" else real_server(args)
        with target as server:
            rows += bench_server(server, args, work, frames, weights)

    ratios: dict[str, float] = {}
    mismatches = []
    for name in servers:
        for case in args.cases:
            serve, annotate = (
                next(r for r in rows if (r["server"], r["case"], r["path"]) == (name, case, p))
                for p in ("serve", "annotate")
            )
            ratios[f"{name} {case}: serve wall ÷ annotate wall"] = (
                serve["wall_s"] / annotate["wall_s"]
            )
            ratios[f"{name} {case}: serve ms/frame − annotate ms/frame"] = (
                (serve["wall_s"] - annotate["wall_s"]) / len(frames) * 1000
            )
            counts = {*serve["annotations_each_run"], *annotate["annotations_each_run"]}
            if len(counts) > 1:
                mismatches.append(
                    f"{name} {case}: serve left {serve['annotations_each_run']} annotations,"
                    f" annotate {annotate['annotations_each_run']}"
                )

    print("\nRequest profile (inside cvat-aa serve, first frame, mean-colour function):")
    profile = profile_request(frames[0], args.profile_repeat)
    for step in profile:
        print(f"  {step['side']:<8} {step['step']:<62} {step['median_us']:9.1f} µs")

    table = markdown(rows, floors, ratios)
    print("\n" + table)
    report = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "frames": len(frames),
        "frame_size": [640, 480],
        "mean_frame_bytes": frame_kib * 1024,
        "boxes_per_frame_model": BOXES_PER_FRAME,
        "servers": servers,
        "floors": floors,
        "runs": rows,
        "ratios": ratios,
        "request_profile": profile,
        "annotation_count_mismatches": mismatches,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nWrote {args.out}")
    if mismatches:
        print("The paths left different annotations:\n  " + "\n  ".join(mismatches))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
