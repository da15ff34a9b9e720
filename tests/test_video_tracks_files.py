"""``cvat-aa annotate-files VIDEO --tracks``: a detector's boxes on a video on disk become tracks
in the output file and the preview, with the ``video-tracks`` hook plugin installed.

The video is tests/track_scene.py's squares (lossless), the detector
tests/integration/cvat_aa_it_squares.py: so every track is checked against the true paths.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cvat_aa.cli import main
from track_scene import box, frames, off_by, write_video

pytest.importorskip("cvat_aa_video_tracks", reason="scripts/setup.sh installs video-tracks")

SQUARES = str(Path(__file__).parent / "integration" / "cvat_aa_it_squares.py")
FRAMES = 12
GONE = 7


def path(k: int, n: int):
    """The car (red) crosses the whole video; the cyclist (green) leaves on frame GONE."""
    if k == 0:
        return (4 + 3 * n, 6 + 2 * n)
    return None if n >= GONE else (80 - 2 * n, 40)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    clip = tmp_path / "clip.mkv"
    write_video(clip, frames(FRAMES, 2, path))
    return clip


def annotate_files(video: Path, output: Path, *extra: str, capsys) -> dict:
    code = main(
        [
            "annotate-files",
            str(video),
            "--function-file",
            SQUARES,
            "--tracks",
            "--output",
            str(output),
            "--json",
            *extra,
        ]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_a_video_gives_cvat_for_video_xml_with_a_track_per_square_on_its_path(
    video, tmp_path, capsys
):
    output = tmp_path / "tracks.xml"

    summary = annotate_files(video, output, "--preview", str(tmp_path / "preview"), capsys=capsys)

    assert (summary["frames"], summary["tracks"]) == (FRAMES, 2)
    root = ET.parse(output).getroot()
    tracks = {t.get("label"): t.findall("box") for t in root.iter("track")}
    assert sorted(tracks) == ["car", "cyclist"]
    for k, label in enumerate(["car", "cyclist"]):
        for element in tracks[label]:
            n = int(element.get("frame"))
            points = [float(element.get(a)) for a in ("xtl", "ytl", "xbr", "ybr")]
            if element.get("outside") == "1":
                assert (label, n) == ("cyclist", GONE)
            else:
                assert off_by(points, box(k, n, path)) <= 1.0
    # The preview has every frame (each tracked box drawn with its track's number).
    assert len(list((tmp_path / "preview" / "frames").iterdir())) == FRAMES


def test_coco_has_the_tracked_boxes_on_every_frame_they_are_shown_with_their_track_id(
    video, tmp_path, capsys
):
    output = tmp_path / "tracks.json"

    annotate_files(video, output, capsys=capsys)

    coco = json.loads(output.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    frame_of = {image["id"]: n for n, image in enumerate(coco["images"])}
    shown: dict[tuple[str, int], list] = {}
    for a in coco["annotations"]:
        shown.setdefault((names[a["category_id"]], frame_of[a["image_id"]]), []).append(a)
    for n in range(FRAMES):
        [car] = shown[("car", n)]
        x, y, w, h = car["bbox"]
        assert off_by([x, y, x + w, y + h], box(0, n, path)) <= 1.0
        assert ("cyclist", n) in shown if n < GONE else ("cyclist", n) not in shown
    assert len({a["attributes"]["track_id"] for a in coco["annotations"]}) == 2
