"""Data for the test server's tests: labels of every type, real images and videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import PIL.Image
import PIL.ImageStat
import pytest
import urllib3
from cvat_aa_testing import TestServer

# Frame i of every generated image set and video is filled with this colour, so a test can
# tell which frame it got back after JPEG or video compression.
FRAME_COLORS = [(i * 23 % 256, 255 - i * 41 % 256, i * 67 % 256) for i in range(64)]


def make_images(
    folder: Path, count: int, *, size: tuple[int, int] = (64, 48), suffix: str = ".png"
) -> list[Path]:
    """``count`` images named image_00.png...; image i is FRAME_COLORS[i], i pixels wider."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"image_{i:02d}{suffix}"
        PIL.Image.new("RGB", (size[0] + i, size[1]), FRAME_COLORS[i]).save(path)
        paths.append(path)
    return paths


def make_video(path: Path, frame_count: int, *, size: tuple[int, int] = (64, 48)) -> Path:
    """An MPEG-4 video whose frame i is filled with FRAME_COLORS[i]."""
    av = pytest.importorskip("av")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        for i in range(frame_count):
            image = PIL.Image.new("RGB", size, FRAME_COLORS[i])
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def mean_color(image: PIL.Image.Image) -> tuple[float, ...]:
    return tuple(PIL.ImageStat.Stat(image.convert("RGB")).mean)


def close_to(color: tuple[float, ...], expected: tuple[int, ...], tolerance: float = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected))


LABELS_OF_EVERY_TYPE = [
    {"name": "anything"},
    {
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {"name": "color", "input_type": "select", "mutable": False, "values": ["red", "blue"]},
            {"name": "parked", "input_type": "checkbox", "mutable": True, "values": ["false"]},
            {"name": "speed", "input_type": "number", "mutable": True, "values": ["0", "200", "1"]},
            {"name": "plate", "input_type": "text", "mutable": False, "values": [""]},
            {"name": "kind", "input_type": "radio", "mutable": False, "values": ["sedan", "van"]},
        ],
    },
    {"name": "road", "type": "polygon"},
    {"name": "sky", "type": "mask"},
    {"name": "eye", "type": "points"},
    {
        "name": "person",
        "type": "skeleton",
        "sublabels": [
            {"name": "head", "type": "points"},
            {
                "name": "hand",
                "type": "points",
                "attributes": [
                    {
                        "name": "side",
                        "input_type": "select",
                        "mutable": False,
                        "values": ["left", "right"],
                    }
                ],
            },
        ],
        "svg": '<line x1="1" y1="1" x2="2" y2="2" data-node-from="1" data-node-to="2"></line>',
    },
    {"name": "daytime", "type": "tag"},
]


def api_request(server: TestServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A raw request with a personal access token, for what the SDK cannot send."""
    response = urllib3.request(
        method,
        f"{server.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {server.create_access_token()}"},
    )
    return response.status, json.loads(response.data) if response.data else None
