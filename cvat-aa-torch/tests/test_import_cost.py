"""Importing cvat_aa_torch does not import torch: ``cvat-aa functions list`` imports every
installed plugin, and with it this package, and must stay fast.

Each check runs in a fresh interpreter, since what matters is what an import brings in.
"""

import subprocess
import sys

import pytest

MODULES = [
    "cvat_aa_torch",
    "cvat_aa_torch.batching",
    "cvat_aa_torch.device",
    "cvat_aa_torch.torchvision_function",
    "cvat_aa_torch.torchvision_models",
    "cvat_aa_torch.weights",
]


@pytest.mark.parametrize("module", MODULES)
def test_importing_the_module_does_not_import_torch(module):
    code = f"import sys, {module}; print(sorted({{'torch', 'torchvision'}} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert (result.stdout, result.stderr) == ("[]\n", "")
