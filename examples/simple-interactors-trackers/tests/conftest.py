"""Fixtures for the example's tests: random images, built in the test, no files, no weights.

The tests import the plugin from ``src/`` rather than from an installed copy, so they also run
where it is not installed. A plugin author who works in their own environment
(``pip install -e .``) can drop the ``sys.path`` line.
"""

import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def noise(rng) -> np.ndarray:
    """A 120x160 RGB image of random pixels, as an array."""
    return rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)


@pytest.fixture
def image_with_a_square(noise) -> PIL.Image.Image:
    """Random pixels with a plain red square at x 40..69, y 30..59."""
    pixels = noise.copy()
    pixels[30:60, 40:70] = (200, 20, 20)
    return PIL.Image.fromarray(pixels)
