"""Deprecated: the torch helpers are the ``cvat-aa-torch`` distribution, ``cvat_aa_torch``.

The core does not import torch; what torch-based plugins share (device choice, batching,
weights loading, :class:`TorchvisionFunction`) lives in cvat-aa-torch. The names that were
here still import from here, with a ``DeprecationWarning``, as the same objects; without
cvat-aa-torch installed, importing this module says how to install it.
"""

from __future__ import annotations

import warnings

warnings.warn(
    "cvat_aa.torchvision_support is deprecated: import cvat_aa_torch instead (the"
    " cvat-aa-torch distribution: pip install cvat-aa-torch)",
    DeprecationWarning,
    stacklevel=2,
)

try:
    from cvat_aa_torch import (
        TorchvisionFunction,
        build_model,
        models_of_kind,
        resolve_device,
        resolve_weights,
        weights_labels,
    )
except ImportError as ex:
    if ex.name != "cvat_aa_torch":
        raise  # installed, but broken
    raise ImportError(
        "cvat_aa.torchvision_support moved to the cvat-aa-torch distribution:"
        " pip install cvat-aa-torch",
        name=__name__,
    ) from ex

__all__ = [
    "TorchvisionFunction",
    "build_model",
    "models_of_kind",
    "resolve_device",
    "resolve_weights",
    "weights_labels",
]
