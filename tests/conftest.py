"""Fixtures shared by the core's tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from cvat_aa import plugins


@pytest.fixture(autouse=True)
def isolated_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Run journals go to a temporary state directory, never the user's."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


@pytest.fixture
def fresh_plugin_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next hooks() call build a new plugin manager (and rediscover hook plugins)."""
    monkeypatch.setattr(plugins, "_plugin_manager", None)


@pytest.fixture
def make_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugin_manager: None
) -> Callable[..., Path]:
    """Install a distribution for this test only: modules plus entry points, on sys.path.

    A real ``.dist-info`` directory is written, so importlib.metadata finds it exactly as it
    finds a pip-installed plugin.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(
        name: str,
        *,
        version: str = "1.0",
        modules: Mapping[str, str] = {},
        entry_points: Mapping[str, Mapping[str, str]] = {},
        summary: str = "",
    ) -> Path:
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        if summary:
            metadata += f"Summary: {summary}\n"
        (dist_info / "METADATA").write_text(metadata)
        lines = []
        for group, eps in entry_points.items():
            lines.append(f"[{group}]")
            lines.extend(f"{ep} = {target}" for ep, target in eps.items())
        (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return dist_info

    return make
