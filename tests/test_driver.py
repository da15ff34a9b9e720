"""The driver against the test server: cvat-sdk's semantics, and what we add to them."""

from __future__ import annotations

import cvat_sdk.auto_annotation as sdk_aa
import PIL.Image
import PIL.ImageStat
import pytest
from cvat_sdk import models
from cvat_sdk.core.progress import NullProgressReporter

import cvat_aa
from cvat_aa import plugins
from cvat_aa_testing import TestServer

LABELS = [
    {"name": "car", "type": "rectangle"},
    {"name": "thing"},
    {"name": "scene", "type": "tag"},
    {
        "name": "person",
        "type": "skeleton",
        "sublabels": [{"name": "head", "type": "points"}, {"name": "foot", "type": "points"}],
    },
    {
        "name": "truck",
        "type": "rectangle",
        "attributes": [
            {"name": "colour", "input_type": "select", "mutable": False, "values": ["red", "blue"]}
        ],
    },
]

COLOURS = [
    (200, 10, 10),
    (10, 200, 10),
    (10, 10, 200),
    (200, 200, 10),
    (10, 200, 200),
    (90, 90, 90),
]


def frames(count: int = 6, size=(40, 30)) -> list[PIL.Image.Image]:
    return [
        PIL.Image.new("RGB", (size[0] + i, size[1]), COLOURS[i % len(COLOURS)])
        for i in range(count)
    ]


class BoxEveryFrame:
    """Boxes the whole frame as a car, and tags it; records what it saw."""

    def __init__(self, labels=None):
        self.spec = cvat_aa.DetectionFunctionSpec(
            labels=labels
            or [
                cvat_aa.label_spec("car", 10, type="rectangle"),
                cvat_aa.label_spec("scene", 11, type="tag"),
            ]
        )
        self.seen: list[tuple[str, tuple[int, int], float | None]] = []

    def detect(self, context, image):
        self.seen.append((context.frame_name, image.size, context.conf_threshold))
        return [cvat_aa.rectangle(10, [0, 0, image.width, image.height]), cvat_aa.tag(11)]


@pytest.fixture
def task_id(cvat_server: TestServer) -> int:
    return cvat_server.create_task("six frames", images=frames(), labels=LABELS, chunk_size=4)


def shapes_of(server: TestServer, task_id: int) -> list[dict]:
    return sorted(server.annotations(task_id)["shapes"], key=lambda s: (s["frame"], s["label_id"]))


def test_annotations_get_task_label_ids_frame_numbers_and_source_auto(
    cvat_server, cvat_client, task_id
):
    function = BoxEveryFrame()
    summary = cvat_aa.annotate_task(cvat_client, task_id, function)
    car = cvat_server.label_id(task_id, "car")
    scene = cvat_server.label_id(task_id, "scene")
    shapes = shapes_of(cvat_server, task_id)
    assert [(s["frame"], s["label_id"], s["source"], s["points"]) for s in shapes] == [
        (i, car, "auto", [0, 0, 40 + i, 30]) for i in range(6)
    ]
    tags = cvat_server.annotations(task_id)["tags"]
    assert sorted((t["frame"], t["label_id"], t["source"]) for t in tags) == [
        (i, scene, "auto") for i in range(6)
    ]
    assert (summary.frames, summary.annotations, summary.per_label) == (
        6,
        12,
        {"car": 6, "scene": 6},
    )


def test_frames_reach_the_function_in_order_with_their_names_in_rgb(
    cvat_server, cvat_client, task_id
):
    seen = []

    class Recorder(BoxEveryFrame):
        def detect(self, context, image):
            seen.append((context.frame_name, image.mode, PIL.ImageStat.Stat(image).mean))
            return []

    cvat_aa.annotate_task(cvat_client, task_id, Recorder())
    assert [name for name, _, _ in seen] == [f"frame_{i:06d}.png" for i in range(6)]
    assert all(mode == "RGB" for _, mode, _ in seen)
    assert [tuple(round(c) for c in mean) for _, _, mean in seen] == COLOURS


def test_results_equal_cvat_sdks_for_the_same_function(cvat_server, cvat_client):
    ours = cvat_server.create_task("ours", images=frames(), labels=LABELS, chunk_size=4)
    theirs = cvat_server.create_task("theirs", images=frames(), labels=LABELS, chunk_size=4)
    cvat_aa.annotate_task(cvat_client, ours, BoxEveryFrame())
    sdk_aa.annotate_task(cvat_client, theirs, BoxEveryFrame())

    def comparable(task):
        names = {label["id"]: label["name"] for label in cvat_server.labels(task)}
        data = cvat_server.annotations(task)
        return sorted(
            (
                kind,
                a["frame"],
                names[a["label_id"]],
                a.get("type"),
                tuple(a.get("points", ())),
                a["source"],
            )
            for kind in ("tags", "shapes")
            for a in data[kind]
        )

    assert comparable(ours) == comparable(theirs)


def test_a_cvat_aa_function_runs_under_cvat_sdks_driver(
    cvat_server, cvat_client, task_id, make_distribution
):
    make_distribution(
        "cvat-aa-boxes",
        modules={
            "boxes_for_sdk": """
                import cvat_aa
                spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])
                def detect(context, image):
                    return [cvat_aa.rectangle(0, [1, 1, 5, 5], score=0.5)]
            """
        },
        entry_points={plugins.FUNCTIONS_GROUP: {"boxes": "boxes_for_sdk"}},
    )
    sdk_aa.annotate_task(cvat_client, task_id, cvat_aa.load_function("boxes"))
    assert len(shapes_of(cvat_server, task_id)) == 6


def test_a_function_is_given_by_plugin_name(cvat_server, cvat_client, task_id, make_distribution):
    make_distribution(
        "cvat-aa-boxes",
        modules={
            "boxes_by_name": """
                import cvat_aa
                spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])
                def detect(context, image):
                    return [cvat_aa.rectangle(0, [1, 1, 5, 5])]
            """
        },
        entry_points={plugins.FUNCTIONS_GROUP: {"boxes": "boxes_by_name"}},
    )
    summary = cvat_aa.annotate_task(cvat_client, task_id, "boxes")
    assert summary.per_label == {"car": 6}


def test_clear_existing_replaces_and_the_default_appends(cvat_server, cvat_client, task_id):
    cvat_aa.annotate_task(cvat_client, task_id, BoxEveryFrame())
    cvat_aa.annotate_task(cvat_client, task_id, BoxEveryFrame())
    assert len(shapes_of(cvat_server, task_id)) == 12
    cvat_aa.annotate_task(cvat_client, task_id, BoxEveryFrame(), clear_existing=True)
    assert len(shapes_of(cvat_server, task_id)) == 6


def test_deleted_frames_are_skipped(cvat_server, cvat_client):
    task = cvat_server.create_task("gaps", images=frames(), labels=LABELS, deleted_frames=[1, 4])
    function = BoxEveryFrame()
    summary = cvat_aa.annotate_task(cvat_client, task, function)
    assert sorted({s["frame"] for s in shapes_of(cvat_server, task)}) == [0, 2, 3, 5]
    assert summary.frames == 4


def test_a_frame_selection_limits_the_frames(cvat_server, cvat_client, task_id):
    cvat_aa.annotate_task(cvat_client, task_id, BoxEveryFrame(), frames="0-5:2,5")
    assert sorted({s["frame"] for s in shapes_of(cvat_server, task_id)}) == [0, 2, 4, 5]


def test_the_confidence_threshold_reaches_the_function(cvat_client, task_id):
    function = BoxEveryFrame()
    cvat_aa.annotate_task(cvat_client, task_id, function, conf_threshold=0.3)
    assert {threshold for _, _, threshold in function.seen} == {0.3}


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_a_threshold_outside_0_1_is_a_value_error(cvat_client, task_id, threshold):
    with pytest.raises(ValueError, match="conf_threshold"):
        cvat_aa.annotate_task(cvat_client, task_id, BoxEveryFrame(), conf_threshold=threshold)


def test_an_unmatched_label_fails_before_any_frame_is_read(cvat_server, cvat_client, task_id):
    function = BoxEveryFrame([cvat_aa.label_spec("boat", 0)])
    with pytest.raises(cvat_aa.BadFunctionError, match="label 'boat' is not in dataset"):
        cvat_aa.annotate_task(cvat_client, task_id, function)
    assert function.seen == []
    assert not any("type=chunk" in (e.query or "") for e in cvat_server.request_log)


def test_allow_unmatched_labels_drops_their_annotations(cvat_server, cvat_client, task_id):
    class BoatsAndCars(BoxEveryFrame):
        def detect(self, context, image):
            return [cvat_aa.rectangle(0, [1, 1, 2, 2]), cvat_aa.rectangle(1, [1, 1, 3, 3])]

    function = BoatsAndCars(
        [cvat_aa.label_spec("boat", 0), cvat_aa.label_spec("car", 1, type="rectangle")]
    )
    summary = cvat_aa.annotate_task(cvat_client, task_id, function, allow_unmatched_labels=True)
    assert summary.per_label == {"car": 6}


def test_incompatible_label_types_are_a_bad_function(cvat_client, task_id):
    with pytest.raises(cvat_aa.BadFunctionError, match="type 'polygon' in the function"):
        cvat_aa.annotate_task(
            cvat_client, task_id, BoxEveryFrame([cvat_aa.label_spec("car", 0, type="polygon")])
        )


def _returning(*annotations_factory, labels=None):
    class Returning(BoxEveryFrame):
        def detect(self, context, image):
            return [make() for make in annotations_factory]

    return Returning(
        labels
        or [
            cvat_aa.label_spec("car", 0, type="rectangle"),
            cvat_aa.label_spec("scene", 1, type="tag"),
            cvat_aa.skeleton_label_spec(
                "person", 2, [cvat_aa.keypoint_spec("head", 0), cvat_aa.keypoint_spec("foot", 1)]
            ),
            cvat_aa.label_spec(
                "truck",
                3,
                type="rectangle",
                attributes=[cvat_aa.select_attribute_spec("colour", 0, ["red", "blue"])],
            ),
            cvat_aa.label_spec("thing", 4),
        ]
    )


def _skeleton(*elements):
    return lambda: cvat_aa.skeleton(2, [cvat_aa.keypoint(sl, [1, 1]) for sl in elements])


VIOLATIONS = {
    "preset id": (lambda: cvat_aa.rectangle(0, [0, 0, 1, 1], id=5), "preset id"),
    "preset source": (lambda: cvat_aa.rectangle(0, [0, 0, 1, 1], source="manual"), "preset source"),
    "non-zero frame": (
        lambda: models.LabeledShapeRequest(
            type="rectangle", label_id=0, frame=3, points=[0, 0, 1, 1]
        ),
        "unexpected frame number",
    ),
    "unknown label": (lambda: cvat_aa.rectangle(99, [0, 0, 1, 1]), "unknown label ID"),
    "unknown sublabel": (_skeleton(0, 7), "unknown sublabel ID"),
    "missing element": (_skeleton(0), "fewer elements than expected"),
    "duplicate element": (_skeleton(0, 0), "multiple elements with same sublabel"),
    "non-points element": (
        lambda: cvat_aa.skeleton(
            2,
            [
                cvat_aa.keypoint(0, [1, 1]),
                models.SubLabeledShapeRequest(
                    type="rectangle", label_id=1, frame=0, points=[0, 0, 1, 1]
                ),
            ],
        ),
        "element type other than 'points'",
    ),
    "elements on a rectangle": (
        lambda: cvat_aa.rectangle(0, [0, 0, 1, 1], elements=[cvat_aa.keypoint(0, [1, 1])]),
        "non-skeleton shape with elements",
    ),
    "wrong object": (lambda: "a box", "object of type 'str'"),
    "unknown attribute": (
        lambda: cvat_aa.rectangle(
            3, [0, 0, 1, 1], attributes=[models.AttributeValRequest(spec_id=9, value="red")]
        ),
        "attribute with unknown ID",
    ),
    "bad attribute value": (
        lambda: cvat_aa.rectangle(
            3, [0, 0, 1, 1], attributes=[models.AttributeValRequest(spec_id=0, value="green")]
        ),
        "unsuitable for its attribute",
    ),
    "tag on a shape label": (lambda: cvat_aa.tag(0), "function output tag"),
    "shape of the wrong type": (
        lambda: cvat_aa.polygon(0, [0, 0, 1, 0, 1, 1]),
        "shape of type 'polygon'",
    ),
    "three rectangle coordinates": (lambda: cvat_aa.rectangle(0, [0, 0, 1]), "4 coordinates"),
    "odd polygon": (lambda: cvat_aa.polygon(4, [0, 0, 1, 0, 1]), "even number"),
    "NaN coordinate": (lambda: cvat_aa.rectangle(0, [0, float("nan"), 1, 1]), "non-finite"),
    "infinite coordinate": (lambda: cvat_aa.rectangle(0, [0, 0, float("inf"), 1]), "non-finite"),
    "rotation out of range": (
        lambda: cvat_aa.rectangle(0, [0, 0, 1, 1], rotation=400.0),
        "rotation",
    ),
}


@pytest.mark.parametrize("case", list(VIOLATIONS), ids=list(VIOLATIONS))
def test_each_protocol_violation_is_a_bad_function_and_nothing_is_uploaded(
    cvat_server, cvat_client, task_id, case
):
    make, message = VIOLATIONS[case]
    with pytest.raises(cvat_aa.BadFunctionError, match=message):
        cvat_aa.annotate_task(cvat_client, task_id, _returning(make))
    assert cvat_server.annotations(task_id)["shapes"] == []
    assert cvat_server.annotations(task_id)["tags"] == []


def test_a_mask_despite_conv_mask_to_poly_is_a_bad_function(cvat_client, task_id):
    function = _returning(lambda: cvat_aa.mask(4, [1, 1, 0, 0, 0, 0]))
    with pytest.raises(cvat_aa.BadFunctionError, match="mask shape despite conv_mask_to_poly"):
        cvat_aa.annotate_task(cvat_client, task_id, function, conv_mask_to_poly=True)


def test_a_late_violation_removes_what_the_run_had_uploaded(cvat_server, cvat_client):
    task = cvat_server.create_task("long", images=frames(6) * 50, labels=LABELS, chunk_size=16)

    class BreaksLate(BoxEveryFrame):
        def detect(self, context, image):
            if context.frame_name == "frame_000290.png":
                return [cvat_aa.rectangle(99, [0, 0, 1, 1])]
            return super().detect(context, image)

    with pytest.raises(cvat_aa.BadFunctionError):
        cvat_aa.annotate_task(cvat_client, task, BreaksLate())
    patches = [e for e in cvat_server.request_log if e.method == "PATCH"]
    assert any("action=create" in (e.query or "") for e in patches), "uploads streamed"
    assert cvat_server.annotations(task)["shapes"] == []


def test_a_function_that_raises_is_reported_with_the_frame(cvat_server, cvat_client, task_id):
    class Raises(BoxEveryFrame):
        def detect(self, context, image):
            if context.frame_name.endswith("3.png"):
                raise RuntimeError("out of memory")
            return super().detect(context, image)

    # As cvat-sdk: the function's own exception, here with a note naming the frame.
    with pytest.raises(RuntimeError, match="out of memory") as info:
        cvat_aa.annotate_task(cvat_client, task_id, Raises(), batch_size=1)
    assert type(info.value) is RuntimeError
    assert info.value.__notes__ == ["cvat-aa: the function failed on frame 3 (frame_000003.png)"]
    assert cvat_server.annotations(task_id)["shapes"] == []


def test_a_video_task_is_annotated_frame_by_frame(cvat_server, cvat_client, tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for colour in COLOURS:
            for packet in stream.encode(
                av.VideoFrame.from_image(PIL.Image.new("RGB", (64, 48), colour))
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    task = cvat_server.create_video_task("video", video=path, labels=LABELS)
    function = BoxEveryFrame()
    summary = cvat_aa.annotate_task(cvat_client, task, function)
    assert summary.frames == 6
    assert [size for _, size, _ in function.seen] == [(64, 48)] * 6
    assert sorted(s["frame"] for s in shapes_of(cvat_server, task)) == list(range(6))


def test_a_job_is_annotated_within_its_frames(cvat_server, cvat_client):
    task = cvat_server.create_task("jobs", images=frames(6), labels=LABELS, segment_size=4)
    jobs = sorted(cvat_server.jobs(task), key=lambda j: j["start_frame"])
    summary = cvat_aa.annotate_job(cvat_client, jobs[1]["id"], BoxEveryFrame())
    assert sorted({s["frame"] for s in shapes_of(cvat_server, task)}) == [4, 5]
    assert (summary.target, summary.target_id, summary.task_id) == ("job", jobs[1]["id"], task)


def test_a_task_without_data_is_refused(cvat_server, cvat_client):
    empty = cvat_client.tasks.create(
        models.TaskWriteRequest(name="empty", labels=[{"name": "car"}])
    )
    with pytest.raises(cvat_aa.NoDataError, match="has no data"):
        cvat_aa.annotate_task(cvat_client, empty.id, BoxEveryFrame())


def test_progress_is_reported_per_frame(cvat_client, task_id):
    class Recording(NullProgressReporter):
        def __init__(self):
            super().__init__()
            self.total, self.done = None, 0

        def start2(self, total, **kwargs):
            super().start2(total, **kwargs)
            self.total = total

        def advance(self, delta):
            super().advance(delta)
            self.done += delta

    pbar = Recording()
    cvat_aa.annotate_task(cvat_client, task_id, BoxEveryFrame(), pbar=pbar)
    assert (pbar.total, pbar.done) == (6, 6)


def test_batches_go_to_detect_batch(cvat_client, task_id):
    class Batching(BoxEveryFrame):
        def __init__(self):
            super().__init__()
            self.batches = []

        def detect_batch(self, contexts, images):
            self.batches.append(len(images))
            return [self.detect(c, i) for c, i in zip(contexts, images)]

    function = Batching()
    cvat_aa.annotate_task(cvat_client, task_id, function, batch_size=4)
    assert function.batches == [4, 2]


def test_observer_hooks_see_the_run(cvat_client, task_id, make_distribution):
    make_distribution(
        "cvat-aa-observer",
        modules={
            "observer_hooks": """
                import cvat_aa
                events = []
                @cvat_aa.hookimpl
                def cvat_aa_run_started(run):
                    events.append(("started", dict(run)))
                @cvat_aa.hookimpl
                def cvat_aa_frames_done(frames, annotations):
                    events.append(("frames", list(frames), annotations))
                @cvat_aa.hookimpl
                def cvat_aa_run_finished(summary):
                    events.append(("finished", summary["annotations"]))
            """
        },
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"observer": "observer_hooks"}},
    )
    import observer_hooks

    cvat_aa.annotate_task(cvat_client, task_id, BoxEveryFrame(), batch_size=3)
    assert observer_hooks.events == [
        (
            "started",
            {"target": "task", "target_id": task_id, "function": "BoxEveryFrame", "frames": 6},
        ),
        ("frames", [0, 1, 2], 6),
        ("frames", [3, 4, 5], 6),
        ("finished", 12),
    ]


def test_the_streamed_batched_path_uploads_exactly_what_the_one_by_one_path_does(
    cvat_server, cvat_client
):
    class Colours(BoxEveryFrame):
        """Boxes sized by the frame's colour, so every frame's output is its own."""

        def detect(self, context, image):
            r, g, b = (round(c) for c in PIL.ImageStat.Stat(image).mean)
            return [
                cvat_aa.rectangle(10, [r / 10, g / 10, r / 10 + b / 10 + 1, g / 10 + 1]),
                cvat_aa.tag(11),
            ]

        def detect_batch(self, contexts, images):
            return [self.detect(c, i) for c, i in zip(contexts, images)]

    images = frames(6) * 7
    streamed = cvat_server.create_task("streamed", images=images, labels=LABELS, chunk_size=5)
    simple = cvat_server.create_task("one by one", images=images, labels=LABELS, chunk_size=5)
    cvat_aa.annotate_task(
        cvat_client, streamed, Colours(), batch_size=4, prefetch=2, upload_frames=3
    )
    sdk_aa.annotate_task(cvat_client, simple, Colours())
    assert len([e for e in cvat_server.request_log if e.method == "PATCH"]) > 2, (
        "uploaded in pieces"
    )

    def stored(task):
        data = cvat_server.annotations(task)
        return sorted(
            (
                kind,
                a["frame"],
                a["label_id"] - min(l["id"] for l in cvat_server.labels(task)),
                a.get("type"),
                tuple(a.get("points", ())),
                a["source"],
            )
            for kind in ("tags", "shapes")
            for a in data[kind]
        )

    assert stored(streamed) == stored(simple)
    assert len(stored(streamed)) == 2 * 42
