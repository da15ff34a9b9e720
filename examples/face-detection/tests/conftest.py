"""Fixtures for the face detection plugin's tests.

The tests import the plugin from ``src/`` rather than from an installed copy: cvat-aa's own
test suite checks that installing this example makes it appear in ``cvat-aa functions list``,
which needs the development environment to be without it. A plugin author who works in their
own environment (``pip install -e .``) can drop the ``sys.path`` line.
"""

import sys
from pathlib import Path

import PIL.Image
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import cvat_aa

DATA = Path(__file__).parent / "data"


@pytest.fixture
def astronaut() -> PIL.Image.Image:
    """A 512x512 RGB photo of one frontal face (see data/NOTICE)."""
    with PIL.Image.open(DATA / "astronaut.jpg") as image:
        return image.convert("RGB")


@pytest.fixture
def context() -> cvat_aa.FrameContext:
    return cvat_aa.FrameContext(frame_name="astronaut.jpg")
