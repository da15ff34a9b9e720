"""Support for function plugins that run torchvision models.

The ``torchvision_*`` plugins share what is here: finding a model and its weights by name,
building the model (from a local state-dict file where the network is out of reach), picking
a device, and a base class that turns ``detect``/``detect_batch`` into batched model calls.

torch and torchvision are imported only when a function is built or run, so the core works
without them; the plugins that use this module depend on them.
"""

from __future__ import annotations

import logging
import os
import threading
import typing
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import cached_property
from types import ModuleType
from urllib.error import URLError
from typing import TYPE_CHECKING, Any, ClassVar

from .interface import (
    DetectionAnnotation,
    DetectionFunctionContext,
    DetectionFunctionSpec,
    label_spec,
)

if TYPE_CHECKING:
    import PIL.Image
    import torch
    from cvat_sdk import models
    from torchvision.models import WeightsEnum

__all__ = [
    "TorchvisionFunction",
    "build_model",
    "models_of_kind",
    "resolve_device",
    "resolve_weights",
    "weights_labels",
]

logger = logging.getLogger(__name__)

# torchvision marks unused ids in its COCO category lists with this name.
_UNUSED_CATEGORY = "N/A"


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device named by ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` picks the first CUDA device when there is one, the CPU otherwise. Asking for a
    CUDA device that this machine does not have raises ``ValueError``.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    kind, colon, index = device.partition(":")
    if kind != "cuda" or (colon and not index.isdigit()):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was requested, but torch sees no CUDA device here"
            f" (torch {torch.__version__}); use device 'cpu' or 'auto'"
        )
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise ValueError(
            f"device {device!r} was requested, but this machine has {count} CUDA device(s)"
            f" (cuda:0 to cuda:{count - 1})"
        )
    return torch.device(device)


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


def resolve_weights(
    model_name: str, weights_name: str, *, valid_models: Sequence[str], kind: str
) -> WeightsEnum:
    """The weights called ``weights_name`` of the model ``model_name``.

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


# Guards the short time during which build_model answers a weights' get_state_dict().
_state_dict_lock = threading.Lock()


def _read_state_dict(path: str | os.PathLike[str]) -> Mapping[str, Any]:
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
    on first use. With it, the state dict comes from that file and no network is touched.
    ``model_kwargs`` go to the model's constructor (e.g. ``box_score_thresh``).
    """
    import torchvision.models

    builder = torchvision.models.get_model_builder(model_name)
    if weights_path is None:
        try:
            model = _call_builder(builder, model_name, weights, model_kwargs)
        except (URLError, ConnectionError, TimeoutError) as ex:
            raise ValueError(
                f"could not download the {_weights_name(weights)} weights of {model_name!r}"
                f" ({_brief(ex)}). Without internet access, copy a state-dict file to this"
                " machine and pass it: -p weights_path=str:/path/to/weights.pth"
            ) from ex
    else:
        state_dict = _read_state_dict(weights_path)
        # A builder given weights derives the architecture from them (class and keypoint
        # counts, frozen batch norm, input transforms, image size) and then fetches them with
        # weights.get_state_dict(), which downloads. Answering that one call with the local
        # state dict keeps the architecture exactly as the weights define it, offline.
        with _state_dict_lock:
            weights.get_state_dict = lambda *args, **kwargs: state_dict
            try:
                model = _call_builder(builder, model_name, weights, model_kwargs)
            except RuntimeError as ex:
                raise ValueError(
                    f"weights file {os.fspath(weights_path)!r} does not fit model"
                    f" {model_name!r} with weights {_weights_name(weights)!r}: {_brief(ex)}"
                ) from ex
            finally:
                del weights.get_state_dict
    return model.eval().to(device)


def _brief(error: Exception, limit: int = 300) -> str:
    """torch's error messages can list hundreds of state-dict keys: keep the start."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _weights_name(weights: WeightsEnum) -> str:
    """The weights' full name, e.g. ``ResNet18_Weights.IMAGENET1K_V1``."""
    return f"{type(weights).__name__}.{weights.name}"


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


class TorchvisionFunction:
    """Base of a detection function that runs a torchvision model.

    A subclass names the models it supports (:meth:`supported_models`), its label type, and
    how one image's detections become annotations (:meth:`to_annotations`). It may adapt the
    model call (:meth:`forward`), e.g. to turn class scores into one detection.

    Parameters (the plugins' function parameters):

    * ``model_name``: a torchvision model that fits the function, e.g.
      ``fasterrcnn_resnet50_fpn_v2``; an unknown one raises ``ValueError`` listing them.
    * ``weights_name``: the model's weights, e.g. ``COCO_V1``; ``DEFAULT`` is torchvision's
      best. The labels come from their metadata.
    * ``weights_path``: a local file with those weights' state dict, for machines without
      network access; nothing is downloaded. Without it, torchvision loads the weights from
      its cache, downloading them on first use.
    * ``device``: ``auto`` (the first CUDA device when there is one), ``cpu``, ``cuda`` or
      ``cuda:N``.
    * any other keyword goes to the model's constructor, e.g. ``box_score_thresh``.

    The base class resolves the model, weights and device, builds the spec from the weights'
    categories, and implements ``detect`` and ``detect_batch``: inputs go through the
    weights' transforms and run under ``torch.inference_mode`` on the device (see
    :meth:`batches`), and detections scoring below the context's ``conf_threshold`` are
    dropped. Without a threshold, the model's own score threshold applies. Detections of
    classes that are not in the spec (unused "N/A" ids, the background) are dropped too.
    """

    #: Used in messages, e.g. "detection" in "'x' is not a torchvision detection model".
    model_kind: ClassVar[str]
    #: The type of each label in the spec.
    label_type: ClassVar[str]
    #: Whether class id 0 is the background class, which the model never outputs.
    has_background_class: ClassVar[bool] = True

    def __init__(
        self,
        model_name: str,
        weights_name: str = "DEFAULT",
        weights_path: str | os.PathLike[str] | None = None,
        device: str = "auto",
        **model_kwargs: Any,
    ) -> None:
        self.device = resolve_device(device)
        self.weights = resolve_weights(
            model_name, weights_name, valid_models=self.supported_models(), kind=self.model_kind
        )
        self.model = build_model(
            model_name,
            self.weights,
            weights_path=weights_path,
            device=self.device,
            **model_kwargs,
        )
        self.transforms = self.weights.transforms()
        logger.debug("built %s with %s on %s", model_name, _weights_name(self.weights), self.device)

    @classmethod
    def supported_models(cls) -> list[str]:
        """Names of the torchvision models this function can run."""
        raise NotImplementedError

    def label_spec(self, label_id: int, name: str) -> models.PatchedLabelRequest:
        """The spec of one label; subclasses override it to add sublabels."""
        return label_spec(name, label_id, type=self.label_type)

    @cached_property
    def spec(self) -> DetectionFunctionSpec:
        return DetectionFunctionSpec(
            labels=[
                self.label_spec(label_id, name)
                for label_id, name in weights_labels(
                    self.weights, has_background=self.has_background_class
                )
            ]
        )

    def forward(self, batch: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Run the model on transformed same-size images already on the device.

        Returns one dict per image of tensors indexed by detection, with at least ``labels``
        and ``scores``: what torchvision's detection models return, which this default
        implementation passes through.
        """
        return self.model(batch)

    def to_annotations(
        self, context: DetectionFunctionContext, detections: Mapping[str, torch.Tensor]
    ) -> list[DetectionAnnotation]:
        """Turn one image's detections (on the CPU, above the threshold) into annotations."""
        raise NotImplementedError

    def batches(self, inputs: Sequence[torch.Tensor]) -> list[list[int]]:
        """Group transformed inputs (by index) into the batches the model runs on.

        On a GPU, images of the same size run together. Images of different sizes do not:
        the model would pad them to a common size, which changes the detections. On the CPU,
        each image runs alone: batching does not make CPU inference faster, and batched
        kernels round differently, so only this gives exactly ``detect``'s results. (On a GPU,
        batched results can differ from ``detect``'s in the last digits for the same reason.)
        """
        if self.device.type == "cpu":
            return [[index] for index in range(len(inputs))]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, tensor in enumerate(inputs):
            groups[tuple(tensor.shape)].append(index)
        return list(groups.values())

    def detect(
        self, context: DetectionFunctionContext, image: PIL.Image.Image
    ) -> list[DetectionAnnotation]:
        return self.detect_batch([context], [image])[0]

    def detect_batch(
        self,
        contexts: Sequence[DetectionFunctionContext],
        images: Sequence[PIL.Image.Image],
    ) -> list[list[DetectionAnnotation]]:
        import torch

        if len(contexts) != len(images):
            raise ValueError(f"got {len(contexts)} contexts for {len(images)} images")
        inputs = [self.transforms(image) for image in images]
        if self.device.type == "cuda":
            # Page-locked inputs copy to the GPU asynchronously, behind the kernels already
            # queued on the stream, instead of stalling the host on each copy.
            inputs = [tensor.pin_memory() for tensor in inputs]
        results: list[list[DetectionAnnotation]] = [[] for _ in images]
        with torch.inference_mode():
            for group in self.batches(inputs):
                outputs = self.forward(
                    [inputs[i].to(self.device, non_blocking=True) for i in group]
                )
                for index, output in zip(group, outputs, strict=True):
                    detections = self._kept(
                        {key: value.cpu() for key, value in output.items()},
                        contexts[index].conf_threshold,
                    )
                    results[index] = self.to_annotations(contexts[index], detections)
        return results

    @cached_property
    def _label_ids(self) -> torch.Tensor:
        import torch

        return torch.tensor([label.id for label in self.spec.labels])

    def _kept(
        self, detections: Mapping[str, torch.Tensor], conf_threshold: float | None
    ) -> dict[str, torch.Tensor]:
        import torch

        # torchvision's detectors score every class for every box, so at a low score
        # threshold even classes that are no label (unused ids) come up; a function must
        # not return labels outside its spec.
        keep = torch.isin(detections["labels"], self._label_ids)
        if conf_threshold is not None:
            keep &= detections["scores"] >= conf_threshold
        return {key: value[keep] for key, value in detections.items()}
