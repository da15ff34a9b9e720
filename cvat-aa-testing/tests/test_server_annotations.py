"""Annotations of tasks and jobs, and the checks CVAT makes on them, with the real cvat-sdk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cvat_sdk
import numpy as np
import PIL.Image
import pytest
from cvat_aa_testing import TestServer
from cvat_sdk import models
from cvat_sdk.api_client.exceptions import ApiException
from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction
from cvat_sdk.masks import encode_mask
from server_test_data import LABELS_OF_EVERY_TYPE, api_request, make_images


class Ids:
    """Label and attribute ids of a task with LABELS_OF_EVERY_TYPE."""

    def __init__(self, server: TestServer, task_id: int) -> None:
        self.labels = {label["name"]: label for label in server.labels(task_id)}

    def label(self, name: str) -> int:
        return self.labels[name]["id"]

    def sublabel(self, name: str, sub: str) -> int:
        return next(s["id"] for s in self.labels[name]["sublabels"] if s["name"] == sub)

    def attribute(self, name: str, attribute: str) -> int:
        return next(a["id"] for a in self.labels[name]["attributes"] if a["name"] == attribute)


@pytest.fixture
def task_id(cvat_server: TestServer, tmp_path: Path) -> int:
    return cvat_server.create_task(
        "annotated", images=make_images(tmp_path, 6), labels=LABELS_OF_EVERY_TYPE, segment_size=4
    )


@pytest.fixture
def ids(cvat_server: TestServer, task_id: int) -> Ids:
    return Ids(cvat_server, task_id)


@pytest.fixture
def task(cvat_client: cvat_sdk.Client, task_id: int):
    return cvat_client.tasks.retrieve(task_id)


def rectangle(ids: Ids, frame: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "type": "rectangle",
        "frame": frame,
        "label_id": ids.label("car"),
        "points": [1, 2, 30, 40],
        **fields,
    }


def skeleton(ids: Ids, frame: int = 0, elements: list[str] = ("head", "hand")) -> dict[str, Any]:
    return {
        "type": "skeleton",
        "frame": frame,
        "label_id": ids.label("person"),
        "elements": [
            {
                "type": "points",
                "frame": frame,
                "label_id": ids.sublabel("person", name),
                "points": [5, 6],
            }
            for name in elements
        ],
    }


def patch(task, action: str, data: dict[str, Any]) -> None:
    task.update_annotations(
        models.PatchedLabeledDataRequest(**data), action=AnnotationUpdateAction(action)
    )


def put(task, data: dict[str, Any]) -> None:
    task.set_annotations(models.LabeledDataRequest(**data))


def rejection(call, *args) -> dict[str, Any]:
    with pytest.raises(ApiException) as error:
        call(*args)
    assert error.value.status == 400
    return json.loads(error.value.body)


def test_new_task_has_no_annotations(task) -> None:
    annotations = task.get_annotations()
    assert (annotations.tags, annotations.shapes, annotations.tracks) == ([], [], [])


def test_patch_create_stores_shapes_with_every_field(
    cvat_server: TestServer, task, task_id: int, ids: Ids
) -> None:
    shape = rectangle(
        ids,
        frame=2,
        rotation=45.0,
        occluded=True,
        z_order=3,
        group=1,
        source="auto",
        attributes=[{"spec_id": ids.attribute("car", "color"), "value": "blue"}],
    )
    patch(task, "create", {"shapes": [shape]})
    (stored,) = task.get_annotations().shapes
    assert stored.id > 0
    assert (
        stored.frame,
        stored.rotation,
        stored.occluded,
        stored.z_order,
        stored.group,
        stored.source,
    ) == (2, 45.0, True, 3, 1, "auto")
    assert stored.points == [1.0, 2.0, 30.0, 40.0]
    # The attribute sent, then every other attribute of the label with its default value.
    assert [(a.spec_id, a.value) for a in stored.attributes] == [
        (ids.attribute("car", "color"), "blue")
    ] + [
        (attr["id"], attr["default_value"])
        for attr in ids.labels["car"]["attributes"]
        if attr["name"] != "color"
    ]
    assert cvat_server.annotations(task_id)["shapes"][0]["id"] == stored.id


def test_patch_create_returns_the_assigned_ids(
    cvat_client: cvat_sdk.Client, task_id: int, ids: Ids
) -> None:
    created, _ = cvat_client.api_client.tasks_api.partial_update_annotations(
        "create",
        task_id,
        patched_labeled_data_request=models.PatchedLabeledDataRequest(
            shapes=[rectangle(ids), skeleton(ids)]
        ),
    )
    assert all(shape.id for shape in created.shapes)
    assert all(element.id for element in created.shapes[1].elements)


def test_every_shape_type_is_stored(task, ids: Ids) -> None:
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:20, 5:15] = True
    shapes = [
        {
            "type": "polygon",
            "frame": 0,
            "label_id": ids.label("road"),
            "points": [0, 0, 10, 0, 10, 10],
        },
        {"type": "polyline", "frame": 0, "label_id": ids.label("road"), "points": [0, 0, 10, 10]},
        {"type": "points", "frame": 0, "label_id": ids.label("eye"), "points": [1, 1, 2, 2, 3, 3]},
        {
            "type": "ellipse",
            "frame": 0,
            "label_id": ids.label("anything"),
            "points": [10, 10, 20, 15],
        },
        {
            "type": "cuboid",
            "frame": 0,
            "label_id": ids.label("anything"),
            "points": list(range(16)),
        },
        {"type": "mask", "frame": 0, "label_id": ids.label("sky"), "points": encode_mask(mask)},
        skeleton(ids),
    ]
    patch(task, "create", {"shapes": shapes})
    stored = task.get_annotations().shapes
    assert [s.type.value for s in stored] == [
        "polygon",
        "polyline",
        "points",
        "ellipse",
        "cuboid",
        "mask",
        "skeleton",
    ]
    assert [e.label_id for e in stored[-1].elements] == [
        ids.sublabel("person", "head"),
        ids.sublabel("person", "hand"),
    ]
    assert stored[5].points == [float(p) for p in encode_mask(mask)]


def test_tags_are_stored_with_attributes(task, ids: Ids) -> None:
    patch(task, "create", {"tags": [{"frame": 1, "label_id": ids.label("daytime")}]})
    patch(
        task,
        "create",
        {
            "tags": [
                {
                    "frame": 2,
                    "label_id": ids.label("car"),
                    "attributes": [{"spec_id": ids.attribute("car", "plate"), "value": "AB 123"}],
                }
            ]
        },
    )
    tags = task.get_annotations().tags
    assert [(t.frame, t.label_id) for t in tags] == [
        (1, ids.label("daytime")),
        (2, ids.label("car")),
    ]
    assert tags[1].attributes[0].value == "AB 123"


def test_tracks_are_stored_with_their_shapes(task, ids: Ids) -> None:
    track = {
        "frame": 0,
        "label_id": ids.label("car"),
        "attributes": [{"spec_id": ids.attribute("car", "color"), "value": "red"}],
        "shapes": [
            {
                "type": "rectangle",
                "frame": 0,
                "points": [1, 1, 5, 5],
                "attributes": [{"spec_id": ids.attribute("car", "speed"), "value": "10"}],
            },
            {"type": "rectangle", "frame": 3, "points": [2, 2, 6, 6], "outside": True},
        ],
    }
    put(task, {"tracks": [track]})
    (stored,) = task.get_annotations().tracks
    assert [(s.frame, s.outside) for s in stored.shapes] == [(0, False), (3, True)]
    assert all(s.id for s in stored.shapes)


def test_skeleton_tracks_carry_element_tracks(task, ids: Ids) -> None:
    def element(name: str) -> dict[str, Any]:
        # Outside from frame 1 on, so that the track stays in the first job.
        return {
            "frame": 0,
            "label_id": ids.sublabel("person", name),
            "shapes": [
                {"type": "points", "frame": 0, "points": [1, 2]},
                {"type": "points", "frame": 1, "points": [1, 2], "outside": True},
            ],
        }

    put(
        task,
        {
            "tracks": [
                {
                    "frame": 0,
                    "label_id": ids.label("person"),
                    "shapes": [{"type": "skeleton", "frame": 0, "points": []}],
                    "elements": [element("head"), element("hand")],
                }
            ]
        },
    )
    (stored,) = task.get_annotations().tracks
    assert [e.label_id for e in stored.elements] == [
        ids.sublabel("person", "head"),
        ids.sublabel("person", "hand"),
    ]


def test_put_replaces_all_annotations(task, ids: Ids) -> None:
    patch(task, "create", {"shapes": [rectangle(ids, frame=0), rectangle(ids, frame=1)]})
    put(task, {"tags": [{"frame": 0, "label_id": ids.label("daytime")}]})
    annotations = task.get_annotations()
    assert (len(annotations.tags), len(annotations.shapes)) == (1, 0)


def test_patch_update_changes_a_shape_and_keeps_its_id(task, ids: Ids) -> None:
    patch(task, "create", {"shapes": [rectangle(ids)]})
    (shape,) = task.get_annotations().shapes
    patch(
        task,
        "update",
        {"shapes": [{**rectangle(ids, frame=3, points=[5, 5, 9, 9]), "id": shape.id}]},
    )
    (updated,) = task.get_annotations().shapes
    assert (updated.id, updated.frame, updated.points) == (shape.id, 3, [5.0, 5.0, 9.0, 9.0])


def test_patch_update_cannot_move_a_shape_into_another_job(
    cvat_server: TestServer, task, task_id: int, ids: Ids
) -> None:
    # A shape belongs to its job: the update reaches only the job of the frame sent, where
    # the id is taken (real CVAT answers 400 with PostgreSQL's duplicate key error).
    patch(task, "create", {"shapes": [rectangle(ids)]})
    (shape,) = task.get_annotations().shapes
    status, _ = api_request(
        cvat_server,
        "PATCH",
        f"/api/tasks/{task_id}/annotations/?action=update",
        {"shapes": [{**rectangle(ids, frame=4), "id": shape.id}]},
    )
    assert status == 400
    assert [(s.id, s.frame) for s in task.get_annotations().shapes] == [(shape.id, 0)]


def test_patch_delete_removes_the_given_objects(task, ids: Ids) -> None:
    patch(
        task,
        "create",
        {
            "shapes": [rectangle(ids, frame=0), rectangle(ids, frame=1)],
            "tags": [{"frame": 0, "label_id": ids.label("daytime")}],
        },
    )
    first = task.get_annotations().shapes[0]
    task.remove_annotations(ids=[first.id])
    assert [s.frame for s in task.get_annotations().shapes] == [1]


def test_delete_removes_all_annotations(task, ids: Ids) -> None:
    patch(
        task,
        "create",
        {"shapes": [rectangle(ids)], "tags": [{"frame": 0, "label_id": ids.label("daytime")}]},
    )
    task.remove_annotations()
    annotations = task.get_annotations()
    assert (annotations.tags, annotations.shapes) == ([], [])


@pytest.mark.parametrize(
    ("bad_shape", "field"),
    [
        ({"label_id": 99999}, "label_id"),
        ({"frame": 6}, "frame"),
        ({"points": [1, 2, 3]}, "points"),
        ({"type": "polygon", "points": [1, 2, 3, 4]}, "points"),
        ({"type": "polyline", "points": [1, 2, 3, 4, 5]}, "points"),
        ({"type": "mask", "points": [3, 4, 0, 0, 2, 2]}, "points"),
        ({"type": "skeleton"}, "type"),
        ({"attributes": [{"spec_id": 99999, "value": "x"}]}, "spec_id"),
    ],
    ids=[
        "unknown-label",
        "frame-out-of-range",
        "rectangle-3-coords",
        "polygon-2-points",
        "odd-polyline",
        "mask-rle-mismatch",
        "skeleton-of-rectangle-label",
        "unknown-attribute",
    ],
)
def test_invalid_shape_is_rejected_with_a_400_and_nothing_is_stored(
    task, ids: Ids, bad_shape: dict[str, Any], field: str
) -> None:
    good = rectangle(ids)
    body = rejection(patch, task, "create", {"shapes": [good, {**rectangle(ids), **bad_shape}]})
    assert list(body) == [field]
    assert all(
        isinstance(message, str) and message.startswith("shapes[1]") for message in body[field]
    )
    assert task.get_annotations().shapes == []


@pytest.mark.parametrize(
    ("elements", "why"),
    [
        (["head"], "lacks elements"),
        (["head", "hand", "hand"], "more than once"),
    ],
)
def test_skeleton_elements_must_match_the_sublabels(
    task, ids: Ids, elements: list[str], why: str
) -> None:
    body = rejection(patch, task, "create", {"shapes": [skeleton(ids, elements=elements)]})
    assert why in " ".join(body["elements"])
    assert task.get_annotations().shapes == []


def test_skeleton_element_of_another_label_is_rejected(task, ids: Ids) -> None:
    shape = skeleton(ids)
    shape["elements"][1]["label_id"] = ids.label("eye")
    body = rejection(patch, task, "create", {"shapes": [shape]})
    assert "is not a sublabel" in body["elements"][0]


def test_skeleton_element_must_be_one_point(task, ids: Ids) -> None:
    shape = skeleton(ids)
    shape["elements"][0]["points"] = [1, 2, 3, 4]
    body = rejection(patch, task, "create", {"shapes": [shape]})
    assert "2 coordinates" in body["points"][0]


def test_rejected_put_keeps_the_old_annotations(task, ids: Ids) -> None:
    patch(task, "create", {"shapes": [rectangle(ids)]})
    rejection(put, task, {"shapes": [rectangle(ids, label_id=424242)]})
    assert len(task.get_annotations().shapes) == 1


def test_track_attributes_must_be_immutable_and_shape_attributes_mutable(task, ids: Ids) -> None:
    track = {
        "frame": 0,
        "label_id": ids.label("car"),
        "attributes": [{"spec_id": ids.attribute("car", "speed"), "value": "1"}],
        "shapes": [
            {
                "type": "rectangle",
                "frame": 0,
                "points": [1, 1, 5, 5],
                "attributes": [{"spec_id": ids.attribute("car", "color"), "value": "red"}],
            }
        ],
    }
    body = rejection(put, task, {"tracks": [track]})
    assert len(body["spec_id"]) == 2


def test_malformed_body_is_rejected_with_field_errors(
    cvat_server: TestServer, task_id: int
) -> None:
    status, body = api_request(
        cvat_server,
        "PATCH",
        f"/api/tasks/{task_id}/annotations/?action=create",
        {"shapes": [{"type": "rectangle", "frame": "zero", "label_id": 1, "points": ["a"]}]},
    )
    assert status == 400
    assert set(body) == {"frame", "points"}


def test_unknown_patch_action_is_rejected(cvat_server: TestServer, task_id: int) -> None:
    status, body = api_request(
        cvat_server, "PATCH", f"/api/tasks/{task_id}/annotations/?action=merge", {}
    )
    assert (status, list(body)) == (400, ["action"])


def jobs_in_frame_order(task) -> list:
    """The task's jobs, first frames first (CVAT lists them newest first)."""
    return sorted(task.get_jobs(), key=lambda job: job.start_frame)


def test_jobs_follow_the_segment_size(cvat_server: TestServer, task, task_id: int) -> None:
    jobs = jobs_in_frame_order(task)
    assert [(job.start_frame, job.stop_frame) for job in jobs] == [(0, 3), (4, 5)]
    assert [job["id"] for job in cvat_server.jobs(task_id)] == [job.id for job in jobs]


def test_jobs_retrieve_returns_the_job(cvat_client: cvat_sdk.Client, task) -> None:
    job_id = jobs_in_frame_order(task)[1].id
    job = cvat_client.jobs.retrieve(job_id)
    assert (job.id, job.task_id, job.frame_count) == (job_id, task.id, 2)
    assert len(job.get_meta().frames) == 2
    assert PIL.Image.open(job.get_frame(5, quality="original")).size == (69, 48)


def test_job_annotations_are_those_in_its_frames(
    cvat_client: cvat_sdk.Client, task, ids: Ids
) -> None:
    patch(task, "create", {"shapes": [rectangle(ids, frame=1), rectangle(ids, frame=5)]})
    second_job = cvat_client.jobs.retrieve(jobs_in_frame_order(task)[1].id)
    assert [s.frame for s in second_job.get_annotations().shapes] == [5]


def test_job_annotations_can_be_changed(cvat_client: cvat_sdk.Client, task, ids: Ids) -> None:
    patch(task, "create", {"shapes": [rectangle(ids, frame=1)]})
    job = cvat_client.jobs.retrieve(jobs_in_frame_order(task)[1].id)
    job.update_annotations(
        models.PatchedLabeledDataRequest(shapes=[rectangle(ids, frame=4)]),
        action=AnnotationUpdateAction.CREATE,
    )
    job.set_annotations(models.LabeledDataRequest(shapes=[rectangle(ids, frame=5)]))
    assert [s.frame for s in task.get_annotations().shapes] == [1, 5]
    job.remove_annotations()
    assert [s.frame for s in task.get_annotations().shapes] == [1]


def test_job_rejects_frames_outside_its_range(cvat_client: cvat_sdk.Client, task, ids: Ids) -> None:
    job = cvat_client.jobs.retrieve(jobs_in_frame_order(task)[1].id)
    body = rejection(
        job.set_annotations, models.LabeledDataRequest(shapes=[rectangle(ids, frame=1)])
    )
    assert "outside the job" in body["frame"][0]


def test_annotation_change_bumps_task_and_job_dates(
    cvat_client: cvat_sdk.Client, task, ids: Ids
) -> None:
    before = cvat_client.tasks.retrieve(task.id).updated_date
    job_before = cvat_client.jobs.retrieve(jobs_in_frame_order(task)[0].id).updated_date
    patch(task, "create", {"shapes": [rectangle(ids, frame=1)]})
    assert cvat_client.tasks.retrieve(task.id).updated_date > before
    assert cvat_client.jobs.retrieve(jobs_in_frame_order(task)[0].id).updated_date > job_before
