"""What torch-based cvat-aa function plugins share, so that each plugin holds only its model.

- :mod:`.device`: :func:`resolve_device`, the ``device`` parameter of every torch plugin.
- :mod:`.batching`: :func:`batch_indices`, which frames run together, and :func:`to_device`,
  asynchronous host-to-device copies.
- :mod:`.weights`: torchvision weights by name and their labels, and :func:`read_state_dict`,
  which loads a ``weights_path`` file without running code from it.
- :mod:`.torchvision_models`: torchvision models by kind, built offline from such a file.
- :mod:`.torchvision_function`: :class:`TorchvisionFunction`, the base class of the
  torchvision plugins.
- :mod:`.testing`: offline pytest fixtures for plugins' test suites (not imported here).

torch and torchvision are imported only when a function is built or run: plugins import this
package whenever ``cvat-aa`` lists the installed functions, which must stay fast.
"""

from __future__ import annotations

from .batching import batch_indices, to_device
from .device import resolve_device
from .torchvision_function import TorchvisionFunction
from .torchvision_models import build_model, models_of_kind
from .weights import read_state_dict, resolve_weights, weights_labels

__all__ = [
    "TorchvisionFunction",
    "batch_indices",
    "build_model",
    "models_of_kind",
    "read_state_dict",
    "resolve_device",
    "resolve_weights",
    "to_device",
    "weights_labels",
]
