"""Offline fixtures: a detector with random weights, saved where torchvision caches weights."""

import os

import PIL.Image
import pytest
import torch
import torchvision
from cvat_aa.testing import demo_images


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(url, *args, **kwargs):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory, model_name):
    """A TORCH_HOME whose cache holds random weights for ``model_name`` (a fixture of the test
    module), as if torchvision had downloaded them; the same file serves as ``weights_path``."""
    home = tmp_path_factory.mktemp("torch-home")
    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    path = home / "hub" / "checkpoints" / os.path.basename(weights.url)
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    model = torchvision.models.get_model(
        model_name, weights=None, weights_backbone=None, num_classes=len(weights.meta["categories"])
    )
    torch.save(model.state_dict(), path)
    return home


@pytest.fixture(scope="session")
def weights_path(torch_home):
    (path,) = (torch_home / "hub" / "checkpoints").iterdir()
    return str(path)


def demo_image(name, size):
    """One of cvat-aa's demo photos, scaled down: small images keep the models fast."""
    (path,) = (path for path in demo_images() if path.name == name)
    with PIL.Image.open(path) as image:
        return image.convert("RGB").resize(size)


@pytest.fixture(scope="session")
def photo():
    return demo_image("chelsea_cat.jpg", (160, 120))


@pytest.fixture(scope="session")
def photos():
    """Frames of two sizes, like a task mixing cameras."""
    return [
        demo_image("chelsea_cat.jpg", (160, 120)),
        demo_image("coffee.jpg", (150, 100)),
        demo_image("astronaut.jpg", (160, 120)),
    ]
