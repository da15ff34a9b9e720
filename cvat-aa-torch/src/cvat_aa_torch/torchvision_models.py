"""torchvision models: which ones a function can run, and building one, offline if need be.

A builder given weights derives the architecture from them (class and keypoint counts, frozen
batch norm, input transforms, image size) and then fetches them, which downloads. With a
``weights_path``, :func:`build_model` answers that fetch with the file's state dict, so the
architecture is exactly the one the weights define and no network is touched.

torchvision is imported on the first call, so that listing functions stays fast.
"""

from __future__ import annotations

import os
import threading
import typing
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

from .weights import read_state_dict, weights_full_name

if TYPE_CHECKING:
    import torch
    from torchvision.models import WeightsEnum

__all__ = ["build_model", "models_of_kind"]

# Guards the short time during which build_model answers a weights' get_state_dict().
_state_dict_lock = threading.Lock()


def models_of_kind(module: ModuleType, builds: type | None = None) -> list[str]:
    """Names of the torchvision models defined in ``module`` (e.g. ``torchvision.models``).

    With ``builds``, only the models whose builder returns a subclass of it (e.g.
    ``MaskRCNN``).
    """
    import torchvision.models

    names = torchvision.models.list_models(module=module)
    if builds is None:
        return names
    return [
        name
        for name in names
        if issubclass(
            typing.get_type_hints(torchvision.models.get_model_builder(name)).get("return", object),
            builds,
        )
    ]


def build_model(
    model_name: str,
    weights: WeightsEnum,
    *,
    weights_path: str | os.PathLike[str] | None = None,
    device: torch.device,
    **model_kwargs: Any,
) -> torch.nn.Module:
    """Build ``model_name`` with ``weights``, in eval mode, on ``device``.

    Without ``weights_path``, torchvision loads the weights from its cache, downloading them
    on first use. With it, the state dict comes from that file (:func:`read_state_dict`) and
    no network is touched. ``model_kwargs`` go to the model's constructor (e.g.
    ``box_score_thresh``).
    """
    import torchvision.models

    builder = torchvision.models.get_model_builder(model_name)
    if weights_path is None:
        try:
            model = _call_builder(builder, model_name, weights, model_kwargs)
        except (URLError, ConnectionError, TimeoutError) as ex:
            raise ValueError(
                f"could not download the {weights_full_name(weights)} weights of"
                f" {model_name!r} ({_brief(ex)}). Without internet access, copy a state-dict"
                " file to this machine and pass it: -p weights_path=str:/path/to/weights.pth"
            ) from ex
    else:
        state_dict = read_state_dict(weights_path)
        with _state_dict_lock:
            weights.get_state_dict = lambda *args, **kwargs: state_dict
            try:
                model = _call_builder(builder, model_name, weights, model_kwargs)
            except RuntimeError as ex:
                raise ValueError(
                    f"weights file {os.fspath(weights_path)!r} does not fit model"
                    f" {model_name!r} with weights {weights_full_name(weights)!r}: {_brief(ex)}"
                ) from ex
            finally:
                del weights.get_state_dict
    return model.eval().to(device)


def _brief(error: Exception, limit: int = 300) -> str:
    """torch's error messages can list hundreds of state-dict keys: keep the start."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _call_builder(
    builder: Any, model_name: str, weights: WeightsEnum, model_kwargs: Mapping[str, Any]
) -> torch.nn.Module:
    try:
        return builder(weights=weights, **model_kwargs)
    except TypeError as ex:
        # Unknown constructor keywords end up here; name them for the user.
        raise ValueError(
            f"model {model_name!r} rejected the parameters"
            f" {', '.join(sorted(model_kwargs)) or '(none)'}: {ex}"
        ) from ex
