"""Which weights a function runs, what labels they carry, and reading a weights file safely.

torchvision names every model's weights in an enum (``ResNet18_Weights.IMAGENET1K_V1``) whose
metadata lists the categories, so a function's parameters name weights, and its labels come
from them, without anything being downloaded. A ``weights_path`` file is a state dict that
users copy to machines without network access; it is loaded with ``weights_only=True``,
because a pickled model could run any code when loaded.

torch and torchvision are imported on the first call, so that listing functions stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

__all__ = ["read_state_dict", "resolve_weights", "weights_full_name", "weights_labels"]

# torchvision marks unused ids in its COCO category lists with this name.
_UNUSED_CATEGORY = "N/A"


def resolve_weights(
    model_name: str, weights_name: str, *, valid_models: Sequence[str], kind: str
) -> WeightsEnum:
    """The weights called ``weights_name`` of the torchvision model ``model_name``.

    ``valid_models`` are the models that fit the calling function; ``kind`` names them in
    messages (e.g. ``"detection"``). Unknown names raise ``ValueError`` listing valid ones.
    Nothing is downloaded: weights metadata ships with torchvision.
    """
    import torchvision.models

    if model_name not in valid_models:
        raise ValueError(
            f"{model_name!r} is not a torchvision {kind} model; use one of:"
            f" {', '.join(sorted(valid_models))}"
        )
    weights_enum = torchvision.models.get_model_weights(model_name)
    try:
        return weights_enum[weights_name]
    except KeyError:
        raise ValueError(
            f"model {model_name!r} has no weights named {weights_name!r}; use one of:"
            f" {', '.join(weights_enum.__members__)}"
        ) from None


def weights_labels(weights: WeightsEnum, *, has_background: bool) -> list[tuple[int, str]]:
    """The (id, name) of each category in the weights' metadata, ids being model class ids.

    Unused ids ("N/A" in torchvision's COCO lists) are skipped without shifting the others.
    With ``has_background``, id 0 is the background class, which the model never outputs,
    and is skipped too.
    """
    return [
        (label_id, name)
        for label_id, name in enumerate(weights.meta["categories"])
        if name != _UNUSED_CATEGORY and not (has_background and label_id == 0)
    ]


def weights_full_name(weights: WeightsEnum) -> str:
    """The weights' full name, e.g. ``ResNet18_Weights.IMAGENET1K_V1``."""
    return f"{type(weights).__name__}.{weights.name}"


def read_state_dict(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The state dict saved in ``path`` (``torch.save(model.state_dict(), path)``), on the CPU.

    Only tensors and plain containers are unpickled (``weights_only=True``). A missing file,
    or one that is not such a state dict, raises ``ValueError`` saying how to save one.
    """
    import torch

    if not os.path.isfile(path):
        raise ValueError(f"weights file {os.fspath(path)!r} does not exist")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as ex:
        # torch's own message suggests weights_only=False, which would run code from the
        # file: not advice to pass on.
        raise ValueError(
            f"weights file {os.fspath(path)!r} is not a state dict that torch can load safely"
            " (with weights_only=True); save it with torch.save(model.state_dict(), path)"
        ) from ex
    if not isinstance(state_dict, Mapping):
        # A bad file is a bad parameter value, reported like the others.
        raise ValueError(  # noqa: TRY004
            f"weights file {os.fspath(path)!r} holds a {type(state_dict).__name__}, not a state"
            " dict; save it with torch.save(model.state_dict(), path)"
        )
    return state_dict
