"""The plugin author guide's example plugin builds, installs and passes its tests as written.

The guide gives each file of its example distribution as a code block whose first line is a
comment naming the file (``# pyproject.toml``, ``# src/cvat_aa_bright_spot/__init__.py``...).
These tests write those blocks out, build a wheel with pip, install it, and run the guide's own
tests against the installed plugin.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import cvat_aa
import numpy as np
import PIL.Image
from cvat_aa.labels import LabelInfo
from cvat_sdk.masks import decode_mask
from test_declared_dependencies import undeclared_imports

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugin-author-guide.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILE_COMMENT = re.compile(r"# ([\w./-]+\.(?:py|toml))")


def code_blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced code block in the guide."""
    return BLOCK.findall(GUIDE.read_text())


def guide_files() -> dict[str, str]:
    """The example's files: blocks whose first line names a file, by that name."""
    files = {}
    for _, text in code_blocks():
        match = FILE_COMMENT.fullmatch(text.partition("\n")[0].strip())
        if match:
            files[match.group(1)] = text
    return files


def write_example(folder: Path) -> Path:
    for name, text in guide_files().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def test_the_layout_shows_every_file_the_guide_gives():
    files = guide_files()
    assert {"pyproject.toml", "src/cvat_aa_bright_spot/__init__.py"} <= set(files)
    (layout,) = [text for _, text in code_blocks() if text.startswith("cvat-aa-bright-spot/")]
    shown = set(re.findall(r"([\w.-]+\.(?:py|toml))\b", layout))
    assert shown == {Path(name).name for name in files}


def test_the_example_declares_a_build_system_and_every_import(tmp_path: Path):
    folder = write_example(tmp_path / "cvat-aa-bright-spot")
    assert "[build-system]" in (folder / "pyproject.toml").read_text()
    assert undeclared_imports(folder / "pyproject.toml") == []


def test_the_example_builds_installs_and_passes_its_own_tests(tmp_path: Path):
    folder = write_example(tmp_path / "cvat-aa-bright-spot")

    def pip(*args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path), str(folder))
    (wheel,) = tmp_path.glob("cvat_aa_bright_spot-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("cvat_aa_bright_spot-0.1.0.dist-info/entry_points.txt")
    assert b"[cvat_aa.functions]\nbright_spot = cvat_aa_bright_spot:create" in entry_points

    site = tmp_path / "site"
    pip("install", "--no-deps", "--target", str(site), str(wheel))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**env, "PYTHONPATH": str(site)},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_skeleton_example_joins_the_points_it_names():
    (example,) = [text for lang, text in code_blocks() if "skeleton_label_spec(" in text]
    namespace = {"cvat_aa": cvat_aa}
    exec(example, namespace)
    assert LabelInfo.from_model(namespace["hand"]).edges() == [(10, 11), (10, 12)]


def _guide_example(defines: str, uses: str, **names) -> dict:
    """Run the guide's block that contains ``defines``, then the one that starts with
    ``uses``, in one namespace holding ``names``; that namespace."""
    (definition,) = [text for _, text in code_blocks() if defines in text]
    (usage,) = [text for _, text in code_blocks() if text.startswith(uses)]
    namespace = {"__name__": "guide_example", **names}
    exec(definition, namespace)
    exec(usage, namespace)
    return namespace


def test_the_interaction_example_finds_the_clicked_square():
    # Random pixels no red square could be confused with.
    pixels = np.random.default_rng(1).integers(0, 150, (120, 160, 3), dtype=np.uint8)
    pixels[30:60, 40:70] = (200, 20, 20)
    image = PIL.Image.fromarray(pixels)
    namespace = _guide_example("InteractionFunctionSpec(", "interactor = ", image=image)
    square = np.zeros((120, 160), dtype=bool)
    square[30:60, 40:70] = True
    for result in (namespace["mask"], *namespace["again"]):
        assert (decode_mask(result.points, image_width=160, image_height=120) == square).all()
    assert cvat_aa.function_kind(namespace["create"]()) == "interaction"


def test_the_tracking_example_follows_the_moved_rectangle():
    pixels = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    first_frame = PIL.Image.fromarray(pixels)
    next_frame = PIL.Image.fromarray(np.roll(pixels, (-2, 5), axis=(0, 1)))
    namespace = _guide_example(
        "TrackingFunctionSpec(",
        "tracker = ",
        first_frame=first_frame,
        next_frame=next_frame,
    )
    assert namespace["moved"].points == [45, 28, 75, 58]
