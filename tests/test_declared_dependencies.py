"""Every distribution declares what its code imports.

A missing declaration goes unnoticed here, where one environment holds everything, and breaks
``pip install`` elsewhere (``cvat-aa --version`` once crashed with ``No module named 'numpy'``
when no plugin brought numpy). This test reads each distribution's package source and checks
every import against the distribution's own ``pyproject.toml``:

- an import that runs when the module is imported must name a required dependency;
- one that runs later or only sometimes (inside a function, under ``if TYPE_CHECKING:``, in a
  ``try`` that handles ``ImportError``) may also name an optional dependency (an extra), since
  a user who never asks for that feature never needs it;
- modules that only an optional feature loads (:data:`FEATURE_MODULES`) count as "later" too.

``tests/test_isolated_install.py`` installs the wheels into clean virtual environments and runs
them; this check also covers what that test cannot see, such as an undeclared torch in a plugin
whose environment has torch anyway.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECTS = [
    ROOT / "pyproject.toml",
    ROOT / "cvat-aa-testing" / "pyproject.toml",
    ROOT / "cvat-aa-torch" / "pyproject.toml",
    *sorted(ROOT.glob("plugins/*/pyproject.toml")),
    *sorted(ROOT.glob("examples/*/pyproject.toml")),
]

#: Modules loaded only by an optional feature, and what loads them.
FEATURE_MODULES = {
    "cvat_aa_testing.pytest_plugin": "pytest, through the pytest11 entry point",
    "cvat_aa.testing.offline_models": "plugins' test suites, by its deprecated name",
    "cvat_aa_torch.testing": "plugins' test suites",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalize(Requirement(text).name) for text in requirements}


def package_dirs(pyproject: Path, project: dict) -> list[Path]:
    """The top-level packages that the distribution ships (setuptools' ``packages.find``)."""
    find = project.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    roots = [pyproject.parent / where for where in find.get("where", ["."])]
    return sorted(path.parent for root in roots for path in root.glob("*/__init__.py"))


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _handles_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names):
            return True
    return False


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST, *, deferred: bool = False) -> Iterator[tuple[str, int, bool]]:
    """(top-level module, line, deferred) for each absolute import in ``tree``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.partition(".")[0], node.lineno, deferred
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module != "__future__":
                yield node.module.partition(".")[0], node.lineno, deferred
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from imports(node, deferred=True)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                yield from imports(ast.Module(body=[child], type_ignores=[]), deferred=True)
            for child in node.orelse:
                yield from imports(ast.Module(body=[child], type_ignores=[]), deferred=deferred)
        elif isinstance(node, ast.Try) and _handles_import_error(node):
            for child in node.body:
                yield from imports(ast.Module(body=[child], type_ignores=[]), deferred=True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                yield from imports(child, deferred=deferred)
        else:
            yield from imports(node, deferred=deferred)


def undeclared_imports(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())
    required = requirement_names(project["project"].get("dependencies", []))
    optional = required | {
        name
        for extra in project["project"].get("optional-dependencies", {}).values()
        for name in requirement_names(extra)
    }
    packages = package_dirs(pyproject, project)
    assert packages, f"{pyproject} ships no package that this test can find"
    own = {package.name for package in packages}
    providers = metadata.packages_distributions()
    problems = []
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
            feature = module.removesuffix(".__init__") in FEATURE_MODULES
            reported = set()
            for name, line, deferred in imports(ast.parse(path.read_text(), str(path))):
                if name in sys.stdlib_module_names or name in own or name in reported:
                    continue
                where = f"{path.relative_to(pyproject.parent)}:{line} imports {name}"
                distributions = {normalize(d) for d in providers.get(name, [])}
                if not distributions:
                    reported.add(name)
                    problems.append(f"{where}, which no installed distribution provides")
                elif not distributions & (optional if deferred or feature else required):
                    reported.add(name)
                    kind = "an optional or required" if deferred or feature else "a required"
                    problems.append(
                        f"{where}: declare {' or '.join(sorted(distributions))} as {kind}"
                        " dependency"
                    )
    return problems


NAMES = [tomllib.loads(p.read_text())["project"]["name"] for p in PYPROJECTS]


def test_every_distribution_is_checked():
    names = set(NAMES)
    assert {
        "cvat-aa",
        "cvat-aa-testing",
        "cvat-aa-torch",
        "cvat-aa-face-detection",
        "cvat-aa-ultralytics-yolo",
        "cvat-aa-segment-anything",
        "cvat-aa-opencv-tracker",
    } <= names
    assert len(names) == len(PYPROJECTS) >= 11


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=NAMES)
def test_every_import_is_a_declared_dependency(pyproject):
    assert undeclared_imports(pyproject) == []


def test_the_check_catches_a_module_level_import_declared_only_as_an_extra(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["pluggy"]\n'
        '[project.optional-dependencies]\nextra = ["packaging"]\n'
        "[tool.setuptools.packages.find]\nwhere = ['src']\n"
    )
    package = tmp_path / "src" / "cvat_aa_x"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import json\nimport pluggy\nimport packaging\nfrom . import own\n"
        "def later():\n    import packaging.version\n    import attr\n"
    )
    assert undeclared_imports(tmp_path / "pyproject.toml") == [
        "src/cvat_aa_x/__init__.py:3 imports packaging: declare packaging as a required"
        " dependency",
        "src/cvat_aa_x/__init__.py:7 imports attr: declare attrs as an optional or required"
        " dependency",
    ]
