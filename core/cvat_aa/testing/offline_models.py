"""Deprecated: the offline model fixtures are ``cvat_aa_torch.testing`` (cvat-aa-torch).

They need torch, so they live with the torch helpers, neither in the core nor in the
torch-free test server. This module is that one under its old name, with a
``DeprecationWarning``; without cvat-aa-torch installed, importing it says how to install it.
"""

from __future__ import annotations

import sys
import warnings

warnings.warn(
    "cvat_aa.testing.offline_models is deprecated: import cvat_aa_torch.testing instead"
    " (pip install 'cvat-aa-torch[testing]')",
    DeprecationWarning,
    stacklevel=2,
)

try:
    import cvat_aa_torch.testing
except ImportError as ex:
    # Missing: cvat-aa-torch, or what its fixtures need (cvat_aa_torch.testing names itself).
    if ex.name not in {"cvat_aa_torch", "cvat_aa_torch.testing"}:
        raise  # installed, but broken
    raise ImportError(
        "cvat_aa.testing.offline_models moved to the cvat-aa-torch distribution:"
        " pip install 'cvat-aa-torch[testing]'",
        name=__name__,
    ) from ex

# One module under two names: its fixtures are the same objects whichever name they came by.
sys.modules[__name__] = cvat_aa_torch.testing
