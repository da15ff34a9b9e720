"""The documentation keeps up with the code: every hook and CLI command is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from cvat_aa import hookspecs
from cvat_aa.cli import build_parser
from cvat_aa.cli.errors import ExitCode

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS = [
    (name, obj)
    for name, obj in vars(hookspecs).items()
    if name.startswith("cvat_aa_") and callable(obj)
]


def test_there_are_hooks_to_check():
    assert {name for name, _ in HOOKS} >= {"cvat_aa_spec", "cvat_aa_detect"}


@pytest.mark.parametrize(("name", "hook"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hook_is_documented_with_its_arguments(name, hook):
    guide = (DOCS / "plugin-author-guide.md").read_text()
    arguments = ", ".join(inspect.signature(hook).parameters)
    assert f"### {name}({arguments})" in guide, f"document {name}({arguments}) in the guide"


@pytest.mark.parametrize(("name", "hook"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hook_has_a_contract_docstring(name, hook):
    doc = inspect.getdoc(hook) or ""
    for parameter in inspect.signature(hook).parameters:
        assert f":param {parameter}:" in doc, f"{name}'s docstring must describe {parameter}"


def _commands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


def test_every_cli_command_is_in_the_reference():
    reference = (DOCS / "cli.md").read_text()
    for command in _commands(build_parser()):
        assert f"cvat-aa {' '.join(command)}" in reference


def test_every_exit_code_is_in_the_reference():
    reference = (DOCS / "cli.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\|\s*{int(code)}\s*\|", reference, re.MULTILINE), (
            f"exit code {int(code)}"
        )
