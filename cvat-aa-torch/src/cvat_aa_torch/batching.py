"""Which frames a model runs on together, and getting their tensors onto its device.

Both torch plugin families (torchvision, Ultralytics) batch the same way, for the same
reasons: on a GPU, frames that the model would not have to pad to a common size run together;
on the CPU each frame runs alone, because batching does not make CPU inference faster and
batched kernels round differently, so only single frames are sure to give exactly ``detect``'s
results. What makes frames compatible differs by model, so callers give a key per frame.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["batch_indices", "to_device"]


def batch_indices(keys: Sequence[Hashable], device: torch.device) -> list[list[int]]:
    """Group frames, by index, into the batches a model on ``device`` runs.

    ``keys[i]`` says what frame ``i`` must share with the others of its batch (its size, say,
    and its confidence threshold). On the CPU each frame is a batch of its own; elsewhere the
    frames with equal keys form one batch, in the order of their first frame, each batch
    listing its frames in order.
    """
    if device.type == "cpu":
        return [[index] for index in range(len(keys))]
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key].append(index)
    return list(groups.values())


def to_device(tensors: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Copies of host ``tensors`` on ``device``, queued without waiting for each copy.

    For a CUDA device the tensors are page-locked first: only page-locked memory copies to
    the GPU asynchronously, behind the kernels already queued on the stream, instead of
    stalling the host on each copy.
    """
    if device.type == "cuda":
        tensors = [tensor.pin_memory() for tensor in tensors]
    return [tensor.to(device, non_blocking=True) for tensor in tensors]
