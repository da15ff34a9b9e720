"""Whatever a function returns is uploaded as it was, fitted into its frame, or refused.

Refused means BadFunctionError and nothing uploaded; fitted means clipped to the frame or left
out (see ``cvat_aa.pipeline.frame_bounds``). Never a crash of the driver, never a 400 from the
server.
"""

from __future__ import annotations

import math
from collections import Counter

import PIL.Image
import pytest
from cvat_sdk import models
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cvat_aa
from cvat_aa_testing import TestServer

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

FRAME = 8  # the task's frames are FRAME x FRAME pixels

coordinates = st.one_of(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False),
    st.floats(min_value=-4, max_value=FRAME + 4, allow_nan=False),
    st.integers(min_value=0, max_value=FRAME).map(float),
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
        # Valid masks of a 2x2 box: one empty, one full, one past the frame's edge.
        points = draw(
            st.sampled_from(
                [
                    [4.0, 0.0, 1.0, 1.0, 2.0, 2.0],
                    [0.0, 4.0, 1.0, 1.0, 2.0, 2.0],
                    [0.0, 4.0, 7, 7, 8, 8],
                ]
            )
        )
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


def inside(points) -> bool:
    return all(0 <= p <= FRAME for p in points)


def fits(spec: dict) -> bool:
    """Whether a shape lies in the frame with some area, so that it must be stored as it is."""
    points = spec["points"]
    if spec["type"] == "skeleton":
        return all(inside(e["points"]) for e in spec["elements"])
    if not inside(points):
        return False
    xs, ys = points[0::2], points[1::2]
    if spec["type"] == "rectangle":
        return xs[0] < xs[1] and ys[0] < ys[1]
    if spec["type"] == "ellipse":
        return xs[1] > xs[0] and ys[1] < ys[0]
    if spec["type"] == "polygon":
        pairs = list(zip(xs, ys))
        return (
            sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pairs, pairs[1:] + pairs[:1])) != 0
        )
    if spec["type"] == "polyline":
        return len(set(zip(xs, ys))) > 1
    if spec["type"] == "mask":
        *runs, _, _, x2, y2 = points
        return any(runs[1::2]) and x2 < FRAME and y2 < FRAME
    return True


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(annotations(), min_size=1, max_size=4))
def test_output_is_uploaded_fitted_into_the_frame_or_refused(server, client, specs):
    task = server.create_task(
        "property", images=[PIL.Image.new("RGB", (FRAME, FRAME))], labels=TASK_LABELS
    )
    try:
        cvat_aa.annotate_task(client, task, Generated(specs))
    except cvat_aa.BadFunctionError:
        event("refused")
        assert server.annotations(task)["shapes"] == [] and server.annotations(task)["tags"] == []
        return
    event("uploaded")
    stored = server.annotations(task)
    names = {label["id"]: label["name"] for label in server.labels(task)}
    sent = [
        (SPEC.labels[s["label_id"]].name, s["type"], tuple(s["points"]))
        for s in specs
        if s["kind"] == "shape"
    ]
    got = [(names[s["label_id"]], s["type"], tuple(s["points"])) for s in stored["shapes"]]
    # Shapes in the frame are stored exactly as they were sent.
    for spec, shape in zip(specs, sent):
        if spec["kind"] == "shape" and fits(spec):
            assert shape in got
    # Nothing is stored that was not sent, and what was fitted lies in the frame.
    assert not Counter((n, t) for n, t, _ in got) - Counter((n, t) for n, t, _ in sent)
    for name, shape_type, points in got:
        if shape_type in ("polygon", "polyline", "points"):
            assert inside(points)
        if shape_type == "mask":
            assert points[-2] < FRAME and points[-1] < FRAME
    assert len(stored["tags"]) == sum(s["kind"] == "tag" for s in specs)
    assert all(
        a["source"] == "auto" and a["frame"] == 0 for a in (*stored["shapes"], *stored["tags"])
    )
