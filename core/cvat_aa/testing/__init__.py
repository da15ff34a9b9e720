"""Deprecated: the test server is the ``cvat-aa-testing`` distribution, ``cvat_aa_testing``.

``cvat_aa.testing`` and its modules (``cvat_aa.testing.server``, ``.sandbox``,
``.pytest_plugin``...) still import, with a ``DeprecationWarning``: each is the module of the
same name in ``cvat_aa_testing``, the same object under a second name, so classes and
functions are the same ones whichever name they were imported by. Without cvat-aa-testing
installed, importing this package says how to install it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

_TARGET = "cvat_aa_testing"
_INSTALL = "pip install 'cvat-aa[testing]'"

warnings.warn(
    f"cvat_aa.testing is deprecated: import {_TARGET} instead (the cvat-aa-testing"
    f" distribution: {_INSTALL})",
    DeprecationWarning,
    stacklevel=2,
)

try:
    import cvat_aa_testing
except ImportError as ex:
    if ex.name != _TARGET:
        raise  # installed, but broken
    raise ImportError(
        f"the test server moved to the cvat-aa-testing distribution: {_INSTALL}",
        name=__name__,
    ) from ex

__all__ = list(cvat_aa_testing.__all__)


def __getattr__(name: str) -> Any:
    return getattr(cvat_aa_testing, name)


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``cvat_aa.testing.X`` as ``cvat_aa_testing.X``: one module, two names.

    Consulted before the ordinary finders, which would otherwise load a second copy of a
    module of a subpackage (``cvat_aa.testing.storage.tasks``) from cvat_aa_testing's folder;
    a name that cvat_aa_testing lacks is left to them, so a module that still lives in this
    folder is imported from here.
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        prefix = f"{__name__}."
        if not fullname.startswith(prefix):
            return None
        if importlib.util.find_spec(f"{_TARGET}.{fullname.removeprefix(prefix)}") is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def exec_module(self, module: ModuleType) -> None:
        # The import system takes whatever sys.modules holds under the name once this
        # returns, so the placeholder module gives way to the real one.
        real = importlib.import_module(f"{_TARGET}.{module.__name__.removeprefix(__name__ + '.')}")
        sys.modules[module.__name__] = real


if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
