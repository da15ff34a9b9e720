"""pytest fixtures for testing torch-based function plugins offline: random weights, photos.

A plugin's ``conftest.py`` imports the fixtures it wants::

    from cvat_aa_torch.testing import no_downloads, photo, photos, torch_home, weights_path

``torch_home`` and ``weights_path`` need a ``model_name`` fixture (session-scoped) naming the
torchvision model. Nothing here downloads: torch's downloader is replaced by one that fails
the test. The photos are cvat-aa-testing's demo photos, scaled down; install the fixtures'
dependencies with ``pip install 'cvat-aa-torch[testing]'``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import PIL.Image
import pytest

try:
    from cvat_aa_testing import demo_images
except ImportError as ex:
    if ex.name != "cvat_aa_testing":
        raise  # installed, but broken
    raise ImportError(
        "cvat_aa_torch.testing takes its photos from cvat-aa-testing:"
        " pip install 'cvat-aa-torch[testing]'",
        name=__name__,
    ) from ex

__all__ = [
    "demo_image",
    "no_downloads",
    "photo",
    "photos",
    "save_random_weights",
    "torch_home",
    "weights_path",
]


def demo_image(name: str, size: tuple[int, int]) -> PIL.Image.Image:
    """One of cvat-aa's demo photos, scaled down: small images keep the models fast."""
    (path,) = (path for path in demo_images() if path.name == name)
    with PIL.Image.open(path) as image:
        return image.convert("RGB").resize(size)


def save_random_weights(model_name: str, torch_home: Path, *, seed: int = 0) -> Path:
    """Save a randomly initialised ``model_name`` where torchvision caches its DEFAULT weights.

    The file serves both as a ``weights_path`` and as the cached download that code asking
    for the pretrained weights (cvat-sdk's functions, say) finds under ``TORCH_HOME``.
    """
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    path = Path(torch_home) / "hub" / "checkpoints" / os.path.basename(weights.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    builder = torchvision.models.get_model_builder(model_name)
    kwargs = {"weights": None, "num_classes": len(weights.meta["categories"])}
    if "weights_backbone" in inspect.signature(builder).parameters:
        kwargs["weights_backbone"] = None
    torch.manual_seed(seed)
    torch.save(builder(**kwargs).state_dict(), path)
    return path


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if torch tries to download anything."""
    import torch

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory: pytest.TempPathFactory, model_name: str) -> Path:
    """A TORCH_HOME whose cache holds random weights for ``model_name``."""
    home = tmp_path_factory.mktemp("torch-home")
    save_random_weights(model_name, home)
    return home


@pytest.fixture(scope="session")
def weights_path(torch_home: Path) -> str:
    """The random weights file in ``torch_home``, for a function's ``weights_path``."""
    (path,) = (torch_home / "hub" / "checkpoints").iterdir()
    return str(path)


@pytest.fixture(scope="session")
def photo() -> PIL.Image.Image:
    return demo_image("chelsea_cat.jpg", (160, 120))


@pytest.fixture(scope="session")
def photos() -> list[PIL.Image.Image]:
    """Frames of two sizes, like a task mixing cameras."""
    return [
        demo_image("chelsea_cat.jpg", (160, 120)),
        demo_image("coffee.jpg", (150, 100)),
        demo_image("astronaut.jpg", (160, 120)),
    ]
