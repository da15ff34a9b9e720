"""Writing COCO 1.0 JSON as CVAT's exporter writes it, and reading it back."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from cvat_aa.annotations import AnnotationSet, FrameAnnotations
from cvat_aa.export import (
    CocoWriter,
    check_output,
    format_for,
    read_annotations,
    read_coco,
    write_annotations,
    write_coco,
)
from cvat_aa.export.coco import to_coco
from cvat_aa.local import annotate_images
from cvat_sdk import models
from sample_annotations import SampleFunction, views

SUPPORTED = ("rectangle", "polygon", "mask", "skeleton")
# COCO has no source, z_order or group.
NOT_IN_COCO = ("source", "z_order", "group")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    PIL.Image.new("RGB", (120, 100), (90, 90, 90)).save(folder / "a.png")
    PIL.Image.new("RGB", (100, 110), (90, 90, 90)).save(folder / "b.png")
    PIL.Image.new("RGB", (100, 100), (90, 90, 90)).save(folder / "c.png")
    return annotate_images(SampleFunction(), [folder])


@pytest.fixture(scope="module")
def coco_path(result, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("out") / "annotations.json"
    write_coco(path, result.annotations)
    return path


@pytest.fixture(scope="module")
def document(coco_path) -> dict:
    return json.loads(coco_path.read_text())


def test_the_document_has_the_coco_sections(document):
    assert {"licenses", "info", "categories", "images", "annotations"} <= set(document)


def test_images_have_ids_sizes_and_file_names(document):
    assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in document["images"]] == [
        (1, "a.png", 120, 100),
        (2, "b.png", 100, 110),
        (3, "c.png", 100, 100),
    ]


def test_categories_are_the_labels_numbered_from_one(result, document):
    assert [(c["id"], c["name"]) for c in document["categories"]] == [
        (i, label.name) for i, label in enumerate(result.annotations.labels, start=1)
    ]
    assert all(c["supercategory"] == "" for c in document["categories"])


def test_annotation_ids_are_unique_and_refer_to_existing_images_and_categories(document):
    annotations = document["annotations"]
    assert [a["id"] for a in annotations] == list(range(1, len(annotations) + 1))
    images = {i["id"] for i in document["images"]}
    categories = {c["id"] for c in document["categories"]}
    for annotation in annotations:
        assert {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"} <= set(
            annotation
        )
        assert annotation["image_id"] in images
        assert annotation["category_id"] in categories


def test_every_supported_shape_of_every_frame_is_written(document):
    assert len(document["annotations"]) == 3 * len(SUPPORTED)


def _by_category(document: dict, name: str) -> list[dict]:
    category = next(c for c in document["categories"] if c["name"] == name)
    return [a for a in document["annotations"] if a["category_id"] == category["id"]]


def test_a_box_is_x_y_width_height_with_its_area_and_attributes(document):
    box = _by_category(document, "car")[0]
    assert box["bbox"] == [5.0, 6.0, 45.5, 34.25]
    assert box["area"] == pytest.approx(45.5 * 34.25)
    assert box["segmentation"] == [] and box["iscrowd"] == 0
    assert box["score"] == 0.75
    assert box["attributes"] == {
        "occluded": False,
        "rotation": 30.0,
        "colour": "blue",
        "parked": True,
        "doors": 3,
        "note": 'a <b> & "c"',
    }


def test_a_polygon_has_its_points_bbox_and_area(document):
    polygon = _by_category(document, "road")[0]
    assert polygon["segmentation"] == [[60.0, 60.0, 90.0, 60.0, 90.0, 90.0, 60.0, 90.0]]
    assert polygon["bbox"] == [60.0, 60.0, 30.0, 30.0]
    assert polygon["area"] == pytest.approx(900.0)
    assert polygon["attributes"]["occluded"] is True


def _decode_column_major(counts: list[int], height: int, width: int) -> np.ndarray:
    flat = np.zeros(height * width, dtype=bool)
    position = 0
    for i, count in enumerate(counts):
        flat[position : position + count] = i % 2 == 1
        position += count
    return flat.reshape((width, height)).T


def test_a_mask_is_an_uncompressed_column_major_rle_of_the_whole_image(document):
    mask = _by_category(document, "blob")[0]
    assert mask["iscrowd"] == 1
    segmentation = mask["segmentation"]
    assert segmentation["size"] == [100, 120]
    assert sum(segmentation["counts"]) == 100 * 120
    expected = np.zeros((100, 120), dtype=bool)
    expected[10:30, 40:70] = True
    expected[12, 40] = False
    assert (_decode_column_major(segmentation["counts"], 100, 120) == expected).all()
    # Down column 40: 10 background rows, rows 10-11 set, row 12 not, rows 13-29 set.
    assert segmentation["counts"][:4] == [40 * 100 + 10, 2, 1, 17]
    assert mask["area"] == expected.sum()
    assert mask["bbox"] == [40.0, 10.0, 30.0, 20.0]


def test_a_skeleton_category_names_its_keypoints_and_edges(document):
    category = next(c for c in document["categories"] if c["name"] == "cat")
    assert category["keypoints"] == ["head", "body", "tail"]
    assert category["skeleton"] == [[1, 2], [2, 3]]


def test_a_skeleton_is_keypoints_with_visibility(document):
    skeleton = _by_category(document, "cat")[0]
    assert skeleton["keypoints"] == [70.0, 10.0, 2, 80.0, 20.0, 1, 0.0, 0.0, 0]
    assert skeleton["num_keypoints"] == 2
    assert skeleton["bbox"] == [70.0, 10.0, 10.0, 10.0]
    assert skeleton["area"] == 100.0
    assert skeleton["score"] == 0.25


def test_what_coco_cannot_hold_is_left_out_with_a_warning(result, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="cvat_aa"):
        skipped = write_coco(tmp_path / "x.json", result.annotations)
    assert skipped == {"tag": 3, "polyline": 3, "points": 3, "ellipse": 3, "cuboid": 3}
    assert "3 tag(s)" in caplog.text and "CVAT for images" in caplog.text


def test_nothing_is_said_when_nothing_is_left_out(tmp_path, caplog):
    PIL.Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    result = annotate_images(SampleFunction(kinds=SUPPORTED), [tmp_path / "a.png"])
    with caplog.at_level(logging.WARNING, logger="cvat_aa"):
        assert not write_coco(tmp_path / "x.json", result.annotations)
    assert not caplog.records


@pytest.mark.parametrize("kind", SUPPORTED)
def test_reading_the_file_back_gives_the_same_annotations(result, coco_path, kind):
    read = read_coco(coco_path, result.annotations.labels)
    original = views(result.annotations, without=NOT_IN_COCO)
    again = views(read, without=NOT_IN_COCO)
    assert [(f.index, f.name, f.width, f.height) for f in read.frames] == [
        (f.index, f.name, f.width, f.height) for f in result.annotations.frames
    ]
    for frame in original:
        expected = [a for a in original[frame] if a["kind"] == kind]
        assert [a for a in again[frame] if a["kind"] == kind] == expected
        assert len(expected) == 1


def test_reading_refuses_a_category_the_labels_lack(result, document, tmp_path):
    document = json.loads(json.dumps(document))
    document["categories"][0]["name"] = "truck"
    (tmp_path / "x.json").write_text(json.dumps(document))
    with pytest.raises(KeyError, match="truck"):
        read_coco(tmp_path / "x.json", result.annotations.labels)


def test_the_document_is_plain_json(result):
    document, _ = to_coco(result.annotations)
    assert json.loads(json.dumps(document)) == document


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("a.xml", None, "cvat"),
        ("a.JSON", None, "coco"),
        ("a.txt", "coco", "coco"),
        ("a.json", "cvat", "cvat"),
    ],
)
def test_the_format_comes_from_the_option_or_the_extension(name, given, expected):
    assert format_for(name, given) == expected


def test_an_extension_that_names_no_format_is_refused():
    with pytest.raises(ValueError, match="--format"):
        format_for("annotations.txt")


def test_write_and_read_annotations_pick_the_format_by_extension(result, tmp_path):
    assert write_annotations(tmp_path / "a.json", result.annotations) == "coco"
    assert json.loads((tmp_path / "a.json").read_text())["images"]
    assert write_annotations(tmp_path / "a.xml", result.annotations) == "cvat"
    read = read_annotations(tmp_path / "a.xml", result.annotations.labels)
    assert read.count == result.annotations.count


# --- writing frame by frame -------------------------------------------------------------------


def test_the_writer_writes_frame_by_frame_what_to_coco_describes(result, tmp_path):
    with CocoWriter(tmp_path / "x.json", result.annotations.labels) as writer:
        for frame in result.annotations.frames:
            writer.add(frame)
        assert not (tmp_path / "x.json").exists(), "the file appears when it is complete"
    document, skipped = to_coco(result.annotations)
    assert (tmp_path / "x.json").read_text() == json.dumps(document)
    assert writer.skipped == skipped


def test_a_file_that_fails_to_be_written_leaves_the_old_one_and_no_temporary_file(
    result, tmp_path
):
    (tmp_path / "x.json").write_text("old")
    broken = AnnotationSet(
        result.annotations.labels,
        [FrameAnnotations(0, "a.png", 10, 10, (), [models.LabeledShapeRequest(
            type="rectangle", frame=0, label_id=999, points=[0, 0, 1, 1]
        )])],
    )  # fmt: skip
    with pytest.raises(ValueError, match="label id 999"):
        write_coco(tmp_path / "x.json", broken)
    assert (tmp_path / "x.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_written_file_has_the_usual_permissions(result, tmp_path):
    write_coco(tmp_path / "x.json", result.annotations)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (lambda tmp: tmp / "missing" / "a.json", "'.*missing', does not exist"),
        (lambda tmp: tmp, "is a folder; give a file name"),
        (lambda tmp: (tmp / "file").touch() or tmp / "file" / "a.json", "is not a folder"),
    ],
    ids=["missing-folder", "a-folder", "folder-is-a-file"],
)
def test_an_output_that_cannot_be_written_is_refused_without_creating_anything(
    tmp_path, make_path, message
):
    path = make_path(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=message):
        check_output(path)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_in_a_folder_that_cannot_be_written_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    with pytest.raises(ValueError, match="cannot write in"):
        check_output(folder / "a.json")
