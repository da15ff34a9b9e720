"""The test server moved to cvat-aa-testing: the old names still work, and the core stays light.

Each check runs in a fresh interpreter, since what matters is what an import brings in.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def python(code: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *options, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cvat_aa_testing_is_deprecated_and_is_cvat_aa_testing_under_another_name():
    result = python(
        """
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import cvat_aa.testing
            from cvat_aa.testing import TestServer, demo_images
            from cvat_aa.testing.pytest_plugin import cvat_server
            import cvat_aa.testing.server
            import cvat_aa.testing.storage.tasks
        import cvat_aa_testing, cvat_aa_testing.pytest_plugin, cvat_aa_testing.storage.tasks

        assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
            "cvat_aa.testing is deprecated: import cvat_aa_testing instead (the cvat-aa-testing"
            " distribution: pip install 'cvat-aa[testing]')"
        ], caught
        assert TestServer is cvat_aa_testing.TestServer
        assert demo_images is cvat_aa_testing.demo_images
        assert cvat_server is cvat_aa_testing.pytest_plugin.cvat_server
        assert cvat_aa.testing.server is cvat_aa_testing.server
        assert cvat_aa.testing.storage.tasks is cvat_aa_testing.storage.tasks
        """
    )
    assert result.returncode == 0, result.stderr


def test_without_cvat_aa_testing_the_old_name_says_what_to_install():
    result = python(
        """
        import sys

        sys.modules["cvat_aa_testing"] = None  # as if it were not installed
        import cvat_aa.testing
        """,
        "-W",
        "ignore::DeprecationWarning",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: the test server moved to the cvat-aa-testing distribution:"
        " pip install 'cvat-aa[testing]'"
    )


def test_the_command_line_loads_the_sandbox_command_but_not_the_server():
    result = python(
        """
        import sys
        from cvat_aa.cli import build_parser

        build_parser()
        assert "cvat_aa_testing.sandbox_command" in sys.modules
        loaded = {"werkzeug", "cvat_aa_testing.server", "cvat_aa.testing"} & set(sys.modules)
        assert not loaded, loaded
        """
    )
    assert result.returncode == 0, result.stderr
