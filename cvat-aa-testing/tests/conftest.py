"""Fixtures for the test server's tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from cvat_aa import plugins
from server_test_data import make_images, make_video


@pytest.fixture(autouse=True)
def isolated_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs that a test starts keep their journals in a temporary directory, never the user's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def image_files(tmp_path: Path) -> list[Path]:
    """Five PNG files of different widths."""
    return make_images(tmp_path / "images", 5)


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """A 12-frame video."""
    return make_video(tmp_path / "clip.mp4", 12)


@pytest.fixture
def make_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Installs a distribution for this test only: modules and entry points, on sys.path.

    A real ``.dist-info`` directory is written, so importlib.metadata finds it exactly as it
    finds a pip-installed plugin (the sandbox's ``--labels-from NAME`` looks functions up so).
    """
    monkeypatch.setattr(plugins, "_plugin_manager", None)
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(
        name: str,
        *,
        modules: Mapping[str, str] = {},
        entry_points: Mapping[str, Mapping[str, str]] = {},
    ) -> Path:
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
        dist_info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        lines = []
        for group, eps in entry_points.items():
            lines.append(f"[{group}]")
            lines.extend(f"{ep} = {target}" for ep, target in eps.items())
        (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return dist_info

    return make
