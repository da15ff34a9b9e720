"""A task made from files on the server's share is annotated like any other.

Users often create tasks from a CVAT server's file share (``cvat-cli task create NAME share
...``); their frames are named by their path on the share and read back as usual.
"""

from __future__ import annotations

import cvat_aa
import cvat_sdk
import PIL.Image
from cvat_aa_testing import TestServer
from cvat_sdk.core.proxies.tasks import ResourceType


class BoxEveryFrame:
    """Boxes the whole frame; records the frame names and sizes it saw."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[int, int]]] = []

    def detect(self, context, image):
        self.seen.append((context.frame_name, image.size))
        return [cvat_aa.rectangle(0, [0, 0, image.width, image.height])]


def test_a_task_from_share_files_is_annotated_frame_by_frame(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    for i, name in enumerate(["b.png", "a.png", "nested/c.jpg"]):
        path = cvat_server.share_dir / "street" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        PIL.Image.new("RGB", (30 + i, 20), (i * 80, 40, 40)).save(path)
    task = cvat_client.tasks.create_from_data(
        {"name": "street", "labels": [{"name": "car", "type": "rectangle"}]},
        resource_type=ResourceType.SHARE,
        resources=["street/"],
    )
    function = BoxEveryFrame()

    summary = cvat_aa.annotate_task(cvat_client, task.id, function)

    assert function.seen == [
        ("street/a.png", (31, 20)),
        ("street/b.png", (30, 20)),
        ("street/nested/c.jpg", (32, 20)),
    ]
    shapes = sorted(cvat_server.annotations(task.id)["shapes"], key=lambda s: s["frame"])
    assert [(s["frame"], s["points"]) for s in shapes] == [
        (0, [0, 0, 31, 20]),
        (1, [0, 0, 30, 20]),
        (2, [0, 0, 32, 20]),
    ]
    assert summary.frames == 3
