"""Tracking over a video or images on disk (``cvat-aa track --video/--images``,
``track_files``): tracks written as CVAT for video 1.1 XML, with no server."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from cvat_aa.cli import main
from cvat_aa.export.cvat_xml import read_cvat_video_xml
from cvat_aa.export.tracks_json import read_tracks_json
from cvat_aa.local.track_video import labels_of, track_files
from track_scene import HEIGHT, WIDTH, ColourTracker, box, frame_image, off_by, write_video

SCENE = str(Path(__file__).with_name("track_scene.py"))


def leaving(k: int, n: int):
    """Square 0 moves right and is gone from frame 5 on; square 1 stays."""
    if k == 0:
        return None if n >= 5 else (4 + 3 * n, 6 + 2 * n)
    return (60, 40)


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in range(8):
        frame_image(n, 2, leaving).save(folder / f"frame_{n:06d}.png")
    return folder


@pytest.fixture
def shapes_file(tmp_path) -> Path:
    path = tmp_path / "start.json"
    path.write_text(
        json.dumps(
            [
                {"label": "car", "frame": 0, "type": "rectangle", "points": box(0, 0, leaving)},
                {"label": "sign", "type": "rectangle", "points": box(1, 0, leaving)},
            ]
        )
    )
    return path


def test_tracks_over_images_are_written_as_cvat_for_video_xml(
    images, shapes_file, tmp_path, capsys
):
    output = tmp_path / "tracks.xml"
    code = main(
        ["track", SCENE, "--images", str(images), "--shapes-file", str(shapes_file)]
        + ["--output", str(output)]
    )
    assert code == 0, capsys.readouterr().err
    assert f"Wrote {output} (CVAT for video 1.1)" in capsys.readouterr().out

    root = ET.parse(output).getroot()
    task = root.find("meta/task")
    assert (task.findtext("mode"), task.findtext("size")) == ("interpolation", "8")
    assert (task.findtext("original_size/width"), task.findtext("original_size/height")) == (
        str(WIDTH),
        str(HEIGHT),
    )
    car, sign = sorted(root.findall("track"), key=lambda t: t.get("label"))
    assert (car.get("label"), car.get("source")) == ("car", "auto")
    boxes = car.findall("box")
    assert [(b.get("frame"), b.get("outside"), b.get("keyframe")) for b in boxes] == [
        *((str(n), "0", "1") for n in range(5)),
        ("5", "1", "1"),
    ]
    for element in boxes[:5]:
        points = [float(element.get(a)) for a in ("xtl", "ytl", "xbr", "ybr")]
        assert off_by(points, box(0, int(element.get("frame")), leaving)) <= 1
    assert [b.get("frame") for b in sign.findall("box")] == [str(n) for n in range(8)]
    assert all(b.get("outside") == "0" for b in sign.findall("box"))


def test_the_xml_reads_back_as_the_tracks_that_were_made(images, shapes_file, tmp_path):
    entries = json.loads(shapes_file.read_text())
    output = tmp_path / "tracks.xml"
    summary = track_files(ColourTracker(), [images], entries, output=output, frames="0-3")

    tracks = read_cvat_video_xml(output, labels_of(entries))
    assert len(tracks) == summary.tracks == 2
    for track in tracks:
        # Frames 0-3, then outside on frame 4: the media go on after the range.
        assert [(s.frame, s.outside) for s in track.shapes] == [
            (0, False), (1, False), (2, False), (3, False), (4, True)
        ]  # fmt: skip
        assert track.source == "auto"


def test_a_run_that_fails_leaves_no_file(tmp_path, shapes_file):
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in range(4):
        image = frame_image(n, 2, leaving)
        if n == 2:
            pixels = np.asarray(image).copy()
            pixels[0, 0] = (255, 255, 255)
            image = PIL.Image.fromarray(pixels)
        image.save(folder / f"frame_{n:06d}.png")
    output = tmp_path / "tracks.xml"
    with pytest.raises(RuntimeError, match="ran out of memory"):
        track_files(ColourTracker(), [folder], json.loads(shapes_file.read_text()), output=output)
    assert not output.exists()
    assert list(tmp_path.glob(".tracks.xml*")) == []


def test_a_video_is_tracked_frame_by_frame(tmp_path, shapes_file, capsys):
    pytest.importorskip("av")
    video = tmp_path / "clip.mkv"
    write_video(video, [frame_image(n, 2, leaving) for n in range(8)])

    output = tmp_path / "tracks.xml"
    code = main(
        ["track", SCENE, "--video", str(video), "--shapes-file", str(shapes_file)]
        + ["--output", str(output), "--json"]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert (summary["tracks"], summary["lost"], summary["frames"]) == (2, 1, 8)
    tracks = read_cvat_video_xml(output, labels_of(json.loads(shapes_file.read_text())))
    car = next(t for t in tracks if t.label_id == 0)
    assert [s.frame for s in car.shapes if s.outside] == [5]
    for shape in car.shapes[:5]:
        assert off_by(shape.points, box(0, shape.frame, leaving)) <= 1


def test_an_output_that_is_neither_xml_nor_json_exits_2(images, shapes_file, tmp_path, capsys):
    code = main(
        ["track", SCENE, "--images", str(images), "--shapes-file", str(shapes_file)]
        + ["--output", str(tmp_path / "tracks.csv")]
    )
    assert code == 2
    assert "name the output *.xml (CVAT for video 1.1" in capsys.readouterr().err


def test_tracks_can_be_written_as_plain_json(images, shapes_file, tmp_path, capsys):
    output = tmp_path / "tracks.json"
    code = main(
        ["track", SCENE, "--images", str(images), "--shapes-file", str(shapes_file)]
        + ["--output", str(output), "--frames", "0-5"]
    )
    assert code == 0, capsys.readouterr().err
    assert f"Wrote {output} (JSON)" in capsys.readouterr().out

    data = read_tracks_json(output)
    assert (data["size"], data["width"], data["height"]) == (8, WIDTH, HEIGHT)
    assert data["labels"] == ["car", "sign"]
    car, sign = sorted(data["tracks"], key=lambda t: t["label"])
    assert (car["label"], car["frame"], car["source"]) == ("car", 0, "auto")
    assert [(s["frame"], s["outside"]) for s in car["shapes"]] == [
        *((n, False) for n in range(5)),
        (5, True),
    ]
    assert off_by(car["shapes"][2]["points"], box(0, 2, leaving)) <= 1
    # Followed to the end of the range, closed on the next frame.
    assert [(s["frame"], s["outside"]) for s in sign["shapes"]][-2:] == [(5, False), (6, True)]


def test_a_start_shape_the_function_cannot_track_exits_2(images, tmp_path, capsys):
    shapes = tmp_path / "start.json"
    shapes.write_text(json.dumps([{"label": "car", "type": "points", "points": [10, 10]}]))
    code = main(["track", SCENE, "--images", str(images), "--shapes-file", str(shapes)])
    assert code == 2
    assert "is a points, which the function cannot track (it tracks rectangle)" in (
        capsys.readouterr().err
    )
