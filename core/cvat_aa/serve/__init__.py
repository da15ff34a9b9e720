"""``cvat-aa serve``: installed functions, usable from CVAT's own UI without Nuclio.

CVAT's lambda manager (its "Models" page, "Automatic annotation" on a task, "AI Tools" on a
frame: detectors, interactors and trackers) calls functions through a Nuclio dashboard. :class:`Gateway` speaks that dashboard's
API (and takes Nuclio's direct calls too), so pointing CVAT's ``CVAT_NUCLIO_HOST`` and
``CVAT_NUCLIO_PORT`` at it is all a self-hosted CVAT needs.

* :mod:`.nuclio`: the function configs CVAT reads and the payloads and results it exchanges,
  for each kind of function;
* :mod:`.functions`: :class:`ServedFunction`, one function of any kind loaded once: a
  detection function's requests batched through the same hook and validation as every run,
  here or on Ray actors; an interaction or tracking function's calls run one at a time
  through the core's ``Interactor`` (its preprocessed-frame cache) or ``Tracker`` (its states);
* :mod:`.gateway`: the HTTP server, its token and its request log;
* :mod:`.metrics`: requests, errors, latency, batch sizes and image cache hits.

From Python::

    from cvat_aa.serve import FunctionChoice, Gateway, ServedFunction

    functions = [ServedFunction(FunctionChoice(source="torchvision_detection"))]
    with Gateway(functions, port=8070) as gateway:
        ...  # CVAT calls gateway.url
"""

from .functions import FunctionChoice, ServedFunction, ServerBusyError
from .gateway import Gateway, is_loopback
from .metrics import Metrics
from .nuclio import BadRequestError

__all__ = [
    "BadRequestError",
    "FunctionChoice",
    "Gateway",
    "Metrics",
    "ServedFunction",
    "ServerBusyError",
    "is_loopback",
]
