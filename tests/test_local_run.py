"""Running a function on local images and videos: inputs, frame names, validation."""

from __future__ import annotations

import gc
import json
import re
import sys
from pathlib import Path

import av
import cvat_aa
import numpy as np
import PIL.Image
import pytest
from cvat_aa import FunctionFailedError
from cvat_aa.frames import EmptySelectionError
from cvat_aa.export import read_annotations, read_cvat_xml
from cvat_aa.local import ImageInputError, annotate_images, find_media
from cvat_sdk import models
from cvat_aa_testing import demo_images
from sample_annotations import SampleFunction


class Boxes:
    """A box around the whole frame; records what it was given."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 7, type="rectangle")])

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, tuple[int, int]]] = []

    def detect(self, context, image):
        self.seen.append((context.frame_name, image.mode, image.size))
        return [cvat_aa.rectangle(7, [0, 0, image.width, image.height], score=0.5)]


class BatchBoxes(Boxes):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def detect_batch(self, contexts, images):
        self.batches.append(len(images))
        return [self.detect(c, i) for c, i in zip(contexts, images)]


def make_video(path: Path, frames: int = 5, size: tuple[int, int] = (64, 48)) -> Path:
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), i * 40 % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def image(path: Path, size: tuple[int, int] = (30, 20), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.new(mode, size).save(path)
    return path


def names(result) -> list[tuple[int, str]]:
    return [(f.index, f.name) for f in result.annotations.frames]


def test_a_folder_gives_its_images_in_name_order(tmp_path):
    for name in ("b.png", "a.jpg", "c.webp"):
        image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    image(tmp_path / "sub" / "d.png")
    result = annotate_images(Boxes(), [tmp_path])
    assert names(result) == [(0, "a.jpg"), (1, "b.png"), (2, "c.webp")]


def test_the_demo_images_are_annotated_with_their_sizes():
    function = Boxes()
    result = annotate_images(function, demo_images())
    assert [(f.name, f.width, f.height) for f in result.annotations.frames] == [
        (p.name, *PIL.Image.open(p).size) for p in demo_images()
    ]
    assert [size for _, _, size in function.seen] == [PIL.Image.open(p).size for p in demo_images()]


def test_a_glob_names_images_by_their_path_below_its_fixed_folder(tmp_path):
    image(tmp_path / "photos" / "2023" / "x.png")
    image(tmp_path / "photos" / "2024" / "x.png")
    image(tmp_path / "photos" / "y.jpg")
    result = annotate_images(Boxes(), [str(tmp_path / "photos" / "**" / "*.png")])
    assert names(result) == [(0, "2023/x.png"), (1, "2024/x.png")]


def test_frames_are_numbered_across_inputs_in_the_order_given(tmp_path):
    make_video(tmp_path / "clip.mp4", frames=3)
    image(tmp_path / "z.png")
    image(tmp_path / "dir" / "a.png")
    result = annotate_images(Boxes(), [tmp_path / "z.png", tmp_path / "clip.mp4", tmp_path / "dir"])
    assert names(result) == [
        (0, "z.png"),
        (1, "clip.mp4/frame_000000"),
        (2, "clip.mp4/frame_000001"),
        (3, "clip.mp4/frame_000002"),
        (4, "a.png"),
    ]


def test_video_frames_are_decoded_in_order(tmp_path):
    function = Boxes()
    result = annotate_images(function, [make_video(tmp_path / "clip.mp4", frames=5, size=(64, 48))])
    assert names(result) == [(i, f"clip.mp4/frame_{i:06d}") for i in range(5)]
    assert {(f.width, f.height) for f in result.annotations.frames} == {(64, 48)}
    assert {mode for _, mode, _ in function.seen} == {"RGB"}


def test_a_frame_selection_keeps_the_frame_numbers(tmp_path):
    video = make_video(tmp_path / "clip.mp4", frames=6)
    result = annotate_images(Boxes(), [video], frames="1-5:2")
    assert names(result) == [
        (1, "clip.mp4/frame_000001"),
        (3, "clip.mp4/frame_000003"),
        (5, "clip.mp4/frame_000005"),
    ]
    assert [s.frame for f in result.annotations.frames for s in f.shapes] == [1, 3, 5]


def test_images_are_given_upright_and_in_rgb(tmp_path):
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    PIL.Image.new("L", (40, 20)).save(tmp_path / "sideways.jpg", exif=exif)
    function = Boxes()
    result = annotate_images(function, [tmp_path / "sideways.jpg"])
    assert function.seen == [("sideways.jpg", "RGB", (20, 40))]
    frame = result.annotations.frames[0]
    assert (frame.width, frame.height) == (20, 40)


def test_annotations_carry_the_spec_ids_the_frame_number_and_the_source_auto(tmp_path):
    image(tmp_path / "a.png")
    image(tmp_path / "b.png")
    result = annotate_images(Boxes(), [tmp_path])
    shapes = [s.to_dict() for f in result.annotations.frames for s in f.shapes]
    assert shapes == [
        {
            "type": "rectangle",
            "label_id": 7,
            "frame": i,
            "points": [0.0, 0.0, 30.0, 20.0],
            "score": 0.5,
            "source": "auto",
        }
        for i in range(2)
    ]
    assert result.annotations.labels.name(7) == "thing"
    assert result.annotations.per_label() == {"thing": 2}


def test_every_kind_of_annotation_passes_validation(tmp_path):
    result = annotate_images(SampleFunction(), [image(tmp_path / "a.png", (100, 100))])
    assert result.annotations.count == 9


def test_frames_are_passed_in_batches(tmp_path):
    for i in range(5):
        image(tmp_path / f"{i}.png")
    function = BatchBoxes()
    annotate_images(function, [tmp_path], batch_size=2)
    assert function.batches == [2, 2, 1]


def test_on_frame_sees_each_frame_with_its_image_and_annotations(tmp_path):
    image(tmp_path / "a.png", (30, 20))
    seen = []
    annotate_images(
        Boxes(),
        [tmp_path],
        on_frame=lambda frame, tags, shapes: seen.append(
            (frame.index, frame.name, frame.image.size, len(tags), len(shapes))
        ),
    )
    assert seen == [(0, "a.png", (30, 20), 0, 1)]


def test_a_file_given_twice_is_read_once(tmp_path):
    image(tmp_path / "a.png")
    result = annotate_images(Boxes(), [tmp_path, tmp_path / "a.png"])
    assert names(result) == [(0, "a.png")]


def test_the_summary_counts_frames_and_labels(tmp_path):
    image(tmp_path / "a.png")
    summary = annotate_images(Boxes(), [tmp_path]).to_dict()
    assert {k: summary[k] for k in ("function", "frames", "annotations", "per_label")} == {
        "function": "Boxes",
        "frames": 1,
        "annotations": 1,
        "per_label": {"thing": 1},
    }


# --- what goes wrong ---------------------------------------------------------------------------


def test_a_path_that_names_nothing_is_an_input_error(tmp_path):
    with pytest.raises(ImageInputError, match="no file or folder"):
        find_media([tmp_path / "missing"])


def test_a_folder_without_images_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageInputError, match="has no images"):
        find_media([tmp_path])


def test_a_glob_that_matches_nothing_is_an_input_error(tmp_path):
    with pytest.raises(ImageInputError, match="match"):
        find_media([str(tmp_path / "*.png")])


def test_two_files_with_the_same_frame_name_are_an_input_error(tmp_path):
    image(tmp_path / "a" / "x.png")
    image(tmp_path / "b" / "x.png")
    with pytest.raises(ImageInputError, match="both be named 'x.png'"):
        find_media([tmp_path / "a", tmp_path / "b"])


def test_a_file_that_is_not_an_image_is_an_input_error(tmp_path):
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(ImageInputError, match="cannot read the image"):
        annotate_images(Boxes(), [tmp_path / "fake.png"])


def test_a_video_without_pyav_says_how_to_install_it(tmp_path, monkeypatch):
    video = make_video(tmp_path / "clip.mp4")
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImageInputError, match=r"pip install 'cvat-aa\[video\]'"):
        find_media([video])


def test_input_errors_come_before_the_function_is_loaded(tmp_path):
    with pytest.raises(ImageInputError):
        annotate_images("no_such_function_anywhere", [tmp_path / "missing.png"])


class Broken:
    spec = cvat_aa.DetectionFunctionSpec(
        labels=[
            cvat_aa.label_spec("thing", 0, type="rectangle"),
            cvat_aa.label_spec("blob", 1, type="mask"),
        ]
    )

    def __init__(self, output) -> None:
        self.output = output

    def detect(self, context, image):
        return self.output()


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda: [cvat_aa.rectangle(5, [0, 0, 1, 1])], "unknown label ID"),
        (lambda: [cvat_aa.polygon(0, [0, 0, 1, 0, 1, 1])], "expected 'rectangle'"),
        (lambda: [cvat_aa.rectangle(0, [0, 0, 1])], "coordinates"),
        (lambda: [cvat_aa.rectangle(0, [0, 0, 1, 1], score=2)], "score"),
        (lambda: [None], "type 'NoneType'"),
    ],
    ids=["unknown-label", "wrong-type", "points", "score", "not-an-annotation"],
)
def test_output_is_validated_as_in_a_task_run(tmp_path, output, message):
    with pytest.raises(cvat_aa.BadFunctionError, match=message):
        annotate_images(Broken(output), [image(tmp_path / "a.png")])


def test_a_mask_with_conv_mask_to_poly_is_refused(tmp_path):
    from cvat_sdk.masks import encode_mask

    function = Broken(lambda: [cvat_aa.mask(1, encode_mask(np.ones((20, 30), dtype=bool)))])
    with pytest.raises(
        cvat_aa.BadFunctionError, match="shape of type 'mask' \\(expected 'polygon'\\)"
    ):
        annotate_images(function, [image(tmp_path / "a.png")], conv_mask_to_poly=True)


def test_a_function_that_raises_fails_the_run_naming_the_frame(tmp_path):
    def explode():
        raise RuntimeError("model exploded")

    with pytest.raises(
        FunctionFailedError, match=r"frame 0 \(a.png\): RuntimeError: model exploded"
    ):
        annotate_images(Broken(explode), [image(tmp_path / "a.png")])


def test_bad_arguments_are_value_errors(tmp_path):
    image(tmp_path / "a.png")
    with pytest.raises(ValueError, match="conf_threshold"):
        annotate_images(Boxes(), [tmp_path], conf_threshold=2)
    with pytest.raises(ValueError, match="batch_size"):
        annotate_images(Boxes(), [tmp_path], batch_size=0)


def test_observer_hooks_see_a_local_run(tmp_path, make_distribution):
    from cvat_aa import plugins

    make_distribution(
        "cvat-aa-local-observer",
        modules={
            "local_observer_hooks": """
                import cvat_aa
                events = []
                @cvat_aa.hookimpl
                def cvat_aa_run_started(run):
                    events.append(("started", run["target"], run["frames"]))
                @cvat_aa.hookimpl
                def cvat_aa_frames_done(frames, annotations):
                    events.append(("frames", list(frames), annotations))
                @cvat_aa.hookimpl
                def cvat_aa_run_finished(summary):
                    events.append(("finished", summary["target"], summary["annotations"]))
            """
        },
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"local-observer": "local_observer_hooks"}},
    )
    import PIL.Image

    import cvat_aa

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        PIL.Image.new("RGB", (8, 8)).save(folder / f"{i}.png")

    class OneBox:
        spec = cvat_aa.DetectionFunctionSpec(
            labels=[cvat_aa.label_spec("car", 0, type="rectangle")]
        )

        def detect(self, context, image):
            return [cvat_aa.rectangle(0, [1, 1, 4, 4])]

    import local_observer_hooks

    cvat_aa.annotate_images(OneBox(), [folder], batch_size=2)
    assert local_observer_hooks.events == [
        ("started", "images", 3),
        ("frames", [0, 1], 2),
        ("frames", [2], 1),
        ("finished", "images", 3),
    ]


# --- on_error="skip": frames the function fails on, and inputs that cannot be read -------------


class FailsOn(Boxes):
    """A box on every frame, except those named in ``failing``, on which it raises."""

    def __init__(self, *failing: str) -> None:
        super().__init__()
        self.failing = set(failing)

    def detect(self, context, image):
        if context.frame_name in self.failing:
            raise ValueError(f"cannot handle {context.frame_name}")
        return super().detect(context, image)


def three_images(folder: Path) -> Path:
    for name in ("a.png", "b.png", "c.png"):
        image(folder / name)
    return folder


def test_with_skip_frames_the_function_fails_on_are_left_out_and_listed(tmp_path):
    result = annotate_images(
        FailsOn("b.png"), [three_images(tmp_path)], on_error="skip", batch_size=3
    )
    assert names(result) == [(0, "a.png"), (2, "c.png")]
    assert [(s.frame, s.name, s.reason) for s in result.skipped] == [
        (1, "b.png", "the function failed: ValueError: cannot handle b.png")
    ]
    assert (result.frames, result.per_label) == (2, {"thing": 2})
    assert "frame 1 (b.png): the function failed: ValueError: cannot handle b.png" in (
        result.format()
    )


def test_with_stop_a_failing_batch_is_reported_by_the_frame_that_fails(tmp_path):
    with pytest.raises(FunctionFailedError, match=r"on frame 1 \(b.png\): ValueError"):
        annotate_images(FailsOn("b.png"), [three_images(tmp_path)], batch_size=3)


def test_on_error_must_be_stop_or_skip(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        annotate_images(Boxes(), [three_images(tmp_path)], on_error="ignore")


def truncated_jpeg(path: Path) -> Path:
    PIL.Image.effect_noise((64, 64), 50).convert("RGB").save(path, quality=95)
    path.write_bytes(path.read_bytes()[:600])
    return path


def make_avi(path: Path, frames: int = 20) -> Path:
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        noise = np.random.default_rng(0)
        for _ in range(frames):
            pixels = noise.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_in_half(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def text_file(path: Path) -> Path:
    path.write_text("not an image, nor a video")
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


UNREADABLE = {
    "empty.jpg": (empty_file, "cannot read the image"),
    "text.jpg": (text_file, "cannot read the image"),
    "truncated.jpg": (truncated_jpeg, "cannot read the image"),
    "text.mp4": (text_file, "cannot read the video"),
    "cut.mp4": (lambda p: cut_in_half(make_video(p, frames=10)), "cannot read the video"),
}


@pytest.mark.parametrize("name", UNREADABLE)
def test_with_skip_an_unreadable_input_is_left_out_and_listed(tmp_path, name):
    make, reason = UNREADABLE[name]
    bad = make(tmp_path / name)
    first, last = image(tmp_path / "first.png"), image(tmp_path / "last.png")
    result = annotate_images(Boxes(), [first, bad, last], on_error="skip")
    assert [name for _, name in names(result)] == ["first.png", "last.png"]
    [skipped] = result.skipped
    assert reason in skipped.reason and str(bad) in skipped.reason
    assert result.frames == 2


@pytest.mark.parametrize("name", UNREADABLE)
def test_with_stop_an_unreadable_input_ends_the_run_naming_the_file(tmp_path, name):
    make, reason = UNREADABLE[name]
    bad = make(tmp_path / name)
    with pytest.raises(ImageInputError, match=f"{reason} '{re.escape(str(bad))}'"):
        annotate_images(Boxes(), [image(tmp_path / "first.png"), bad])


@pytest.fixture
def small_pixel_limit(monkeypatch):
    """PIL warns of images over 200 pixels, and refuses those over 400."""
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 200)


def test_an_image_too_large_to_read_safely_is_an_input_error(tmp_path, small_pixel_limit):
    bomb = image(tmp_path / "bomb.png", (30, 20))
    with pytest.raises(ImageInputError, match="'.*bomb.png' is too large to read safely"):
        annotate_images(Boxes(), [bomb])
    result = annotate_images(Boxes(), [bomb, image(tmp_path / "ok.png", (10, 10))], on_error="skip")
    assert [s.name for s in result.skipped] == ["bomb.png"]
    assert names(result) == [(1, "ok.png")]


def test_a_large_image_is_read_and_the_warning_logged_with_its_name(
    tmp_path, small_pixel_limit, caplog, recwarn
):
    large = image(tmp_path / "large.png", (15, 20))  # 300 pixels: over the limit, under twice
    result = annotate_images(Boxes(), [large])
    assert names(result) == [(0, "large.png")]
    assert "large.png is a very large image; it was read anyway" in caplog.text
    assert not [w for w in recwarn if issubclass(w.category, PIL.Image.DecompressionBombWarning)]


def test_a_video_cut_short_keeps_its_first_frames_and_the_numbers_of_the_next(tmp_path):
    broken = cut_in_half(make_avi(tmp_path / "clip.avi", frames=20))
    after = image(tmp_path / "after.png")
    result = annotate_images(Boxes(), [broken, after], on_error="skip")
    [skipped] = result.skipped
    assert 0 < skipped.frame < 20
    assert skipped.name == f"clip.avi/frame_{skipped.frame:06d}"
    assert f"ended after {skipped.frame} of the 20 frames it says it has" in skipped.reason
    assert names(result) == [
        *((i, f"clip.avi/frame_{i:06d}") for i in range(skipped.frame)),
        (20, "after.png"),  # numbered as if the video had all of its 20 frames
    ]


def test_with_stop_a_video_cut_short_ends_the_run_naming_it(tmp_path):
    broken = cut_in_half(make_avi(tmp_path / "clip.avi"))
    with pytest.raises(ImageInputError, match="the video '.*clip.avi' ended after"):
        annotate_images(Boxes(), [broken])


# --- frame selections that match nothing -------------------------------------------------------


def test_a_selection_that_matches_no_frame_is_refused_before_the_function_is_loaded(tmp_path):
    with pytest.raises(
        EmptySelectionError,
        match=r"frame selection 500-600 matches no frame of the inputs \(frames 0-2\)",
    ):
        annotate_images("no_such_function_anywhere", [three_images(tmp_path)], frames="500-600")


def test_a_selection_past_a_video_of_unknown_length_is_refused_after_reading_it(tmp_path):
    video = tmp_path / "clip.mkv"
    with av.open(str(video), mode="w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(video)) as container:
        assert not container.streams.video[0].frames, "matroska does not say how long it is"
    with pytest.raises(EmptySelectionError, match=r"matches no frame of the inputs \(frames 0-3\)"):
        annotate_images(Boxes(), [video], frames="10-20", output=tmp_path / "out.xml")
    assert not (tmp_path / "out.xml").exists()


# --- streaming to the output file --------------------------------------------------------------


def test_with_an_output_the_annotations_are_written_and_not_kept(tmp_path):
    output = tmp_path / "out.xml"
    result = annotate_images(Boxes(), [three_images(tmp_path / "in")], output=output)
    assert result.annotations is None
    assert result.output == output
    assert (result.frames, result.annotation_count, result.per_label) == (3, 3, {"thing": 3})
    written = read_cvat_xml(output, result.labels)
    assert [(f.index, f.name, len(f.shapes)) for f in written.frames] == [
        (0, "a.png", 1),
        (1, "b.png", 1),
        (2, "c.png", 1),
    ]


def test_keep_annotations_keeps_them_beside_the_output(tmp_path):
    result = annotate_images(
        Boxes(),
        [three_images(tmp_path / "in")],
        output=tmp_path / "out.json",
        keep_annotations=True,
    )
    assert result.annotations.count == 3
    assert len(json.loads((tmp_path / "out.json").read_text())["annotations"]) == 3


@pytest.mark.parametrize("output", ["out.xml", "out.json"])
def test_a_failed_run_leaves_the_output_as_it_was_and_no_temporary_file(tmp_path, output):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / output).write_text("from an earlier run")
    with pytest.raises(FunctionFailedError):
        annotate_images(
            FailsOn("c.png"), [three_images(tmp_path / "in")], output=folder / output, batch_size=1
        )
    assert (folder / output).read_text() == "from an earlier run"
    assert [p.name for p in folder.iterdir()] == [output]


@pytest.mark.parametrize(
    ("make_output", "message"),
    [
        (lambda tmp: tmp / "missing" / "out.xml", "does not exist"),
        (lambda tmp: tmp, "is a folder"),
        (lambda tmp: tmp / "out.txt", "cannot tell the format"),
    ],
    ids=["missing-folder", "a-folder", "unknown-format"],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_function_is_loaded(
    tmp_path, make_output, message
):
    with pytest.raises(ValueError, match=message):
        annotate_images(
            "no_such_function_anywhere", [three_images(tmp_path)], output=make_output(tmp_path)
        )


class ManyBoxes:
    """Many boxes per frame; counts the annotation objects alive when it reaches some frames."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 0, type="rectangle")])
    per_frame = 50

    def __init__(self, check_at: set[int]) -> None:
        self.check_at = check_at
        self.alive: dict[int, int] = {}

    def detect(self, context, image):
        index = int(context.frame_name.rsplit("_", 1)[1])
        if index in self.check_at:
            gc.collect()
            self.alive[index] = sum(
                1 for o in gc.get_objects() if isinstance(o, models.LabeledShapeRequest)
            )
        return [cvat_aa.rectangle(0, [0, 0, 1, 1]) for _ in range(self.per_frame)]


@pytest.mark.parametrize("output", ["out.xml", "out.json"])
def test_memory_does_not_grow_with_the_number_of_frames(tmp_path, output):
    frames, batch_size = 300, 4
    early, late = 20, frames - batch_size  # each the first frame of a batch
    function = ManyBoxes({early, late})
    video = make_video(tmp_path / "long.mp4", frames=frames, size=(16, 16))
    result = annotate_images(function, [video], output=tmp_path / output, batch_size=batch_size)
    # No more annotations are alive near the end than near the start: those of a batch or
    # two, never those of all the frames done before.
    assert function.alive[late] <= function.alive[early]
    assert function.alive[late] < 3 * batch_size * ManyBoxes.per_frame
    assert (result.frames, result.annotation_count) == (frames, frames * ManyBoxes.per_frame)
    assert read_annotations(tmp_path / output, result.labels).count == result.annotation_count
