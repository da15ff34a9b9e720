"""Fixtures for the test server's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_test_data import make_images, make_video


@pytest.fixture
def image_files(tmp_path: Path) -> list[Path]:
    """Five PNG files of different widths."""
    return make_images(tmp_path / "images", 5)


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """A 12-frame video."""
    return make_video(tmp_path / "clip.mp4", 12)
