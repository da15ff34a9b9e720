"""The torch helpers moved out of the core: the old names still work, and the core never
imports torch.

Each import check runs in a fresh interpreter, since what matters is what an import brings in.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import cvat_aa

CORE = Path(cvat_aa.__file__).parent


def python(code: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *options, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_torchvision_support_is_deprecated_and_gives_cvat_aa_torchs_objects():
    result = python(
        """
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from cvat_aa.torchvision_support import TorchvisionFunction, resolve_device
        import cvat_aa_torch

        assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
            "cvat_aa.torchvision_support is deprecated: import cvat_aa_torch instead (the"
            " cvat-aa-torch distribution: pip install cvat-aa-torch)"
        ], caught
        assert TorchvisionFunction is cvat_aa_torch.TorchvisionFunction
        assert resolve_device is cvat_aa_torch.resolve_device
        """
    )
    assert result.returncode == 0, result.stderr


def test_offline_models_is_deprecated_and_is_cvat_aa_torch_testing_under_another_name():
    result = python(
        """
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from cvat_aa.testing.offline_models import no_downloads, save_random_weights
            import cvat_aa.testing.offline_models
        import cvat_aa_torch.testing

        messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
        assert (
            "cvat_aa.testing.offline_models is deprecated: import cvat_aa_torch.testing"
            " instead (pip install 'cvat-aa-torch[testing]')"
        ) in messages, messages
        assert cvat_aa.testing.offline_models is cvat_aa_torch.testing
        assert no_downloads is cvat_aa_torch.testing.no_downloads
        assert save_random_weights is cvat_aa_torch.testing.save_random_weights
        """
    )
    assert result.returncode == 0, result.stderr


def test_without_cvat_aa_torch_the_old_name_says_what_to_install():
    result = python(
        """
        import sys

        sys.modules["cvat_aa_torch"] = None  # as if it were not installed
        import cvat_aa.torchvision_support
        """,
        "-W",
        "ignore::DeprecationWarning",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: cvat_aa.torchvision_support moved to the cvat-aa-torch distribution:"
        " pip install cvat-aa-torch"
    )


def test_without_cvat_aa_torch_the_old_fixtures_module_says_what_to_install():
    result = python(
        """
        import sys

        sys.modules["cvat_aa_torch"] = None  # as if it were not installed
        import cvat_aa.testing.offline_models
        """,
        "-W",
        "ignore::DeprecationWarning",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: cvat_aa.testing.offline_models moved to the cvat-aa-torch distribution:"
        " pip install 'cvat-aa-torch[testing]'"
    )


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.partition(".")[0])
    return modules


def test_no_module_of_the_core_imports_torch():
    importers = {
        str(path.relative_to(CORE.parent)): sorted(found)
        for path in sorted(CORE.rglob("*.py"))
        if (found := imported_modules(path) & {"torch", "torchvision"})
    }
    assert importers == {}
