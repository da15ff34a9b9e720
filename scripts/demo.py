"""The README's main job on the embedded default: annotate a demo task by plugin name.

Starts cvat-aa-testing's CVAT-compatible test server (data in .sandbox/), seeds the demo task, runs
`cvat-aa annotate TASK --function face_detection` against it as a user would against a real
CVAT, and shows the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from cvat_aa_testing import TestServer, seed_demo

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".sandbox"
FUNCTION = "face_detection"


def main() -> int:
    shutil.rmtree(DATA, ignore_errors=True)
    with TestServer(data_dir=DATA, password="demo-password") as server:
        task_id = seed_demo(server)
        print(f"Started a CVAT-compatible test server at {server.url} with demo task {task_id}.")
        command = [
            "cvat-aa",
            "annotate",
            str(task_id),
            "--function",
            FUNCTION,
            "--server-host",
            server.host,
            "--server-port",
            str(server.port),
            "--auth",
            server.username,
            "--preview",
            ".sandbox/preview",
        ]
        print("$ " + " ".join(command))
        result = subprocess.run(
            [sys.executable, "-m", "cvat_aa", *command[1:]],
            env={**os.environ, "PASS": server.password},
        )
        if result.returncode != 0:
            return result.returncode

        names = {label["id"]: label["name"] for label in server.labels(task_id)}
        annotations = server.annotations(task_id)
        print("\nAnnotations now in the task:")
        print(f"  {'frame':>5}  {'label':<8} {'source':<6} box [x1, y1, x2, y2]")
        for shape in sorted(annotations["shapes"], key=lambda s: (s["frame"], s["points"])):
            box = ", ".join(f"{p:.0f}" for p in shape["points"])
            print(
                f"  {shape['frame']:>5}  {names[shape['label_id']]:<8} {shape['source']:<6} [{box}]"
            )
    print(
        "\nSee the faces drawn on the photos: open .sandbox/preview/index.html in a browser.\n"
        "Look at the task yourself: it is kept in .sandbox/. Serve it again with\n"
        "  .venv/bin/cvat-aa sandbox --data-dir .sandbox --port 8080\n"
        "(it prints the URL and credentials) and read it with cvat-cli or cvat-sdk, or annotate\n"
        "it again with another function (.venv/bin/cvat-aa functions list).\n"
        "Point the same command at your own CVAT: --server-host https://your-cvat --auth USER."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
