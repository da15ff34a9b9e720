"""Finding and loading the Ultralytics model that a function runs: a weights file or a stock name.

A local weights file is loaded without touching the network. A stock model name (one that
Ultralytics publishes, such as ``yolov8n.pt``) is downloaded by Ultralytics on first use, into
the current directory, and loaded from there afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import PIL.Image

if TYPE_CHECKING:
    from ultralytics import YOLO

__all__ = ["COCO_KEYPOINT_NAMES", "keypoint_names", "load_model"]

logger = logging.getLogger(__name__)

#: The point names of COCO's person keypoints, in the order that COCO-trained pose models use.
COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# Ultralytics' switch for its network use: the connectivity probe it runs on import, usage
# analytics, and installing missing requirements. Early 8.4 releases accept only "true".
_OFFLINE_ENV = "YOLO_OFFLINE"


def load_model(model: str | os.PathLike[str]) -> YOLO:
    """The Ultralytics model that ``model`` names: a local weights file or a stock model name.

    A ``.pt`` file that exists is loaded offline: unless ``YOLO_OFFLINE`` is set already, it is
    set before Ultralytics is first imported, so that Ultralytics does not probe the network.
    Any other value must be a stock model name, which Ultralytics downloads when it is not in
    the current directory. Raises ``ValueError`` with what to do next when neither works.
    """
    text = os.fspath(model)
    path = Path(text)
    if path.is_file():
        return _load_file(path)
    if path.exists():
        raise ValueError(f"model {text!r} is a directory; give a .pt weights file")
    if os.sep in text or (os.altsep and os.altsep in text) or path.is_absolute():
        raise ValueError(f"weights file {text!r} does not exist")
    return _load_stock_model(text)


def import_ultralytics(*, offline: bool) -> None:
    """Import Ultralytics for the first time without its side effects on the process.

    * With ``offline``, ``YOLO_OFFLINE`` is set first (unless the user set it).
    * Ultralytics logs to the ``sys.stdout`` it finds when first imported (a settings note the
      first time it runs on a machine, then progress): imported with stdout sent to stderr, it
      keeps writing there, and cvat-aa's own output (``--json``) stays clean.
    * Ultralytics replaces ``PIL.Image.open`` for the whole process with a version that, on a
      file PIL cannot identify, tries to install ``pi-heif`` and then raises
      ``ModuleNotFoundError``: cvat-aa's reading of unreadable images (and every other
      function in the process) must keep PIL's own, so it is put back.
    """
    if "ultralytics" in sys.modules:
        return
    if offline:
        os.environ.setdefault(_OFFLINE_ENV, "true")
    pil_open = PIL.Image.open
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import ultralytics  # noqa: F401
    finally:
        PIL.Image.open = pil_open


def _load_file(path: Path) -> YOLO:
    if path.suffix != ".pt":
        raise ValueError(
            f"model {str(path)!r} is not a .pt file; this function runs Ultralytics YOLO models"
            " saved in their PyTorch format (exported formats such as ONNX are not supported)"
        )
    import_ultralytics(offline=True)
    from ultralytics import YOLO

    try:
        return YOLO(path)
    except Exception as ex:
        raise ValueError(
            f"{str(path)!r} is not an Ultralytics YOLO weights file that can be loaded:"
            f" {_brief(ex)}"
        ) from ex


def _load_stock_model(name: str) -> YOLO:
    import_ultralytics(offline=False)
    from ultralytics import YOLO
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    if not Path(name).suffix and f"{name}.pt" in GITHUB_ASSETS_NAMES:
        name = f"{name}.pt"
    if name not in GITHUB_ASSETS_NAMES or not name.endswith(".pt"):
        raise ValueError(
            f"model {name!r} is neither an existing weights file nor a stock Ultralytics model"
            " name (such as yolov8n.pt, yolov8n-seg.pt, yolo11n-pose.pt); check the path"
        )
    logger.debug("loading stock model %s (Ultralytics downloads it on first use)", name)
    try:
        return YOLO(name)
    except ConnectionError as ex:
        raise ValueError(
            f"could not download the stock model {name!r}: {_brief(ex)} Without internet"
            f" access, download {name} on a machine that has it and pass the file:"
            f" -p model=str:/path/to/{name}"
        ) from ex
    except Exception as ex:
        raise ValueError(
            f"Ultralytics could not load the stock model {name!r}: {_brief(ex)}"
        ) from ex


def _brief(error: Exception) -> str:
    """Ultralytics' messages, without their decorations and advice for its own CLI."""
    text = str(error).removeprefix("ERROR").lstrip(" \N{CROSS MARK}\N{VARIATION SELECTOR-16}")
    text = " ".join(text.split()).split(" Recommended fixes")[0]
    return text or type(error).__name__


def keypoint_names(model: YOLO) -> dict[int, list[str]]:
    """The names of each class's keypoints in a pose model, by class id.

    Models trained by recent Ultralytics versions carry names from their dataset; others get
    COCO's names when they have 17 keypoints (as the stock pose models do) and ``kp0``,
    ``kp1``... otherwise. Ultralytics' placeholder names ("0", "1"...) count as none.
    """
    # The pose head's own shape: the model's attribute is missing in some Ultralytics versions.
    count = int(model.model.model[-1].kpt_shape[0])
    own = getattr(model.model, "kpt_names", None) or {}
    placeholders = [str(i) for i in range(count)]
    if count == len(COCO_KEYPOINT_NAMES):
        fallback = list(COCO_KEYPOINT_NAMES)
    else:
        fallback = [f"kp{i}" for i in range(count)]
    names = {}
    for class_id in model.names:
        given = [str(name) for name in own.get(class_id, [])]
        names[class_id] = given if len(given) == count and given != placeholders else fallback
    return names
