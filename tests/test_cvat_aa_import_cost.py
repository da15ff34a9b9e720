"""What importing cvat-aa costs: numpy (12 MiB resident) only when a feature needs it."""

from __future__ import annotations

import subprocess
import sys


def test_importing_cvat_aa_does_not_import_numpy():
    # COCO export and mask previews import numpy (and cvat_sdk.masks) when they need it.
    code = "import sys, cvat_aa; sys.exit('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
