"""The ``device`` parameter of torch-based functions: which torch device a model runs on.

Every torch plugin takes the same ``device`` values (``auto``, ``cpu``, ``cuda``, ``cuda:N``)
and reports a device this machine lacks in the same words, before any model is loaded, so
they are resolved here once. torch is imported on the first call: plugins import this module
when they are listed, and listing must stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]


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
