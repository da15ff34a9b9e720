"""The example plugins in examples/ install like any third-party plugin, and uninstall cleanly.

Each test builds a throw-away virtual environment that sees this environment's packages
(cvat-aa, cvat-sdk, OpenCV, pip, setuptools) without reinstalling them, installs an example
into it with pip, and watches ``cvat-aa functions list --json`` there. Where this environment has
the examples installed, the throw-away venv sees this environment without them.
"""

import json
import os
import shutil
import subprocess
import sysconfig
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "face-detection"
DISTRIBUTION = "cvat-aa-face-detection"
FUNCTION = "face_detection"
INTERACTIVE_EXAMPLE = EXAMPLES / "simple-interactors-trackers"
INTERACTIVE_DISTRIBUTION = "cvat-aa-simple-interactors-trackers"
INTERACTIVE_FUNCTIONS = {"colour_region": "interaction", "template_tracker": "tracking"}
HIDDEN = (DISTRIBUTION, INTERACTIVE_DISTRIBUTION)


def _outer_site_view(path: Path) -> list[Path]:
    """This environment's site directories, as seen without the example distributions.

    Each site directory becomes a directory of symbolic links to its entries, less the
    entries that the examples' own installations wrote (their RECORDs), so the throw-away venv
    starts without the examples even where this environment has them installed (the README's
    set-up installs them for the demo).
    """
    views = []
    for n, site_dir in enumerate(
        dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    ):
        # Looked up in this site directory only: the example's tests put its source tree,
        # which may hold an .egg-info, on sys.path.
        own = {
            Path(str(f)).parts[0]
            for dist in metadata.distributions(path=[site_dir])
            if dist.metadata["Name"] in HIDDEN
            for f in dist.files or []
        }
        view = path / f"outer-site-{n}"
        view.mkdir(parents=True)
        for entry in Path(site_dir).iterdir():
            if entry.name not in own:
                (view / entry.name).symlink_to(entry)
        views.append(view)
    return views


def make_throwaway_venv(path: Path) -> Path:
    """Create a venv at ``path`` that also sees this environment's site-packages; its python.

    ``--system-site-packages`` would expose the base interpreter's packages, not this venv's.
    Instead a ``.pth`` file adds (a view of) this environment's site directories after the new
    venv's own, with ``site.addsitedir`` so that their ``.pth`` files (editable installs) take
    effect too. Packages installed into the new venv come first and leave this environment
    untouched.
    """
    venv.EnvBuilder(symlinks=True, with_pip=False).create(path)
    python = path / "bin" / "python"
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    views = _outer_site_view(path.parent / "views")
    lines = "".join(f"import site; site.addsitedir({str(d)!r})\n" for d in views)
    (Path(site_packages) / "_outer_environment.pth").write_text(lines)
    return python


def run(python: Path, *args: str, load: str = FUNCTION) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "CVAT_AA_"))}
    env.update(
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        # Only the example is imported: the listing stays fast and independent of whatever
        # else this environment has installed.
        CVAT_AA_LOAD_PLUGINS=load,
    )
    result = subprocess.run([python, *args], check=False, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def listed_functions(python: Path, load: str = FUNCTION) -> dict[str, dict]:
    listing = json.loads(run(python, "-m", "cvat_aa", "functions", "list", "--json", load=load))
    return {entry["name"]: entry for entry in listing}


@pytest.mark.slow
def test_example_plugin_appears_when_installed_and_disappears_when_uninstalled(tmp_path):
    version = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["version"]
    # pip builds in the source tree; a copy keeps build/ and *.egg-info out of the repository.
    source = shutil.copytree(
        EXAMPLE,
        tmp_path / "face-detection",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    python = make_throwaway_venv(tmp_path / "venv")

    assert FUNCTION not in listed_functions(python)

    run(python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", str(source))
    entry = listed_functions(python)[FUNCTION]
    assert entry["status"] == "ok", entry["error"]
    assert (entry["distribution"], entry["version"]) == (DISTRIBUTION, version)
    assert entry["summary"].startswith("Detect faces")

    run(python, "-m", "pip", "uninstall", "--yes", DISTRIBUTION)
    assert FUNCTION not in listed_functions(python)


@pytest.mark.slow
def test_interactive_example_installs_from_its_wheel_with_the_kind_of_each_function(tmp_path):
    load = ",".join(INTERACTIVE_FUNCTIONS)
    source = shutil.copytree(
        INTERACTIVE_EXAMPLE,
        tmp_path / "simple-interactors-trackers",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    python = make_throwaway_venv(tmp_path / "venv")
    assert listed_functions(python, load) == {}

    wheels = tmp_path / "wheels"
    run(
        python,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(wheels),
        str(source),
    )
    [wheel] = wheels.glob("cvat_aa_simple_interactors_trackers-*.whl")
    run(python, "-m", "pip", "install", "--no-deps", str(wheel))
    listed = listed_functions(python, load)
    assert {name: (entry["status"], entry["kind"]) for name, entry in listed.items()} == {
        name: ("ok", kind) for name, kind in INTERACTIVE_FUNCTIONS.items()
    }
    assert {entry["distribution"] for entry in listed.values()} == {INTERACTIVE_DISTRIBUTION}
    shown = json.loads(
        run(python, "-m", "cvat_aa", "functions", "show", "template_tracker", "--json", load=load)
    )
    assert shown["supported_shape_types"] == ["rectangle"]

    run(python, "-m", "pip", "uninstall", "--yes", INTERACTIVE_DISTRIBUTION)
    assert listed_functions(python, load) == {}
