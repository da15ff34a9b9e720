"""Errors live in one module, under one base class."""

import ast
from pathlib import Path

import cvat_sdk.auto_annotation as sdk_aa

import cvat_aa
from cvat_aa import errors

CORE = Path(cvat_aa.__file__).parent


def test_every_exception_class_of_the_core_is_defined_in_cvat_aa_errors():
    defined_elsewhere = []
    for path in CORE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == CORE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                defined_elsewhere.append(f"{path.relative_to(CORE)}: {node.name}")
    assert defined_elsewhere == [], "define errors in cvat_aa/errors.py"


def test_every_error_is_a_cvat_aa_error_and_keeps_its_builtin_base():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.CvatAaError), name
    assert issubclass(errors.NoDataError, ValueError)
    assert issubclass(errors.UnknownFunctionError, LookupError)
    assert issubclass(errors.FunctionFailedError, RuntimeError)


def test_bad_function_errors_are_cvat_sdks_too():
    assert issubclass(cvat_aa.BadFunctionError, sdk_aa.BadFunctionError)
    assert issubclass(errors.LabelMismatchError, sdk_aa.BadFunctionError)


def test_the_old_import_locations_still_work():
    from cvat_aa.driver.task_frames import NoDataError
    from cvat_aa.driver.journal import JournalError
    from cvat_aa.interface import BadFunctionError
    from cvat_aa.plugins import UnknownFunctionError

    assert NoDataError is errors.NoDataError
    assert JournalError is errors.JournalError
    assert BadFunctionError is errors.BadFunctionError
    assert UnknownFunctionError is errors.UnknownFunctionError
