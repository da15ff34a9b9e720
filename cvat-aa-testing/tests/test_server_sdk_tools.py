"""cvat_sdk.datasets.TaskDataset and cvat_sdk.auto_annotation.annotate_task, unchanged."""

from __future__ import annotations

from pathlib import Path

import cvat_sdk
import cvat_sdk.auto_annotation as cvataa
import numpy as np
import PIL.Image
from cvat_aa_testing import TestServer
from cvat_sdk import models
from cvat_sdk.datasets import TaskDataset
from cvat_sdk.masks import encode_mask
from server_test_data import LABELS_OF_EVERY_TYPE, make_images


class FrameSizeFunction:
    """Outlines every image, marks its centre with a skeleton and tags it."""

    spec = cvataa.DetectionFunctionSpec(
        labels=[
            cvataa.label_spec(
                "car",
                0,
                type="rectangle",
                attributes=[cvataa.select_attribute_spec("color", 0, ["red", "blue"])],
            ),
            cvataa.skeleton_label_spec(
                "person", 1, [cvataa.keypoint_spec("head", 0), cvataa.keypoint_spec("hand", 1)]
            ),
            cvataa.label_spec("daytime", 2, type="tag"),
            cvataa.label_spec("sky", 3, type="mask"),
        ]
    )

    def detect(self, context, image: PIL.Image.Image) -> list:
        w, h = image.size
        top_half = np.zeros((h, w), dtype=bool)
        top_half[: h // 2] = True
        return [
            cvataa.rectangle(
                0, [0, 0, w, h], attributes=[models.AttributeValRequest(spec_id=0, value="blue")]
            ),
            cvataa.skeleton(1, [cvataa.keypoint(0, [w / 2, h / 2]), cvataa.keypoint(1, [1, 1])]),
            cvataa.tag(2),
            cvataa.mask(3, encode_mask(top_half)),
        ]


def test_task_dataset_gives_images_with_their_annotations(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    task_id = cvat_server.create_task(
        "t", images=make_images(tmp_path, 3), labels=LABELS_OF_EVERY_TYPE
    )
    car = cvat_server.label_id(task_id, "car")
    cvat_server.set_annotations(
        task_id,
        {
            "shapes": [{"type": "rectangle", "frame": 1, "label_id": car, "points": [1, 2, 3, 4]}],
            "tags": [{"frame": 2, "label_id": cvat_server.label_id(task_id, "daytime")}],
        },
    )
    dataset = TaskDataset(cvat_client, task_id)
    assert [len(s.annotations.shapes) for s in dataset.samples] == [0, 1, 0]
    assert [len(s.annotations.tags) for s in dataset.samples] == [0, 0, 1]
    assert dataset.samples[1].annotations.shapes[0].points == [1.0, 2.0, 3.0, 4.0]
    assert {label.name for label in dataset.labels} == {
        label["name"] for label in LABELS_OF_EVERY_TYPE
    }


def test_task_dataset_refreshes_its_cache_after_a_change(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    task_id = cvat_server.create_task(
        "t", images=make_images(tmp_path, 2), labels=[{"name": "cat"}]
    )
    assert TaskDataset(cvat_client, task_id).samples[0].annotations.tags == []
    cvat_server.set_annotations(
        task_id, {"tags": [{"frame": 0, "label_id": cvat_server.label_id(task_id, "cat")}]}
    )
    assert len(TaskDataset(cvat_client, task_id).samples[0].annotations.tags) == 1


def test_annotate_task_creates_the_functions_annotations(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    task_id = cvat_server.create_task(
        "t", images=make_images(tmp_path, 3), labels=LABELS_OF_EVERY_TYPE, chunk_size=2
    )
    cvataa.annotate_task(cvat_client, task_id, FrameSizeFunction())
    annotations = cvat_client.tasks.retrieve(task_id).get_annotations()
    rectangles = [s for s in annotations.shapes if s.type.value == "rectangle"]
    assert [(s.frame, s.points) for s in rectangles] == [
        (i, [0.0, 0.0, 64.0 + i, 48.0]) for i in range(3)
    ]
    assert all(s.source == "auto" and s.attributes[0].value == "blue" for s in rectangles)
    skeletons = [s for s in annotations.shapes if s.type.value == "skeleton"]
    assert [len(s.elements) for s in skeletons] == [2, 2, 2]
    assert [t.frame for t in annotations.tags] == [0, 1, 2]
    assert len([s for s in annotations.shapes if s.type.value == "mask"]) == 3
    assert cvat_server.request_log.entries(method="PATCH")[0].query == "action=create"


def test_annotate_task_with_clear_existing_replaces_annotations(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    task_id = cvat_server.create_task(
        "t", images=make_images(tmp_path, 2), labels=LABELS_OF_EVERY_TYPE
    )
    cvat_server.set_annotations(
        task_id, {"tags": [{"frame": 0, "label_id": cvat_server.label_id(task_id, "anything")}]}
    )
    cvataa.annotate_task(cvat_client, task_id, FrameSizeFunction(), clear_existing=True)
    annotations = cvat_server.annotations(task_id)
    assert {t["label_id"] for t in annotations["tags"]} == {
        cvat_server.label_id(task_id, "daytime")
    }
    assert cvat_server.request_log.entries(method="PUT", path="/annotations/$")


def test_annotate_task_skips_deleted_frames(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    task_id = cvat_server.create_task(
        "t", images=make_images(tmp_path, 3), labels=LABELS_OF_EVERY_TYPE, deleted_frames=[1]
    )
    cvataa.annotate_task(cvat_client, task_id, FrameSizeFunction())
    assert sorted(t["frame"] for t in cvat_server.annotations(task_id)["tags"]) == [0, 2]


def test_annotate_task_on_the_demo_task(cvat_client: cvat_sdk.Client, cvat_demo_task: int) -> None:
    class FaceInTheMiddle:
        spec = cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec("face", 0, type="rectangle")])

        def detect(self, context, image: PIL.Image.Image) -> list:
            w, h = image.size
            return [cvataa.rectangle(0, [w / 4, h / 4, 3 * w / 4, 3 * h / 4])]

    cvataa.annotate_task(
        cvat_client, cvat_demo_task, FaceInTheMiddle(), allow_unmatched_labels=True
    )
    task = cvat_client.tasks.retrieve(cvat_demo_task)
    assert len(task.get_annotations().shapes) == task.size


def test_client_models_round_trip_through_put(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    task_id = cvat_server.create_task(
        "t", images=make_images(tmp_path, 2), labels=LABELS_OF_EVERY_TYPE
    )
    cvataa.annotate_task(cvat_client, task_id, FrameSizeFunction())
    task = cvat_client.tasks.retrieve(task_id)
    before = task.get_annotations()
    task.set_annotations(
        models.LabeledDataRequest(
            shapes=[s.to_dict() for s in before.shapes], tags=[t.to_dict() for t in before.tags]
        )
    )
    after = task.get_annotations()
    assert [s.to_dict() for s in after.shapes] == [s.to_dict() for s in before.shapes]
