"""Offline fixtures: Ultralytics models with random weights, built from its bundled configs.

Ultralytics reads its settings directory and the ``YOLO_OFFLINE`` switch when it is first
imported, so the tests import it only inside fixtures and tests, after ``ultralytics_env``.
"""

import socket

import pytest
import torch

# Shared with every model plugin.
from cvat_aa_torch.testing import photo, photos  # noqa: F401

LOOPBACK = {"localhost", "127.0.0.1", "::1"}

#: Small model inputs keep the tests fast; the photos are larger, so coordinates must be scaled.
IMGSZ = 96


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


def build_model(config, path, *, names, kpt_shape=None, kpt_names=None):
    """Build a model from an Ultralytics config with random weights and save it to ``path``.

    Its classes get ``names``. Random weights score every box about equally, near 0 for every
    class; the first class is raised to about 0.27, just above Ultralytics' default threshold,
    so that the model finds objects.
    """
    from ultralytics import YOLO
    from ultralytics.data.augment import classify_transforms

    torch.manual_seed(0)
    yolo = YOLO(config)
    extra = {} if kpt_shape is None else {"data_kpt_shape": kpt_shape}
    model = type(yolo.model)(config, nc=len(names), verbose=False, **extra)
    # What Ultralytics' trainers record on the models they save.
    model.args, model.task = yolo.model.args, yolo.model.task
    model.names = dict(enumerate(names))
    if kpt_shape is not None:
        model.kpt_shape = list(kpt_shape)
    if kpt_names is not None:
        model.kpt_names = kpt_names
    if model.task == "classify":
        model.transforms = classify_transforms(IMGSZ)
    head = model.model[-1]
    # NMS-free heads (YOLO26) score boxes with their own one-to-one branches.
    for branch in [*getattr(head, "cv3", []), *getattr(head, "one2one_cv3", [])]:
        with torch.no_grad():
            branch[-1].bias.fill_(-6.0)
            branch[-1].bias[0] = -1.0
    yolo.model = model
    yolo.save(path)
    return str(path)


#: The models the tests run: an Ultralytics config and how to build it.
MODELS = {
    "detect": ("yolov8n.yaml", {"names": ["person", "car", "cat"]}),
    "segment": ("yolov8n-seg.yaml", {"names": ["person", "car", "cat"]}),
    "pose": ("yolov8n-pose.yaml", {"names": ["person"], "kpt_shape": (17, 3)}),
    "obb": ("yolov8n-obb.yaml", {"names": ["plane", "ship", "vehicle"]}),
    "classify": ("yolov8n-cls.yaml", {"names": ["cat", "dog", "teapot"]}),
    "pose-xy": ("yolov8n-pose.yaml", {"names": ["hand"], "kpt_shape": (5, 2)}),
    "pose-named": (
        "yolov8n-pose.yaml",
        {"names": ["fish"], "kpt_shape": (3, 3), "kpt_names": {0: ["head", "fin", "tail"]}},
    ),
    "depth": ("yolo26n-depth.yaml", {"names": ["depth"]}),
    "yolo11": ("yolo11n.yaml", {"names": ["person", "car", "cat"]}),
    "yolo26": ("yolo26n.yaml", {"names": ["person", "car", "cat"]}),
}


@pytest.fixture(scope="session")
def model_file(tmp_path_factory, ultralytics_env):
    """A function giving the path of a saved model of ``MODELS`` (built on first use)."""
    directory = tmp_path_factory.mktemp("ultralytics-models")
    built = {}

    def model_file(kind):
        if kind not in built:
            config, options = MODELS[kind]
            built[kind] = build_model(config, directory / f"{kind}.pt", **options)
        return built[kind]

    return model_file


@pytest.fixture(scope="session")
def yolo_function(model_file):
    """A function giving the (shared) function that runs a model of ``MODELS`` on the CPU."""
    from cvat_aa_ultralytics_yolo import UltralyticsYoloFunction

    functions = {}

    def yolo_function(kind):
        if kind not in functions:
            functions[kind] = UltralyticsYoloFunction(model_file(kind), device="cpu", imgsz=IMGSZ)
        return functions[kind]

    return yolo_function
