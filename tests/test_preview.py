"""Drawing annotations onto frames, and the preview gallery."""

from __future__ import annotations

import html
import os
import re

import cvat_aa
import numpy as np
import PIL.Image
import pytest
from cvat_aa.frames import Frame
from cvat_aa.labels import LabelCatalog
from cvat_aa.local import annotate_images
from cvat_aa.pipeline.run import MappedFrame
from cvat_aa.pipeline.sinks import PreviewSink
from cvat_aa.preview import PreviewWriter, check_preview_directory, draw_annotations
from cvat_sdk import models
from cvat_sdk.masks import encode_mask
from sample_annotations import CAT_SVG, SPEC, SampleFunction

GREY = (128, 128, 128)
RED = "#ff0000"
LABELS = LabelCatalog.from_spec(
    [
        cvat_aa.label_spec("car", 0, type="rectangle", color=RED),
        cvat_aa.label_spec("blob", 1, type="mask", color="#0000ff"),
        cvat_aa.skeleton_label_spec(
            "cat",
            2,
            [cvat_aa.keypoint_spec("head", 0), cvat_aa.keypoint_spec("body", 1)],
            svg=CAT_SVG,
            color="#00ff00",
        ),
        cvat_aa.skeleton_label_spec(
            "dog",
            3,
            [cvat_aa.keypoint_spec("head", 0), cvat_aa.keypoint_spec("body", 1)],
            color="#00ff00",
        ),
        cvat_aa.label_spec("sunny", 4, type="tag"),
    ]
)


def grey(size: tuple[int, int] = (200, 200)) -> PIL.Image.Image:
    return PIL.Image.new("RGB", size, GREY)


def colour_near(
    image: PIL.Image.Image, x: int, y: int, colour: tuple[int, int, int], radius: int = 1
) -> bool:
    pixels = np.asarray(image)[
        max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1
    ]
    return bool((np.abs(pixels.astype(int) - colour).sum(axis=-1) < 30).any())


def box(points, **kwargs) -> models.LabeledShapeRequest:
    return models.LabeledShapeRequest(
        type="rectangle", frame=0, label_id=0, points=points, **kwargs
    )


def test_a_box_is_outlined_in_its_label_colour():
    drawn = draw_annotations(grey(), [], [box([50, 50, 150, 150])], LABELS)
    assert colour_near(drawn, 100, 150, (255, 0, 0))
    assert colour_near(drawn, 150, 100, (255, 0, 0))
    assert drawn.getpixel((100, 100)) == GREY


def test_the_image_drawn_on_is_a_copy():
    image = grey()
    draw_annotations(image, [], [box([50, 50, 150, 150])], LABELS)
    assert image.getpixel((100, 150)) == GREY


def test_a_rotated_box_is_turned_clockwise_about_its_centre():
    drawn = draw_annotations(grey(), [], [box([50, 50, 150, 150], rotation=45)], LABELS)
    # The corners move to the middles of the sides, 71 px from the centre.
    assert colour_near(drawn, 100 + 71, 100, (255, 0, 0), radius=2)
    assert colour_near(drawn, 100, 100 + 71, (255, 0, 0), radius=2)
    assert not colour_near(drawn, 150, 150, (255, 0, 0))


def test_a_caption_names_the_label_and_score_above_the_shape():
    plain = draw_annotations(grey(), [], [box([50, 50, 150, 150])], LABELS)
    scored = draw_annotations(grey(), [], [box([50, 50, 150, 150], score=0.87)], LABELS)
    above = (50, 30, 150, 49)
    assert colour_near(plain, 52, 45, (255, 0, 0))
    # The score makes the caption longer.
    plain_red = (np.abs(np.asarray(plain.crop(above)).astype(int) - (255, 0, 0)).sum(-1) < 30).sum()
    scored_red = (
        np.abs(np.asarray(scored.crop(above)).astype(int) - (255, 0, 0)).sum(-1) < 30
    ).sum()
    assert scored_red > plain_red


def red_in(image: PIL.Image.Image, area: tuple[int, int, int, int]) -> int:
    return int((np.abs(np.asarray(image.crop(area)).astype(int) - (255, 0, 0)).sum(-1) < 30).sum())


def test_a_shape_of_a_track_is_drawn_with_its_track_after_the_label():
    plain = draw_annotations(grey(), [], [box([50, 50, 150, 150])], LABELS)
    tracked = draw_annotations(grey(), [], [], LABELS, shown=[("#3", box([50, 50, 150, 150]))])
    assert colour_near(tracked, 100, 150, (255, 0, 0))
    # "car #3" makes a longer caption than "car".
    assert red_in(tracked, (50, 30, 150, 49)) > red_in(plain, (50, 30, 150, 49))


def test_a_mask_is_a_translucent_fill():
    bitmap = np.zeros((200, 200), dtype=bool)
    bitmap[20:60, 100:180] = True
    mask = models.LabeledShapeRequest(type="mask", frame=0, label_id=1, points=encode_mask(bitmap))
    drawn = draw_annotations(grey(), [], [mask], LABELS)
    inside = drawn.getpixel((140, 40))
    assert (
        inside != GREY and inside[2] > inside[0] and inside[0] > 0
    )  # tinted blue, not painted over
    assert drawn.getpixel((140, 100)) == GREY


def skeleton(label_id: int) -> models.LabeledShapeRequest:
    return cvat_aa.skeleton(
        label_id, [cvat_aa.keypoint(0, [40, 100]), cvat_aa.keypoint(1, [160, 100])]
    )


def test_a_skeleton_is_drawn_with_the_edges_of_its_svg():
    drawn = draw_annotations(grey(), [], [skeleton(2)], LABELS)
    assert colour_near(drawn, 100, 100, (0, 255, 0))
    assert colour_near(drawn, 40, 100, (0, 255, 0)) or drawn.getpixel((40, 100)) != GREY


def test_a_skeleton_without_an_svg_is_drawn_as_points_only():
    drawn = draw_annotations(grey(), [], [skeleton(3)], LABELS)
    assert drawn.getpixel((100, 100)) == GREY
    assert drawn.getpixel((40, 100)) != GREY and drawn.getpixel((160, 100)) != GREY


def test_an_outside_skeleton_point_is_not_drawn():
    shape = cvat_aa.skeleton(
        2, [cvat_aa.keypoint(0, [40, 100]), cvat_aa.keypoint(1, [160, 100], outside=True)]
    )
    drawn = draw_annotations(grey(), [], [shape], LABELS)
    assert drawn.getpixel((160, 100)) == GREY
    assert drawn.getpixel((100, 100)) == GREY


def test_tags_are_listed_in_a_banner_across_the_top():
    drawn = draw_annotations(grey(), [cvat_aa.tag(4)], [], LABELS)
    assert sum(drawn.getpixel((199, 2))) < sum(GREY)
    assert drawn.getpixel((100, 150)) == GREY


def test_every_kind_of_annotation_can_be_drawn():
    image = grey((120, 110))
    annotations = SampleFunction().detect(None, image)
    tags = [a for a in annotations if isinstance(a, models.LabeledImageRequest)]
    shapes = [a for a in annotations if isinstance(a, models.LabeledShapeRequest)]
    drawn = draw_annotations(image, tags, shapes, LabelCatalog.from_spec(SPEC.labels))
    assert drawn.size == image.size and drawn.mode == "RGB"
    assert np.asarray(drawn).std() > 0


# --- the gallery -------------------------------------------------------------------------------


@pytest.fixture
def gallery(tmp_path):
    writer = PreviewWriter(tmp_path / "preview", LABELS, title="cars & <cats>")
    writer.add(
        Frame(0, "street.jpg", grey()),
        [cvat_aa.tag(4)],
        [box([50, 50, 150, 150]), box([0, 0, 10, 10])],
    )
    writer.add(Frame(7, "clip.mp4/frame_000007", grey((100, 50))), [], [])
    writer.add(Frame(8, 'odd <name> & "quotes".png', grey()), [], [])
    writer.close()
    return tmp_path / "preview"


def test_each_frame_is_written_as_a_png_with_a_thumbnail(gallery):
    frames = sorted(p.name for p in (gallery / "frames").iterdir())
    assert frames == [
        "000000_street.png",
        "000007_clip.mp4_frame_000007.png",
        "000008_odd_name_quotes.png",
    ]
    assert sorted(p.name for p in (gallery / "thumbnails").iterdir()) == frames
    street = PIL.Image.open(gallery / "frames" / "000000_street.png")
    assert street.size == (200, 200) and colour_near(street.convert("RGB"), 100, 150, (255, 0, 0))
    assert max(PIL.Image.open(gallery / "thumbnails" / "000000_street.png").size) <= 320


def test_the_gallery_links_every_frame_relatively(gallery):
    page = (gallery / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', page)
    images = re.findall(r'src="([^"]+)"', page)
    assert links == [
        "frames/000000_street.png",
        "frames/000007_clip.mp4_frame_000007.png",
        "frames/000008_odd_name_quotes.png",
    ]
    assert images == [link.replace("frames/", "thumbnails/") for link in links]
    assert all((gallery / link).is_file() for link in (*links, *images))


def test_the_gallery_shows_names_escaped_and_counts_per_label(gallery):
    page = (gallery / "index.html").read_text()
    assert html.escape('odd <name> & "quotes".png') in page
    assert "<name>" not in page
    assert "<title>cars &amp; &lt;cats&gt;</title>" in page
    assert "3 annotations: car 2, sunny 1" in page
    assert "3 frames, 3 annotations" in page


def test_the_gallery_counts_the_shapes_of_tracks_with_the_frames_shapes(tmp_path):
    with PreviewWriter(tmp_path / "preview", LABELS) as writer:
        writer.add(
            Frame(0, "a.png", grey()),
            [],
            [box([0, 0, 9, 9])],
            shown=[("#1", box([50, 50, 90, 90]))],
        )
    assert "2 annotations: car 2" in (tmp_path / "preview" / "index.html").read_text()


def test_a_run_previews_the_shapes_its_result_stages_took_into_tracks(tmp_path):
    sink = PreviewSink(tmp_path / "preview", LABELS, "tracks")
    sink.start()
    sink.add(
        [MappedFrame(Frame(0, "a.png", grey()), [], [], shown=[("#1", box([50, 50, 150, 150]))])]
    )
    sink.finish()
    drawn = PIL.Image.open(tmp_path / "preview" / "frames" / "000000_a.png").convert("RGB")
    assert colour_near(drawn, 100, 150, (255, 0, 0))
    assert "1 annotation: car 1" in (tmp_path / "preview" / "index.html").read_text()


def test_the_gallery_is_written_even_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError), PreviewWriter(tmp_path / "preview", LABELS) as writer:
        writer.add(Frame(0, "a.png", grey()), [], [])
        raise RuntimeError("the run failed")
    assert "frames/000000_a.png" in (tmp_path / "preview" / "index.html").read_text()


def test_a_local_run_draws_its_frames_as_it_goes(tmp_path):
    grey().save(tmp_path / "a.png")
    labels = LabelCatalog.from_spec(SPEC.labels)
    with PreviewWriter(tmp_path / "preview", labels) as writer:
        annotate_images(SampleFunction(), [tmp_path / "a.png"], on_frame=writer.add)
    assert (tmp_path / "preview" / "frames" / "000000_a.png").is_file()
    assert "9 annotations" in (tmp_path / "preview" / "index.html").read_text()


# --- checking the directory before a run -------------------------------------------------------


def test_a_directory_that_does_not_exist_yet_passes_the_check_and_is_not_created(tmp_path):
    assert check_preview_directory(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "file", "'.*file' is a file, not a folder"),
        (lambda tmp: tmp / "file" / "preview", "cannot be created: '.*file' is a file"),
        (lambda tmp: (tmp / "p").mkdir() or tmp / "p", None),
    ],
    ids=["a-file", "below-a-file", "an-existing-folder"],
)
def test_a_directory_that_cannot_hold_a_gallery_is_refused(tmp_path, make, message):
    (tmp_path / "file").write_text("x")
    directory = make(tmp_path)
    if message is None:
        check_preview_directory(directory)
    else:
        with pytest.raises(ValueError, match=message):
            check_preview_directory(directory)


def test_a_directory_whose_frames_folder_is_a_file_is_refused(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "frames").write_text("x")
    with pytest.raises(ValueError, match="frames' is a file"):
        check_preview_directory(tmp_path / "p")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_directory_in_a_folder_that_cannot_be_written_is_refused(tmp_path):
    (tmp_path / "locked").mkdir(mode=0o500)
    with pytest.raises(ValueError, match="cannot write in"):
        check_preview_directory(tmp_path / "locked" / "preview")
