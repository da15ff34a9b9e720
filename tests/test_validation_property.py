"""Whatever a function returns is either uploaded exactly or refused with BadFunctionError.

Never a crash of the driver, never a 400 from the server.
"""

from __future__ import annotations

import math

import PIL.Image
import pytest
from cvat_sdk import models
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cvat_aa
from cvat_aa.testing import TestServer

TASK_LABELS = [
    {"name": "car", "type": "rectangle"},
    {"name": "road", "type": "polygon"},
    {"name": "thing"},
    {"name": "scene", "type": "tag"},
    {
        "name": "person",
        "type": "skeleton",
        "sublabels": [{"name": "a", "type": "points"}, {"name": "b", "type": "points"}],
    },
    {"name": "sky", "type": "mask"},
]
SPEC = cvat_aa.DetectionFunctionSpec(
    labels=[
        cvat_aa.label_spec("car", 0, type="rectangle"),
        cvat_aa.label_spec("road", 1, type="polygon"),
        cvat_aa.label_spec("thing", 2),
        cvat_aa.label_spec("scene", 3, type="tag"),
        cvat_aa.skeleton_label_spec(
            "person", 4, [cvat_aa.keypoint_spec("a", 0), cvat_aa.keypoint_spec("b", 1)]
        ),
        cvat_aa.label_spec("sky", 5, type="mask"),
    ]
)
SHAPE_TYPES = [
    "rectangle",
    "polygon",
    "polyline",
    "points",
    "ellipse",
    "cuboid",
    "mask",
    "skeleton",
]

coordinates = st.one_of(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=50).map(float),
)
broken_coordinate = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def annotations(draw):
    """A spec for one annotation: mostly plausible, sometimes broken in one way or another."""
    if draw(st.integers(0, 9)) == 0:
        return {
            "kind": "tag",
            "label_id": draw(st.sampled_from([3, 3, 3, 0, 9])),
            "frame": draw(st.sampled_from([0, 0, 0, 1])),
        }
    shape_type = draw(st.sampled_from(SHAPE_TYPES))
    size = {
        "rectangle": 4,
        "ellipse": 4,
        "cuboid": 16,
        "polygon": 6,
        "polyline": 4,
        "points": 2,
        "mask": 9,
        "skeleton": 0,
    }[shape_type]
    if draw(st.integers(0, 3)) == 0:
        size = draw(st.integers(0, 12))
    if shape_type == "mask" and draw(st.booleans()):
        points = [4.0, 0.0, 1.0, 1.0, 2.0, 2.0]  # 4 pixels in a 2x2 box: a valid mask
    else:
        points = draw(st.lists(coordinates, min_size=size, max_size=size))
        if points and draw(st.integers(0, 7)) == 0:
            points[draw(st.integers(0, len(points) - 1))] = draw(broken_coordinate)
    elements = None
    if shape_type == "skeleton" or draw(st.integers(0, 19)) == 0:
        sublabels = draw(
            st.one_of(st.permutations([0, 1]), st.lists(st.sampled_from([0, 1, 7]), max_size=3))
        )
        elements = [
            {
                "label_id": sl,
                "points": draw(st.lists(coordinates, min_size=2, max_size=2)),
                "occluded": draw(st.booleans()),
            }
            for sl in sublabels
        ]
    return {
        "kind": "shape",
        "type": shape_type,
        "label_id": draw(
            st.sampled_from(
                [
                    *[{"rectangle": 0, "polygon": 1, "mask": 5, "skeleton": 4}.get(shape_type, 2)]
                    * 6,
                    0,
                    1,
                    2,
                    4,
                    5,
                    42,
                ]
            )
        ),
        "frame": draw(st.sampled_from([0] * 9 + [2])),
        "points": points,
        "rotation": draw(st.one_of(st.none(), st.none(), st.floats(min_value=-10, max_value=400))),
        "score": draw(
            st.one_of(st.none(), st.floats(0, 1), st.floats(min_value=-0.5, max_value=1.5))
        ),
        "occluded": draw(st.booleans()),
        "elements": elements,
    }


def build(spec: dict):
    """The cvat-sdk model a function would build (inside detect, so model errors count)."""
    if spec["kind"] == "tag":
        return models.LabeledImageRequest(label_id=spec["label_id"], frame=spec["frame"])
    extra = {}
    if spec["rotation"] is not None:
        extra["rotation"] = spec["rotation"]
    if spec["score"] is not None:
        extra["score"] = spec["score"]
    if spec["elements"] is not None:
        extra["elements"] = [
            models.SubLabeledShapeRequest(
                type="points",
                frame=0,
                label_id=e["label_id"],
                points=e["points"],
                occluded=e["occluded"],
            )
            for e in spec["elements"]
        ]
    return models.LabeledShapeRequest(
        type=spec["type"],
        label_id=spec["label_id"],
        frame=spec["frame"],
        points=spec["points"],
        occluded=spec["occluded"],
        **extra,
    )


class Generated:
    spec = SPEC

    def __init__(self, specs):
        self.specs = specs

    def detect(self, context, image):
        return [build(s) for s in self.specs]


@pytest.fixture(scope="module")
def server():
    with TestServer() as server:
        yield server


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    with server.make_client(cache_dir=tmp_path_factory.mktemp("cache")) as client:
        yield client


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(annotations(), min_size=1, max_size=4))
def test_output_is_uploaded_exactly_or_refused(server, client, specs):
    task = server.create_task("property", images=[PIL.Image.new("RGB", (8, 8))], labels=TASK_LABELS)
    try:
        cvat_aa.annotate_task(client, task, Generated(specs))
    except cvat_aa.BadFunctionError:
        event("refused")
        assert server.annotations(task)["shapes"] == [] and server.annotations(task)["tags"] == []
        return
    event("uploaded")
    stored = server.annotations(task)
    names = {label["id"]: label["name"] for label in server.labels(task)}
    sent_shapes = sorted(
        (SPEC.labels[s["label_id"]].name, s["type"], tuple(s["points"]))
        for s in specs
        if s["kind"] == "shape"
    )
    got_shapes = sorted(
        (names[s["label_id"]], s["type"], tuple(s["points"])) for s in stored["shapes"]
    )
    assert got_shapes == sent_shapes
    assert len(stored["tags"]) == sum(s["kind"] == "tag" for s in specs)
    assert all(
        a["source"] == "auto" and a["frame"] == 0 for a in (*stored["shapes"], *stored["tags"])
    )
