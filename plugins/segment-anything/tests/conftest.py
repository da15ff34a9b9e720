"""Offline fixtures: Segment Anything models with random weights, built by Ultralytics.

The image encoder is the slow part (seconds on a CPU), so the models, the functions and one
image's embedding are built once per session and shared. Ultralytics reads its settings
directory and ``YOLO_OFFLINE`` when first imported, so the tests import it only inside
fixtures and tests, after ``ultralytics_env``.
"""

import socket

import numpy as np
import PIL.Image
import pytest
import torch

LOOPBACK = {"localhost", "127.0.0.1", "::1"}
#: The test image's size: not square, and smaller than the models' 1024 pixels.
WIDTH, HEIGHT = 160, 120


@pytest.fixture(scope="session", autouse=True)
def ultralytics_env(tmp_path_factory):
    """Keep Ultralytics offline and its settings file out of the user's config directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics-config")))
        patch.setenv("YOLO_OFFLINE", "true")
        yield


@pytest.fixture(autouse=True)
def network_attempts(monkeypatch):
    """The hosts that the test tried to reach; every attempt fails as it would offline."""
    attempts = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            attempts.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"the tests refuse to look up {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture(scope="session")
def image():
    """A grey picture with a bright, textured square in it."""
    rng = np.random.default_rng(0)
    pixels = np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
    pixels[30:80, 50:110] = rng.integers(180, 255, (50, 60, 3), dtype=np.uint8)
    return PIL.Image.fromarray(pixels)


@pytest.fixture(scope="session")
def random_model(ultralytics_env):
    """A function giving the (shared) model called ``name`` with random weights."""
    from cvat_aa_segment_anything.models import build_model

    built = {}

    def random_model(name):
        if name not in built:
            torch.manual_seed(0)
            built[name] = build_model(name)
        return built[name]

    return random_model


@pytest.fixture(scope="session")
def sam_function(random_model):
    """A function giving the (shared) CPU function for a random-weight model: by model name
    and output."""
    from cvat_aa_segment_anything import SegmentAnythingFunction

    functions = {}

    def sam_function(name="mobile_sam", output="mask"):
        if (name, output) not in functions:
            functions[name, output] = SegmentAnythingFunction(
                random_model(name), output=output, device="cpu"
            )
        return functions[name, output]

    return sam_function


@pytest.fixture(scope="session")
def embedding(sam_function, image):
    """A function giving the (shared) embedding of ``image`` by a model, by its name."""
    embeddings = {}

    def embedding(name="mobile_sam"):
        if name not in embeddings:
            embeddings[name] = sam_function(name).preprocess_image(None, image)
        return embeddings[name]

    return embedding


@pytest.fixture(scope="session")
def weights_file(random_model, tmp_path_factory):
    """A function giving a file with the random weights of the model called ``name``."""
    directory = tmp_path_factory.mktemp("sam-weights")
    saved = {}

    def weights_file(name="mobile_sam"):
        if name not in saved:
            saved[name] = directory / f"{name}-random.pt"
            torch.save(random_model(name).state_dict(), saved[name])
        return saved[name]

    return weights_file
