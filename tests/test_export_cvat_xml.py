"""Writing "CVAT for images 1.1" XML as CVAT's exporter writes it, and reading it back."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from cvat_aa.annotations import FrameAnnotations
from cvat_aa.export import CvatXmlWriter, read_cvat_xml, write_cvat_xml
from cvat_aa.labels import LabelCatalog
from cvat_aa.local import annotate_images
from cvat_sdk.masks import encode_mask
from sample_annotations import KINDS, SampleFunction, views


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    PIL.Image.new("RGB", (120, 100), (90, 90, 90)).save(folder / "a.png")
    PIL.Image.new("RGB", (100, 110), (90, 90, 90)).save(folder / "b & <c>.png")
    return annotate_images(SampleFunction(), [folder])


@pytest.fixture(scope="module")
def xml_path(result, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("out") / "annotations.xml"
    write_cvat_xml(path, result.annotations, task_name="sample")
    return path


@pytest.fixture(scope="module")
def root(xml_path) -> ET.Element:
    return ET.parse(xml_path).getroot()


def test_the_root_holds_version_1_1_meta_then_images(root):
    assert root.tag == "annotations"
    assert [child.tag for child in root][:2] == ["version", "meta"]
    assert root.findtext("version") == "1.1"
    assert {child.tag for child in root[2:]} == {"image"}


def test_the_meta_describes_the_task(root):
    task = root.find("meta/task")
    assert task.findtext("name") == "sample"
    assert task.findtext("size") == "2"
    assert task.findtext("mode") == "annotation"
    assert (task.findtext("start_frame"), task.findtext("stop_frame")) == ("0", "1")
    assert root.find("meta/dumped") is not None


def test_every_label_is_listed_with_name_color_type_and_attributes(root):
    labels = {label.findtext("name"): label for label in root.iterfind("meta/task/labels/label")}
    assert set(labels) == {
        "car", "road", "lane", "dot", "blob", "cat", "head", "body", "tail", "sunny", "ball", "crate"
    }  # fmt: skip
    for label in labels.values():
        assert label.findtext("color").startswith("#") and len(label.findtext("color")) == 7
        assert label.find("attributes") is not None
    assert labels["car"].findtext("type") == "rectangle"
    colour = labels["car"].find("attributes/attribute[name='colour']")
    assert colour.findtext("input_type") == "select"
    assert colour.findtext("mutable") == "False"
    assert colour.findtext("default_value") == "red"
    assert colour.findtext("values").split("\n") == ["red", "blue"]


def test_a_skeleton_has_its_svg_and_its_sublabels_name_it_as_parent(root):
    labels = {label.findtext("name"): label for label in root.iterfind("meta/task/labels/label")}
    assert labels["cat"].findtext("type") == "skeleton"
    assert 'data-node-from="1" data-node-to="2"' in labels["cat"].findtext("svg")
    for point in ("head", "body", "tail"):
        assert labels[point].findtext("parent") == "cat"
        assert labels[point].findtext("type") == "points"


def test_every_frame_is_an_image_with_id_name_width_and_height(root):
    images = root.findall("image")
    assert [(i.get("id"), i.get("name"), i.get("width"), i.get("height")) for i in images] == [
        ("0", "a.png", "120", "100"),
        ("1", "b & <c>.png", "100", "110"),
    ]


def test_frames_without_annotations_are_written_too(tmp_path):
    PIL.Image.new("RGB", (100, 100)).save(tmp_path / "empty.png")
    result = annotate_images(SampleFunction(kinds=()), [tmp_path / "empty.png"])
    write_cvat_xml(tmp_path / "out.xml", result.annotations)
    image = ET.parse(tmp_path / "out.xml").getroot().find("image")
    assert image.get("name") == "empty.png" and len(image) == 0


REQUIRED = {
    "box": {"label", "source", "occluded", "xtl", "ytl", "xbr", "ybr", "z_order"},
    "polygon": {"label", "source", "occluded", "points", "z_order"},
    "polyline": {"label", "source", "occluded", "points", "z_order"},
    "points": {"label", "source", "occluded", "points", "z_order"},
    "mask": {"label", "source", "occluded", "rle", "left", "top", "width", "height", "z_order"},
    "ellipse": {"label", "source", "occluded", "cx", "cy", "rx", "ry", "z_order"},
    "cuboid": {"label", "source", "occluded", "z_order"}
    | {
        f"{axis}{corner}"
        for corner in ("tl1", "bl1", "tr1", "br1", "tl2", "bl2", "tr2", "br2")
        for axis in "xy"
    },
    "skeleton": {"label", "source", "z_order"},
    "tag": {"label", "source"},
}


@pytest.mark.parametrize("element", sorted(REQUIRED))
def test_each_shape_element_has_the_attributes_cvat_requires(root, element):
    found = root.findall(f"image/{element}")
    assert len(found) == 2
    for node in found:
        assert REQUIRED[element] <= set(node.attrib), node.attrib
        assert node.get("source") == "auto"


def test_rotation_is_written_only_when_it_is_not_zero(root):
    image = root.find("image")
    assert image.find("box").get("rotation") == "30.00"
    assert image.find("ellipse").get("rotation") == "10.00"
    assert "rotation" not in image.find("polygon").attrib


def test_group_and_occlusion_are_written(root):
    polygon = root.find("image/polygon")
    assert (polygon.get("occluded"), polygon.get("z_order"), polygon.get("group_id")) == (
        "1",
        "2",
        "4",
    )


def test_coordinates_have_two_decimals(root):
    box = root.find("image/box")
    assert (box.get("xtl"), box.get("ytl"), box.get("xbr"), box.get("ybr")) == (
        "5.00",
        "6.00",
        "50.50",
        "40.25",
    )
    assert root.find("image/polyline").get("points") == "1.00,90.00;30.00,70.00;60.00,95.00"


def test_an_ellipse_is_centre_and_radii(root):
    ellipse = root.find("image/ellipse")
    assert [ellipse.get(k) for k in ("cx", "cy", "rx", "ry")] == ["50.00", "50.00", "10.00", "5.00"]


def test_a_mask_is_the_rle_of_its_box_with_left_top_width_height(root):
    mask = root.find("image/mask")
    bitmap = np.zeros((100, 120), dtype=bool)
    bitmap[10:30, 40:70] = True
    bitmap[12, 40] = False
    *runs, left, top, right, bottom = encode_mask(bitmap)
    assert [int(r) for r in mask.get("rle").split(", ")] == runs
    assert (mask.get("left"), mask.get("top")) == (str(left), str(top))
    assert (
        (mask.get("width"), mask.get("height"))
        == (str(right - left + 1), str(bottom - top + 1))
        == ("30", "20")
    )
    # Background first: the box's top-left pixel is set, so the first run is empty.
    assert runs[0] == 0 and sum(runs) == 30 * 20


def test_a_skeleton_holds_one_points_element_per_sublabel(root):
    skeleton = root.find("image/skeleton")
    points = skeleton.findall("points")
    assert [(p.get("label"), p.get("outside"), p.get("occluded")) for p in points] == [
        ("head", "0", "0"),
        ("body", "0", "1"),
        ("tail", "1", "0"),
    ]
    assert all("z_order" not in p.attrib for p in points)


def test_attributes_are_named_children_and_escaped(root):
    box = root.find("image/box")
    assert {a.get("name"): a.text for a in box.findall("attribute")} == {
        "colour": "blue",
        "parked": "true",
        "doors": "3",
        "note": 'a <b> & "c"',
    }
    assert root.find("image/tag/attribute[@name='strength']").text == "high"


@pytest.mark.parametrize("kind", KINDS)
def test_reading_the_file_back_gives_the_same_annotations(result, xml_path, kind):
    read = read_cvat_xml(xml_path, result.annotations.labels)
    # The format has no score.
    original = views(result.annotations, without=("score",))
    again = views(read, without=("score",))
    assert [(f.index, f.name, f.width, f.height) for f in read.frames] == [
        (f.index, f.name, f.width, f.height) for f in result.annotations.frames
    ]
    for frame in original:
        assert [a for a in again[frame] if a["kind"] == kind] == [
            a for a in original[frame] if a["kind"] == kind
        ]
        assert len(again[frame]) == len(KINDS)


def test_reading_refuses_a_label_the_labels_lack(result, xml_path):
    text = xml_path.read_text().replace('label="road"', 'label="river"')
    other = xml_path.with_name("other.xml")
    other.write_text(text)
    with pytest.raises(KeyError, match="river"):
        read_cvat_xml(other, result.annotations.labels)


def test_reading_refuses_other_files(tmp_path, result):
    (tmp_path / "x.xml").write_text("<annotations><version>1.0</version></annotations>")
    with pytest.raises(ValueError, match="1.1"):
        read_cvat_xml(tmp_path / "x.xml", result.annotations.labels)


# --- writing frame by frame -------------------------------------------------------------------


def test_the_writer_writes_frame_by_frame_what_write_cvat_xml_writes(result, tmp_path):
    write_cvat_xml(tmp_path / "whole.xml", result.annotations, task_name="sample")
    labels = result.annotations.labels
    with CvatXmlWriter(tmp_path / "streamed.xml", labels, task_name="sample") as writer:
        for frame in result.annotations.frames:
            writer.add(frame)
        assert not (tmp_path / "streamed.xml").exists(), "the file appears when it is complete"

    def without_dates(path: Path) -> str:
        return re.sub(r"<(created|updated|dumped)>[^<]*<", "<\\1><", path.read_text())

    assert without_dates(tmp_path / "streamed.xml") == without_dates(tmp_path / "whole.xml")


def test_the_meta_counts_the_frames_written(tmp_path):
    labels = LabelCatalog.from_spec([])
    with CvatXmlWriter(tmp_path / "a.xml", labels) as writer:
        for index in (3, 4, 7):
            writer.add(FrameAnnotations(index, f"{index}.png", 10, 10))
    task = ET.parse(tmp_path / "a.xml").getroot().find("meta/task")
    assert [task.findtext(t) for t in ("size", "start_frame", "stop_frame")] == ["3", "3", "7"]


def test_a_writer_that_is_discarded_leaves_the_old_file_and_no_temporary_file(tmp_path):
    (tmp_path / "a.xml").write_text("old")
    with pytest.raises(RuntimeError):
        with CvatXmlWriter(tmp_path / "a.xml", LabelCatalog.from_spec([])) as writer:
            writer.add(FrameAnnotations(0, "0.png", 10, 10))
            raise RuntimeError("the run failed")
    assert (tmp_path / "a.xml").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.xml"]


def test_a_writer_writes_to_a_stream(result):
    stream = io.StringIO()
    write_cvat_xml(stream, result.annotations)
    assert read_cvat_xml(io.StringIO(stream.getvalue()), result.annotations.labels).count == (
        result.annotations.count
    )


# --- tracks: CVAT for video 1.1 ---------------------------------------------------------------


def _video_labels() -> LabelCatalog:
    from cvat_aa.labels import AttributeInfo, LabelInfo

    return LabelCatalog(
        (
            LabelInfo(
                id=4,
                name="car",
                type="rectangle",
                color="#ff0000",
                attributes=(
                    AttributeInfo(id=40, name="make", input_type="text", mutable=False),
                    AttributeInfo(id=41, name="parked", input_type="checkbox", mutable=True),
                ),
            ),
            LabelInfo(id=5, name="lane", type="polygon", color="#00ff00"),
        )
    )


def _video_tracks():
    from cvat_sdk import models

    car = models.LabeledTrackRequest(
        frame=2,
        label_id=4,
        source="auto",
        group=7,
        attributes=[models.AttributeValRequest(spec_id=40, value="volvo")],
        shapes=[
            models.TrackedShapeRequest(
                type="rectangle",
                frame=frame,
                points=[frame, 1.5, frame + 10, 11.25],
                outside=outside,
                occluded=False,
                z_order=1,
                rotation=rotation,
                attributes=[models.AttributeValRequest(spec_id=41, value="true")]
                if frame == 2
                else [],
            )
            for frame, outside, rotation in ((2, False, 0.0), (3, False, 15.0), (4, True, 15.0))
        ],
    )
    lane = models.LabeledTrackRequest(
        frame=0,
        label_id=5,
        source="auto",
        attributes=[],
        shapes=[
            models.TrackedShapeRequest(
                type="polygon",
                frame=0,
                points=[1, 1, 5, 1, 5, 5],
                outside=False,
                occluded=True,
                z_order=0,
                rotation=0.0,
                attributes=[],
            )
        ],
    )
    return [car, lane]


def test_tracks_are_written_as_cvat_for_video_with_a_keyframe_element_per_shape(tmp_path):
    from cvat_aa.export.cvat_xml import CvatVideoXmlWriter

    path = tmp_path / "tracks.xml"
    with CvatVideoXmlWriter(path, _video_labels(), task_name="clip", size=10) as writer:
        writer.saw_frame(0, 320, 240)
        for track in _video_tracks():
            writer.add_track(track)

    root = ET.parse(path).getroot()
    assert [child.tag for child in root] == ["version", "meta", "track", "track"]
    task = root.find("meta/task")
    assert (task.findtext("name"), task.findtext("size"), task.findtext("mode")) == (
        "clip",
        "10",
        "interpolation",
    )
    assert (task.findtext("start_frame"), task.findtext("stop_frame")) == ("0", "9")
    assert task.findtext("original_size/width") == "320"
    assert task.findtext("original_size/height") == "240"
    car, lane = root.findall("track")
    assert car.attrib == {"id": "0", "label": "car", "source": "auto", "group_id": "7"}
    boxes = car.findall("box")
    assert boxes[0].attrib == {
        "frame": "2", "keyframe": "1", "outside": "0", "occluded": "0", "xtl": "2.00",
        "ytl": "1.50", "xbr": "12.00", "ybr": "11.25", "z_order": "1",
    }  # fmt: skip
    assert [(b.get("outside"), b.get("rotation")) for b in boxes] == [
        ("0", None), ("0", "15.00"), ("1", "15.00")
    ]  # fmt: skip
    # The track's attributes go on every shape, as CVAT's exporter writes them.
    assert [(a.get("name"), a.text) for a in boxes[0].findall("attribute")] == [
        ("parked", "true"), ("make", "volvo")
    ]  # fmt: skip
    assert [(a.get("name"), a.text) for a in boxes[1].findall("attribute")] == [("make", "volvo")]
    assert lane.find("polygon").get("points") == "1.00,1.00;5.00,1.00;5.00,5.00"


def test_a_video_file_reads_back_as_the_tracks_written(tmp_path):
    from cvat_aa.export.cvat_xml import CvatVideoXmlWriter, read_cvat_video_xml

    path = tmp_path / "tracks.xml"
    written = _video_tracks()
    with CvatVideoXmlWriter(path, _video_labels()) as writer:
        for track in written:
            writer.add_track(track)

    read = read_cvat_video_xml(path, _video_labels())
    assert [t.to_dict() for t in read] == [t.to_dict() for t in written]
    # Without a size given, the meta counts the frames up to the last keyframe.
    assert ET.parse(path).getroot().findtext("meta/task/size") == "5"


def test_a_video_writer_that_fails_leaves_no_file(tmp_path):
    from cvat_aa.export.cvat_xml import CvatVideoXmlWriter

    path = tmp_path / "tracks.xml"
    with pytest.raises(RuntimeError), CvatVideoXmlWriter(path, _video_labels()) as writer:
        writer.add_track(_video_tracks()[0])
        raise RuntimeError("the tracker failed")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []
