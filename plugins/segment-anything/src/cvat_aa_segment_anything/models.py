"""Which Segment Anything models this plugin runs, and building one from a local weights file.

Ultralytics builds every model of the family (``ultralytics.models.sam.build``), but its
builders download a checkpoint they do not find and unpickle it with ``weights_only=False``,
which can run code from the file. So the architecture is built here without a checkpoint, and
the weights are read by :func:`cvat_aa_torch.read_state_dict` (tensors only) from a file the
user names or one found locally; nothing is ever downloaded.

SAM 2 and SAM 2.1 share the parts that segment a single image; 2.1 adds three tensors that only
video tracking uses. A SAM 2.1 file therefore loads into the SAM 2 architecture, less those.
Ultralytics is imported only when a model is built, so that listing functions stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import PIL.Image
from cvat_aa_torch import read_state_dict

if TYPE_CHECKING:
    import torch

__all__ = ["MODELS", "ModelInfo", "build_model", "find_weights", "load_weights"]

logger = logging.getLogger(__name__)


@attrs.frozen
class ModelInfo:
    """One model of the family: Ultralytics' builder for it, and which predictor runs it."""

    builder: str
    sam2: bool
    #: Ultralytics' name for its weights file (``mobile_sam.pt``), which is looked for locally.
    file_name: str


#: The models, by the name users give as ``model``.
MODELS: dict[str, ModelInfo] = {
    "mobile_sam": ModelInfo("build_mobile_sam", False, "mobile_sam.pt"),
    "sam_b": ModelInfo("build_sam_vit_b", False, "sam_b.pt"),
    "sam_l": ModelInfo("build_sam_vit_l", False, "sam_l.pt"),
    "sam_h": ModelInfo("build_sam_vit_h", False, "sam_h.pt"),
    **{
        f"{version}_{size}": ModelInfo(f"build_sam2_{size}", True, f"{version}_{size}.pt")
        for version in ("sam2", "sam2.1")
        for size in ("t", "s", "b", "l")
    },
}

# What SAM 2.1 has and SAM 2 lacks: used only to track objects through videos.
_VIDEO_ONLY_KEYS = frozenset(
    {"no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias"}
)


# Ultralytics' switch for its network use (a connectivity probe on import, usage analytics,
# installing missing requirements): this plugin never needs the network.
_OFFLINE_ENV = "YOLO_OFFLINE"


def import_ultralytics() -> None:
    """Import Ultralytics for the first time without its side effects on the process.

    * ``YOLO_OFFLINE`` is set first (unless the user set it): Ultralytics reads it on import.
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
    os.environ.setdefault(_OFFLINE_ENV, "true")
    pil_open = PIL.Image.open
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import ultralytics  # noqa: F401
    finally:
        PIL.Image.open = pil_open


def model_info(model: str) -> ModelInfo:
    """The model called ``model``; ``ValueError`` listing the valid names for others."""
    try:
        return MODELS[model]
    except (KeyError, TypeError):
        raise ValueError(f"model must be one of {', '.join(MODELS)}, not {model!r}") from None


def build_model(model: str) -> torch.nn.Module:
    """The architecture of ``model``, with random weights, in evaluation mode."""
    import_ultralytics()
    from ultralytics.models.sam import build

    return getattr(build, model_info(model).builder)(None)


def find_weights(model: str, weights: str | os.PathLike[str] | None) -> Path:
    """The weights file to load: ``weights`` when given, else Ultralytics' file for ``model``
    in the current directory or in Ultralytics' weights directory.

    Raises ``ValueError`` saying what to pass when there is none; never downloads.
    """
    info = model_info(model)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"weights file {os.fspath(weights)!r} does not exist")
        return path
    import_ultralytics()
    from ultralytics.utils import SETTINGS

    places = [Path.cwd(), Path(SETTINGS["weights_dir"])]
    for place in places:
        if (place / info.file_name).is_file():
            return place / info.file_name
    raise ValueError(
        f"model {model!r} needs a weights file, and none was given: pass its path with the"
        f" 'weights' parameter (-p weights=str:/path/to/{info.file_name}). It was looked for as"
        f" {info.file_name} in {' and '.join(str(p) for p in places)}. Nothing is downloaded:"
        f" fetch {info.file_name} from Ultralytics' releases"
        " (https://github.com/ultralytics/assets/releases) on a machine with internet access"
    )


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load the state dict in ``path`` into ``module``, a model that :func:`build_model` built.

    Raises ``ValueError`` when the file is not a state dict of that model.
    """
    state_dict: Mapping[str, Any] = read_state_dict(path)
    # Ultralytics' and Meta's SAM 2 checkpoints nest the weights under "model".
    if isinstance(state_dict.get("model"), Mapping):
        state_dict = state_dict["model"]
    own = module.state_dict().keys()
    state_dict = {k: v for k, v in state_dict.items() if k in own or k not in _VIDEO_ONLY_KEYS}
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as ex:
        missing = sorted(own - state_dict.keys())
        unexpected = sorted(state_dict.keys() - own)
        raise ValueError(
            f"weights file {str(path)!r} does not fit this model ({len(missing)} of its tensors"
            f" missing, {len(unexpected)} unknown, e.g. {(missing + unexpected)[:3]});"
            " check that the 'model' parameter names the model the file was saved from"
        ) from ex
    logger.debug("loaded %s into %s", path, type(module).__name__)
