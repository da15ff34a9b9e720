"""Annotations live in jobs, and come back with every attribute, as on real CVAT 2.73.

Each expectation here is what a real CVAT 2.73.0 answered to the same requests (see
docs/testing.md, "Differences from real CVAT"): a track sent to a task is cut at job
boundaries into one track per job, objects in the overlap of two jobs are stored in both and
merged when the task is read, and reading fills in the attributes an annotation lacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cvat_aa_testing import TestServer
from server_test_data import api_request, make_images

LABELS = [
    {
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {
                "name": "speed",
                "mutable": True,
                "input_type": "number",
                "default_value": "5",
                "values": ["0", "100", "1"],
            },
            {
                "name": "color",
                "mutable": False,
                "input_type": "select",
                "default_value": "red",
                "values": ["red", "blue"],
            },
            {
                "name": "parked",
                "mutable": True,
                "input_type": "checkbox",
                "default_value": "false",
                "values": ["false"],
            },
        ],
    },
    {
        "name": "daytime",
        "type": "tag",
        "attributes": [
            {
                "name": "sun",
                "mutable": False,
                "input_type": "radio",
                "default_value": "yes",
                "values": ["yes", "no"],
            }
        ],
    },
    {"name": "pt", "type": "points"},
    {
        "name": "person",
        "type": "skeleton",
        "sublabels": [
            {
                "name": "head",
                "type": "points",
                "attributes": [
                    {
                        "name": "vis",
                        "mutable": True,
                        "input_type": "text",
                        "default_value": "v",
                        "values": ["v"],
                    }
                ],
            },
            {"name": "hand", "type": "points"},
        ],
        "svg": '<line x1="1" y1="1" x2="2" y2="2" data-node-from="1" data-node-to="2"></line>',
    },
]


class Task:
    """A task of these labels, its jobs (in frame order) and raw requests to it."""

    def __init__(self, server: TestServer, tmp_path: Path, frames: int, **layout: int) -> None:
        self.server = server
        self.id = server.create_task(
            "tracks", images=make_images(tmp_path, frames), labels=LABELS, **layout
        )
        self.jobs = [job["id"] for job in server.jobs(self.id)]
        self.ids: dict[str, int] = {}
        self.specs: dict[str, int] = {}
        for label in server.labels(self.id):
            for item in [label, *label["sublabels"]]:
                self.ids[item["name"]] = item["id"]
                self.specs.update({attr["name"]: attr["id"] for attr in item["attributes"]})

    def request(self, method: str, path: str, body: Any = None) -> Any:
        status, reply = api_request(self.server, method, path, body)
        assert status in (200, 204), reply
        return reply

    def send(self, method: str, body: dict[str, Any], *, job: int | None = None) -> Any:
        """PUT, or PATCH with an action ("create"...), to the task or to its job ``job``."""
        where = f"/api/jobs/{self.jobs[job]}" if job is not None else f"/api/tasks/{self.id}"
        query = "" if method == "PUT" else f"?action={method}"
        return self.request(
            "PUT" if method == "PUT" else "PATCH", f"{where}/annotations/{query}", body
        )

    def get(self, job: int | None = None) -> dict[str, Any]:
        where = f"/api/jobs/{self.jobs[job]}" if job is not None else f"/api/tasks/{self.id}"
        return self.request("GET", f"{where}/annotations/")

    def attrs(self, attributes: list[dict[str, Any]]) -> list[tuple[str, str]]:
        names = {spec_id: name for name, spec_id in self.specs.items()}
        return [(names[attr["spec_id"]], attr["value"]) for attr in attributes]


def rect(frame: int, x: float, **fields: Any) -> dict[str, Any]:
    return {"type": "rectangle", "frame": frame, "points": [x, 1.0, x + 10, 11.0], **fields}


def keyframes(track: dict[str, Any]) -> list[tuple[int, float, bool]]:
    """(frame, left edge, outside) of each shape of a track."""
    return [(shape["frame"], shape["points"][0], shape["outside"]) for shape in track["shapes"]]


# default attribute values


def test_reading_fills_in_every_attribute_of_the_label(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    task = Task(cvat_server, tmp_path, 4)
    ids = task.ids
    task.send(
        "PUT",
        {
            "tags": [{"frame": 0, "label_id": ids["daytime"]}],
            "shapes": [
                rect(
                    0,
                    1,
                    label_id=ids["car"],
                    attributes=[{"spec_id": task.specs["speed"], "value": "7"}],
                ),
                {
                    "type": "skeleton",
                    "frame": 1,
                    "label_id": ids["person"],
                    "points": [],
                    "elements": [
                        {"type": "points", "frame": 1, "label_id": ids[name], "points": [1, 1]}
                        for name in ("head", "hand")
                    ],
                },
            ],
        },
    )
    for read in (task.get(), task.get(job=0)):
        (tag,) = read["tags"]
        rectangle, skeleton = read["shapes"]
        assert task.attrs(tag["attributes"]) == [("sun", "yes")]
        # The attributes sent first, then the label's others in their order.
        assert task.attrs(rectangle["attributes"]) == [
            ("speed", "7"),
            ("color", "red"),
            ("parked", "false"),
        ]
        assert [task.attrs(element["attributes"]) for element in skeleton["elements"]] == [
            [("vis", "v")],
            [],
        ]


def test_tracks_get_immutable_defaults_and_shapes_the_values_before_them(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    task = Task(cvat_server, tmp_path, 4)
    ids = task.ids
    track = {
        "frame": 0,
        "label_id": ids["car"],
        "shapes": [
            rect(0, 1, attributes=[{"spec_id": task.specs["parked"], "value": "true"}]),
            rect(2, 5, attributes=[{"spec_id": task.specs["speed"], "value": "9"}]),
            rect(3, 6),
        ],
    }
    reply = task.send("PUT", {"tracks": [track]})
    # The answer to a change has the attributes sent, no more.
    assert [task.attrs(shape["attributes"]) for shape in reply["tracks"][0]["shapes"]] == [
        [("parked", "true")],
        [("speed", "9")],
        [],
    ]
    (stored,) = task.get()["tracks"]
    assert task.attrs(stored["attributes"]) == [("color", "red")]
    # The first shape gets the mutable defaults, each later one the values of the one before.
    assert [task.attrs(shape["attributes"]) for shape in stored["shapes"]] == [
        [("parked", "true"), ("speed", "5")],
        [("speed", "9"), ("parked", "true")],
        [("speed", "9"), ("parked", "true")],
    ]


# tracks across jobs


def test_a_track_across_two_jobs_becomes_one_track_in_each(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    task = Task(cvat_server, tmp_path, 8, segment_size=4)
    track = {"frame": 2, "label_id": task.ids["car"], "shapes": [rect(2, 0), rect(6, 40)]}
    reply = task.send("PUT", {"tracks": [track]})
    first, second = task.get()["tracks"]
    # Cut at the boundary with interpolated shapes; the first part ends outside on the
    # second job's first frame (added when the jobs' annotations are merged).
    assert keyframes(first) == [(2, 0, False), (3, 10, False), (4, 10, True)]
    assert (second["frame"], keyframes(second)) == (4, [(4, 20, False), (6, 40, False)])
    assert [t["id"] for t in reply["tracks"]] == [first["id"], second["id"]]
    assert keyframes(task.get(job=0)["tracks"][0]) == [(2, 0, False), (3, 10, False)]
    assert task.get(job=1)["tracks"] == [second]


def test_a_job_s_part_of_a_track_is_changed_through_that_job_alone(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    task = Task(cvat_server, tmp_path, 8, segment_size=4)
    track = {"frame": 2, "label_id": task.ids["car"], "shapes": [rect(2, 0), rect(6, 40)]}
    task.send("PUT", {"tracks": [track]})
    first, second = task.get()["tracks"]

    # The second job's id means nothing to the first job...
    task.send("delete", {"tracks": [second]}, job=0)
    assert len(task.get()["tracks"]) == 2
    # ...and clearing the second job leaves the first job's part.
    task.send("PUT", {}, job=1)
    assert [t["id"] for t in task.get()["tracks"]] == [first["id"]]
    assert task.get(job=1)["tracks"] == []


def test_deleting_through_the_task_reaches_the_job_of_the_frames_sent(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    task = Task(cvat_server, tmp_path, 8, segment_size=4)
    track = {"frame": 2, "label_id": task.ids["car"], "shapes": [rect(2, 0), rect(6, 40)]}
    task.send("PUT", {"tracks": [track]})
    first, second = task.get()["tracks"]
    task.send("delete", {"tracks": [second]})
    assert [t["id"] for t in task.get()["tracks"]] == [first["id"]]


def test_a_single_keyframe_track_goes_on_into_every_later_job(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    task = Task(cvat_server, tmp_path, 8, segment_size=4)
    task.send(
        "PUT", {"tracks": [{"frame": 0, "label_id": task.ids["car"], "shapes": [rect(0, 1)]}]}
    )
    assert [keyframes(t) for t in task.get()["tracks"]] == [
        [(0, 1, False), (4, 1, True)],
        [(4, 1, False)],
    ]


def test_moving_a_shape_into_another_job_by_update_is_refused(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    task = Task(cvat_server, tmp_path, 8, segment_size=4)
    (shape,) = task.send("create", {"shapes": [rect(0, 1, label_id=task.ids["car"])]})["shapes"]
    status, _ = api_request(
        cvat_server,
        "PATCH",
        f"/api/tasks/{task.id}/annotations/?action=update",
        {"shapes": [rect(4, 1, label_id=task.ids["car"], id=shape["id"])]},
    )
    assert status == 400
    assert [(s["id"], s["frame"]) for s in task.get()["shapes"]] == [(shape["id"], 0)]


# overlapping jobs


@pytest.fixture
def overlapping(cvat_server: TestServer, tmp_path: Path) -> Task:
    """12 frames in jobs 0-4, 3-7, 6-10 and 9-11."""
    task = Task(cvat_server, tmp_path, 12, segment_size=5, overlap=2)
    assert [(j["start_frame"], j["stop_frame"]) for j in cvat_server.jobs(task.id)] == [
        (0, 4),
        (3, 7),
        (6, 10),
        (9, 11),
    ]
    return task


def test_objects_in_an_overlap_are_stored_in_both_jobs(overlapping: Task) -> None:
    ids = overlapping.ids
    overlapping.send(
        "PUT",
        {
            "tags": [{"frame": 4, "label_id": ids["daytime"]}],
            "shapes": [
                rect(4, 0, label_id=ids["car"]),
                {"type": "points", "frame": 4, "label_id": ids["pt"], "points": [1, 2]},
            ],
        },
    )
    for job in (0, 1):
        annotations = overlapping.get(job=job)
        assert (len(annotations["tags"]), len(annotations["shapes"])) == (1, 2)
    task = overlapping.get()
    # Merged: tags by label, rectangles by IoU; points never match, so they show twice.
    assert len(task["tags"]) == 1
    assert sorted(shape["type"] for shape in task["shapes"]) == ["points", "points", "rectangle"]


def test_a_track_over_overlapping_jobs_is_one_track_of_the_task(overlapping: Task) -> None:
    track = {"frame": 1, "label_id": overlapping.ids["car"], "shapes": [rect(1, 0), rect(9, 80)]}
    overlapping.send("PUT", {"tracks": [track]})
    (merged,) = overlapping.get()["tracks"]
    assert [frame for frame, _, _ in keyframes(merged)] == [1, 3, 4, 6, 7, 9]
    assert [keyframes(overlapping.get(job=job)["tracks"][0]) for job in range(4)] == [
        [(1, 0, False), (4, 30, False)],
        [(3, 20, False), (7, 60, False)],
        [(6, 50, False), (9, 80, False)],
        [(9, 80, False)],
    ]


def test_the_reply_names_one_copy_of_an_object_in_an_overlap_and_deleting_it_keeps_the_other(
    overlapping: Task,
) -> None:
    # What cvat-aa's uploader meets on such a task (CVAT 2.73 answered the same): the task's
    # reply and reads show one of the two stored copies, and a delete through the task
    # removes that one only, after which the other shows.
    reply = overlapping.send("create", {"shapes": [rect(3, 0, label_id=overlapping.ids["car"])]})
    (shown,) = reply["shapes"]
    copies = [overlapping.get(job=job)["shapes"] for job in (0, 1)]
    assert [len(c) for c in copies] == [1, 1]
    assert shown["id"] == copies[0][0]["id"] != copies[1][0]["id"]

    overlapping.send("delete", {"shapes": [shown]})

    assert overlapping.get(job=0)["shapes"] == []
    assert [s["id"] for s in overlapping.get(job=1)["shapes"]] == [copies[1][0]["id"]]
    assert [s["id"] for s in overlapping.get()["shapes"]] == [copies[1][0]["id"]]


def test_a_track_sent_to_a_job_before_its_first_shape_gets_an_outside_shape_there(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    task = Task(cvat_server, tmp_path, 8, segment_size=4)
    track = {
        "frame": 0,
        "label_id": task.ids["car"],
        "shapes": [rect(2, 1), rect(3, 5, outside=True)],
    }
    reply = task.send("PUT", {"tracks": [track]}, job=0)
    assert keyframes(reply["tracks"][0]) == [(2, 1, False), (3, 5, True), (0, 1, True)]
    (stored,) = task.get(job=0)["tracks"]
    assert (stored["frame"], keyframes(stored)) == (0, [(0, 1, True), (2, 1, False), (3, 5, True)])
