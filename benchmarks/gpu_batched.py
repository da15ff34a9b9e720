"""GPU benchmark: cvat-aa batched against cvat-sdk one by one on a detector, and the floors.

    python benchmarks/gpu_batched.py [--device cuda|cpu] [--frames N] [--model NAME]
                                     [--batch-size 8] [--out bench-results/gpu_check.json]

Run by ``benchmarks/gpu_check.sh``, which sets up and runs the CUDA tests first. The test
server runs in this process (loopback, no simulated link); each row is a fresh child process
that loads a torchvision detector with random weights (nothing is downloaded), warms it up
(CUDA context, kernels, cuDNN's choices for both batch shapes) and then times one thing over
the same frames:

  cvat-sdk   ``cvat_sdk.auto_annotation.annotate_task``: one frame per model call;
  cvat-aa    ``cvat_aa.annotate_task`` with ``batch_size`` frames per model call;
  floor 1    the function over the frames already decoded in memory, one per call;
  floor B    the same, ``detect_batch`` with ``batch_size`` frames per call.

Both drivers replace what the task holds (``clear_existing=True``), each starting from an
empty task. A row's time ends after
``torch.cuda.synchronize()``; its peak GPU memory is ``torch.cuda.max_memory_allocated``
after the warm-up is reset, and its peak RSS that of its process. Prints a table and writes
JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import PIL.Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver_vs_sdk import _peak_rss_kib, machine, make_frames, write_report

DEFAULT_MODELS = {"cuda": "fasterrcnn_resnet50_fpn_v2", "cpu": "ssdlite320_mobilenet_v3_large"}
ROWS = {
    "sdk": ("cvat-sdk", False),
    "ours": ("cvat-aa", True),
    "floor1": ("floor 1", False),
    "floorB": ("floor B", True),
}


class _Context:
    frame_name = "frame"
    conf_threshold = None
    conv_mask_to_poly = False


def child(args: argparse.Namespace) -> None:
    import cvat_aa
    import torch

    function = cvat_aa.load_function(
        "torchvision_detection",
        model_name=args.model,
        weights_path=args.weights,
        device=args.device,
    )
    paths = sorted(Path(args.images).iterdir())[: args.frames]
    context = _Context()
    context.conf_threshold = args.conf_threshold
    warm = [PIL.Image.open(p).convert("RGB") for p in paths[: args.batch_size]]
    function.detect_batch([context] * len(warm), warm)
    function.detect(context, warm[0])

    def synchronize() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    synchronize()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.driver.startswith("floor"):
        images = [PIL.Image.open(p).convert("RGB") for p in paths]
        started = time.perf_counter()
        if args.driver == "floor1":
            for image in images:
                function.detect(context, image)
        else:
            for start in range(0, len(images), args.batch_size):
                chunk = images[start : start + args.batch_size]
                function.detect_batch([context] * len(chunk), chunk)
        synchronize()
        wall = time.perf_counter() - started
    else:
        from cvat_sdk import Client, Config

        with Client(args.url, config=Config(cache_dir=Path(args.cache))) as client:
            client.login((args.user, args.password))
            started = time.perf_counter()
            if args.driver == "sdk":
                from cvat_sdk.auto_annotation import annotate_task

                annotate_task(
                    client,
                    args.task,
                    function,
                    clear_existing=True,
                    conf_threshold=args.conf_threshold,
                )
            else:
                cvat_aa.annotate_task(
                    client,
                    args.task,
                    function,
                    clear_existing=True,
                    batch_size=args.batch_size,
                    conf_threshold=args.conf_threshold,
                )
            synchronize()
            wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_mib": _peak_rss_kib() / 1024,
                "peak_gpu_mib": (
                    torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
                ),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--model", help="a torchvision detection model (default: by device)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--conf-threshold",
        type=float,
        default=0.05,
        help="lowest score kept (default 0.05; random weights score most boxes lower)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "gpu_check.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("driver", "url", "user", "password", "cache", "weights", "images"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--task", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model or DEFAULT_MODELS[args.device]
    if args.child:
        child(args)
        return 0
    return parent(args)


def parent(args: argparse.Namespace) -> int:
    import cvat_aa
    import torch
    import torchvision
    from cvat_aa_testing import TestServer

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu to check the script on the CPU")
        return 2
    work = Path(tempfile.mkdtemp(prefix="cvat-aa-gpu-"))
    frames = make_frames(work / "frames", args.frames)
    torch.manual_seed(0)
    weights = work / "weights.pth"
    model = torchvision.models.get_model(
        args.model, weights=None, weights_backbone=None, num_classes=91
    )
    torch.save(model.state_dict(), weights)
    del model
    spec = cvat_aa.load_function(
        "torchvision_detection", model_name=args.model, weights_path=str(weights), device="cpu"
    ).spec
    labels = [{"name": label.name, "type": "rectangle"} for label in spec.labels]

    gpu_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "-"
    print(
        f"{args.model}, random weights, on {args.device} ({gpu_name}); {args.frames} frames of"
        f" 640x480 JPEG; batch size {args.batch_size}; boxes scored {args.conf_threshold} or"
        f" more; torch {torch.__version__}, torchvision {torchvision.__version__}"
    )
    print(
        f"  {'row':<10} {'batch':>5}  {'wall':>10}  {'frames/s':>8}  {'GPU MiB':>8}  {'RSS MiB':>8}"
    )

    rows: dict[str, dict] = {}
    shapes: dict[str, int] = {}
    with TestServer(data_dir=work / "server") as server:
        task = server.create_task("gpu check", images=frames, labels=labels)
        for driver, (name, batched) in ROWS.items():
            command = [
                sys.executable,
                __file__,
                "--child",
                "--driver", driver,
                "--device", args.device,
                "--model", args.model,
                "--frames", str(args.frames),
                "--batch-size", str(args.batch_size),
                "--conf-threshold", str(args.conf_threshold),
                "--url", server.url,
                "--user", server.username,
                "--password", server.password,
                "--task", str(task),
                "--cache", tempfile.mkdtemp(dir=work, prefix="cache-"),
                "--weights", str(weights),
                "--images", str(work / "frames"),
            ]  # fmt: skip
            # Each driver starts from an empty task, so that neither has more to clear.
            server.set_annotations(task, {"tags": [], "shapes": [], "tracks": []})
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"row {name} failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row.update(
                row=name,
                frames=args.frames,
                frames_per_model_call=args.batch_size if batched else 1,
                frames_per_s=args.frames / row["wall_s"],
            )
            rows[driver] = row
            if not driver.startswith("floor"):
                shapes[name] = len(server.annotations(task)["shapes"])
            gpu = f"{row['peak_gpu_mib']:8.0f}" if row["peak_gpu_mib"] is not None else "       -"
            print(
                f"  {name:<10} {row['frames_per_model_call']:>5}  {row['wall_s']:8.2f} s"
                f"  {row['frames_per_s']:8.1f}  {gpu}  {row['peak_rss_mib']:8.0f}",
                flush=True,
            )

    ratios = {
        "cvat_aa_vs_cvat_sdk_frames_per_s": rows["ours"]["frames_per_s"]
        / rows["sdk"]["frames_per_s"],
        "cvat_aa_wall_vs_floor_batched": rows["ours"]["wall_s"] / rows["floorB"]["wall_s"],
        "cvat_sdk_wall_vs_floor_one_by_one": rows["sdk"]["wall_s"] / rows["floor1"]["wall_s"],
        "floor_batched_vs_one_by_one_frames_per_s": rows["floorB"]["frames_per_s"]
        / rows["floor1"]["frames_per_s"],
    }
    print(f"\nshapes in the task after each driver: {shapes}")
    print("Ratios:")
    for name, value in ratios.items():
        print(f"  {name:<42} {value:6.2f}")

    report = {
        "machine": {
            **machine(),
            "device": args.device,
            "gpu": gpu_name,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        },
        "model": args.model,
        "frames": args.frames,
        "batch_size": args.batch_size,
        "conf_threshold": args.conf_threshold,
        "shapes": shapes,
        "rows": list(rows.values()),
        "ratios": ratios,
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
