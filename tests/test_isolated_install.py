"""Every distribution works from its wheel, with only the dependencies it declares.

Wheels of the core, of the test server and of every plugin are built from copies of their
sources, then installed into virtual environments that cannot see this one: plain venvs of the
base interpreter, without system site-packages and without path files. pip resolves each
wheel's declared dependencies as a user's ``pip install`` would, so a missing declaration fails
here (the core once crashed on ``cvat-aa --version`` for want of numpy). There, each
distribution runs what a new user runs: ``cvat-aa --version``, ``functions list --json``, a
task annotated by a function, and a run on image files (``annotate-files``) with an output file and a
preview.

The tasks are on a sandbox (``cvat-aa sandbox``) started from a venv of its own, with the core
and cvat-aa-testing: the core and the plugins run without the test server (no werkzeug), as
users who only annotate install them, and reach the sandbox over HTTP as they would reach CVAT.

Installing torch takes a minute and 5 GB, so it is installed once, into a template venv, and
each torch plugin's venv starts as a hard-linked copy of that (``cp -al``); the core, the torch
helpers (cvat-aa-torch) and the plugin are then installed with pip as usual. torch being there
beforehand hides an undeclared torch import, which ``tests/test_declared_dependencies.py``
catches instead. Every install is constrained to the versions installed here (``pip freeze``,
which pins torch and torchvision to the releases that scripts/setup.sh installs from local
disk), so nothing downloads another torch, and pip must leave the template's torch as it is.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import PIL.Image
import pytest
from cvat_aa_testing import demo_images

ROOT = Path(__file__).resolve().parents[1]
CORE = "cvat-aa"
TESTING = "cvat-aa-testing"
#: What the torch plugins share; installed with each of them, from its wheel.
TORCH_HELPERS = "cvat-aa-torch"
TORCH = ("torch", "torchvision")
#: The core's function in the core-only venv: nothing but cvat_aa and what it declares.
CORE_FUNCTION = """
import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("person", 0, type="rectangle")])


def detect(context, image):
    width, height = image.size
    return [cvat_aa.rectangle(0, [1, 1, width / 2, height / 2], score=0.9)]
"""

pytestmark = pytest.mark.slow


@attrs.frozen
class Plugin:
    """How to run a plugin's function offline: its name, torch or not, and its parameters."""

    function: str
    uses_torch: bool
    #: (folder for model files, the venv's python) -> ``-p`` options.
    parameters: Callable[[Path, Path], list[str]] = lambda folder, python: []


def torchvision_parameters(model: str, *extra: str) -> Callable[[Path, Path], list[str]]:
    """Random weights for ``model`` (saved here, with this environment's torch), on the CPU."""

    def parameters(folder: Path, python: Path) -> list[str]:
        from cvat_aa_torch.testing import save_random_weights

        weights = save_random_weights(model, folder / "torch-home")
        options = [f"model_name=str:{model}", f"weights_path=str:{weights}", "device=str:cpu"]
        return [arg for option in [*options, *extra] for arg in ("-p", option)]

    return parameters


def yolo_parameters(folder: Path, python: Path) -> list[str]:
    """A YOLOv8n detector with random weights, built by the venv's Ultralytics, offline."""
    model = folder / "yolov8n-random.pt"
    run(python, "-c", f"from ultralytics import YOLO; YOLO('yolov8n.yaml').save({str(model)!r})")
    options = [f"model=str:{model}", "device=str:cpu", "imgsz=int:96"]
    return [arg for option in options for arg in ("-p", option)]


# Small inputs keep the R-CNN models fast on a CPU.
SMALL_RCNN = ("min_size=int:160", "max_size=int:240")
PLUGINS = {
    "cvat-aa-face-detection": Plugin("face_detection", uses_torch=False),
    "cvat-aa-torchvision-classification": Plugin(
        "torchvision_classification", True, torchvision_parameters("mobilenet_v3_small")
    ),
    "cvat-aa-torchvision-detection": Plugin(
        "torchvision_detection",
        True,
        torchvision_parameters("fasterrcnn_mobilenet_v3_large_320_fpn"),
    ),
    "cvat-aa-torchvision-instance-segmentation": Plugin(
        "torchvision_instance_segmentation",
        True,
        torchvision_parameters("maskrcnn_resnet50_fpn", *SMALL_RCNN),
    ),
    "cvat-aa-torchvision-keypoint-detection": Plugin(
        "torchvision_keypoint_detection",
        True,
        torchvision_parameters("keypointrcnn_resnet50_fpn", *SMALL_RCNN),
    ),
    "cvat-aa-ultralytics-yolo": Plugin("ultralytics_yolo", True, yolo_parameters),
}


@attrs.frozen
class InteractivePlugin:
    """An interaction or tracking plugin: its function, its kind, and a Python snippet that
    runs the function on generated images in the plugin's venv and prints JSON."""

    function: str
    kind: str
    uses_torch: bool
    snippet: str


#: A MobileSAM with random weights, saved, loaded by name, and asked about one click.
SAM_SNIPPET = """
import json, PIL.Image, torch
from cvat_aa.interaction import Interactor, Prompts
from cvat_aa.plugins import load_function
from cvat_aa_segment_anything.models import build_model

torch.manual_seed(0)
torch.save(build_model("mobile_sam").state_dict(), "mobile_sam-random.pt")
function = load_function("segment-anything", weights="mobile_sam-random.pt", device="cpu")
image = PIL.Image.new("RGB", (160, 120), (90, 90, 90))
image.paste((230, 200, 40), (50, 30, 110, 80))
shapes = Interactor(function).interact(image, Prompts(pos_points=[(80, 55)]))
print(json.dumps([{"type": shape.type, "points": shape.points} for shape in shapes]))
"""

#: A checkered square moving 6 pixels right and 3 down a frame, over a gradient, for 3 frames.
TRACKER_SNIPPET = """
import json, numpy, PIL.Image
from cvat_aa import TrackableShape
from cvat_aa.plugins import load_function
from cvat_aa.tracking import Tracker

def frame(x, y):
    pixels = numpy.tile(numpy.linspace(60, 180, 160, dtype=numpy.uint8)[None, :, None], (120, 1, 3))
    square = (numpy.indices((30, 30)).sum(axis=0) // 5 % 2 * 200 + 20).astype(numpy.uint8)
    pixels[y : y + 30, x : x + 30] = square[:, :, None]
    return PIL.Image.fromarray(pixels)

tracker = Tracker(load_function("opencv-tracker"))
(state,) = tracker.init_tracking(frame(20, 30), [TrackableShape(type="rectangle", points=[20, 30, 50, 60])])
moved = [tracker.track(frame(20 + 6 * i, 30 + 3 * i), [state])[0] for i in (1, 2, 3)]
print(json.dumps([shape.points for shape in moved]))
"""

INTERACTIVE_PLUGINS = {
    "cvat-aa-segment-anything": InteractivePlugin(
        "segment-anything", "interaction", True, SAM_SNIPPET
    ),
    "cvat-aa-opencv-tracker": InteractivePlugin(
        "opencv-tracker", "tracking", False, TRACKER_SNIPPET
    ),
}


def distributions() -> dict[str, Path]:
    """Every distribution in the repository: its name and its source folder."""
    pyprojects = [
        ROOT,
        ROOT / "cvat-aa-testing",
        ROOT / "cvat-aa-torch",
        *sorted(ROOT.glob("plugins/*")),
        *sorted(ROOT.glob("examples/*")),
    ]
    return {
        tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]: folder
        for folder in pyprojects
        if (folder / "pyproject.toml").is_file()
    }


def base_env() -> dict[str, str]:
    """This environment's variables, less what would point Python at this environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CONDA", "CVAT_AA_", "PIP_REQUIRE"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run_env(tmp: Path) -> dict[str, str]:
    """For cvat-aa and the functions: state, caches and settings in ``tmp``, offline."""
    env = base_env()
    env.update(
        XDG_STATE_HOME=str(tmp / "state"),
        XDG_CACHE_HOME=str(tmp / "cache"),
        XDG_CONFIG_HOME=str(tmp / "config"),
        TORCH_HOME=str(tmp / "torch-home"),
        YOLO_CONFIG_DIR=str(tmp / "ultralytics"),
        YOLO_OFFLINE="true",
    )
    return env


def run(program: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs ``program args`` outside the repository; fails the test unless it exits 0."""
    cwd = Path(program).parent.parent
    env = env or run_env(cwd / "run")
    result = subprocess.run(
        [str(program), *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    assert result.returncode == 0, (
        f"{Path(program).name} {' '.join(args)} exited {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def pip_install(venv: Path, *requirements: str | Path, constraints: Path) -> None:
    run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--constraint",
        str(constraints),
        *map(str, requirements),
        env=base_env(),
    )


def make_venv(path: Path, template: Path | None = None) -> Path:
    """A venv that sees only what is installed into it: new, or a hard-linked ``template``."""
    if template is not None:
        subprocess.run(["cp", "-al", str(template), str(path)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    assert "include-system-site-packages = false" in (path / "pyvenv.cfg").read_text()
    return path


INSPECT = """
import json, sys
from importlib import metadata
import cvat_aa
print(json.dumps({
    "path": sys.path,
    "cvat_aa": cvat_aa.__file__,
    "installed": sorted(d.metadata["Name"] for d in metadata.distributions()),
}))
"""


def assert_isolated(venv: Path) -> set[str]:
    """Checks that the venv sees nothing of this environment; returns what is installed there."""
    seen = json.loads(run(venv / "bin" / "python", "-c", INSPECT))
    outside = [p for p in seen["path"] if p and not p.startswith(str(venv))]
    assert not [p for p in outside if p.startswith((sys.prefix, str(ROOT)))], seen["path"]
    assert seen["cvat_aa"].startswith(str(venv)), seen["cvat_aa"]
    return {re.sub(r"[-_.]+", "-", name).lower() for name in seen["installed"]}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A wheel of every distribution, built from a copy of its sources (no build/ in the tree)."""
    sources = tmp_path_factory.mktemp("sources")
    output = tmp_path_factory.mktemp("wheels")
    ignore = shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "tests", ".venv", ".git"
    )
    copies = []
    for name, folder in distributions().items():
        copy = sources / name
        if folder == ROOT:
            copy.mkdir()
            for entry in ("pyproject.toml", "README.md"):
                shutil.copy(ROOT / entry, copy / entry)
            shutil.copytree(ROOT / "core", copy / "core", ignore=ignore)
        else:
            shutil.copytree(folder, copy, ignore=ignore)
        copies.append(str(copy))
    run(
        Path(sys.executable), "-m", "pip", "wheel", "--quiet", "--no-deps",
        "--no-build-isolation", "--wheel-dir", str(output), *copies,
        env=base_env(),
    )  # fmt: skip
    built = {}
    for name in distributions():
        (wheel,) = output.glob(f"{name.replace('-', '_')}-*-py3-none-any.whl")
        built[name] = wheel
    return built


@pytest.fixture(scope="module")
def constraints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The versions installed here, torch and torchvision among them, as pip constraints."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pins = [
        line
        for line in frozen.splitlines()
        if re.match(r"^[A-Za-z0-9][\w.-]*==", line) and not line.lower().startswith("cvat-aa")
    ]
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    for name in TORCH:
        pin = next((p for p in pins if p.lower().startswith(f"{name}==")), f"{name} (missing)")
        assert f'"{pin}"' in setup, f"{pin} is not what scripts/setup.sh pins; run it again"
    path = tmp_path_factory.mktemp("constraints") / "constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


@pytest.fixture(scope="module")
def torch_template(tmp_path_factory: pytest.TempPathFactory, constraints: Path) -> Iterator[Path]:
    """An isolated venv with only torch and torchvision (and what they need)."""
    venv = make_venv(tmp_path_factory.mktemp("template") / "venv")
    pip_install(venv, *TORCH, constraints=constraints)
    yield venv
    # 5 GB: not left behind in pytest's kept temporary directories.
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture
def venv_path(tmp_path: Path) -> Iterator[Path]:
    """Where a test makes its venv, removed after the test (what it printed is in the report)."""
    path = tmp_path / "venv"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox_venv(
    tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path], constraints: Path
) -> Iterator[Path]:
    """A venv with the core and cvat-aa-testing, where the tests start their sandboxes."""
    venv = make_venv(tmp_path_factory.mktemp("sandbox") / "venv")
    pip_install(venv, wheels[CORE], wheels[TESTING], constraints=constraints)
    packages = assert_isolated(venv)
    assert "werkzeug" in packages and not set(TORCH) & packages, packages
    yield venv
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small demo photo with people in it."""
    (source,) = [path for path in demo_images() if path.name == "astronaut.jpg"]
    path = tmp_path_factory.mktemp("photo") / "astronaut.jpg"
    with PIL.Image.open(source) as image:
        image.convert("RGB").resize((160, 160)).save(path)
    return path


def start_sandbox(venv: Path, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """``cvat-aa sandbox --port 0 ARGS`` from the venv; the process and what it printed."""
    process = subprocess.Popen(
        [str(venv / "bin" / "cvat-aa"), "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(venv / "run"),
        cwd=venv,
    )
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Press Ctrl-C"):
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=30)
            pytest.fail(f"the sandbox exited {process.returncode}:\n{process.stderr.read()}")
        lines.append(line.strip())
    return process, lines


def stop_sandbox(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def annotate_in_sandbox(cvat_aa: Path, lines: list[str], function: list[str]) -> dict:
    """Runs the sandbox's ``cvat-aa annotate`` command with ``function`` options instead."""
    (command,) = [line for line in lines if line.startswith("cvat-aa annotate")]
    words = shlex.split(command)[2:]
    task_id = words.pop(0)
    connection = words[words.index("--server-host") :]
    return json.loads(run(cvat_aa, "annotate", task_id, *function, *connection, "--json"))


def annotate_images(cvat_aa: Path, photo: Path, function: list[str], out: Path) -> dict:
    out.mkdir(parents=True)
    summary = json.loads(
        run(
            cvat_aa,
            "annotate-files",
            str(photo),
            *function,
            "--output",
            str(out / "annotations.json"),
            "--preview",
            str(out / "preview"),
            "--json",
        )
    )
    coco = json.loads((out / "annotations.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == [photo.name]
    assert (out / "preview" / "index.html").is_file()
    return summary


def serve_once(cvat_aa: Path, function: list[str], function_id: str, photo: Path) -> list[dict]:
    """``cvat-aa serve`` from the venv: the function called once as CVAT calls it (a dashboard
    invocation with a base64 frame), then stopped with SIGTERM; its result items."""
    process = subprocess.Popen(
        [str(cvat_aa), "serve", *function, "--port", "0", "--no-direct"],
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(cvat_aa.parent.parent / "run"),
        cwd=cvat_aa.parent.parent,
    )
    lines: list[str] = []
    try:
        url = None
        for line in process.stderr:
            lines.append(line)
            if found := re.search(r"serving on (http://\S+)", line):
                url = found.group(1)
            if line.startswith("Stop with Ctrl-C"):
                break
        assert url, "cvat-aa serve did not start:\n" + "".join(lines)
        request = urllib.request.Request(
            url + "/api/function_invocations",
            data=json.dumps({"image": base64.b64encode(photo.read_bytes()).decode()}).encode(),
            headers={"x-nuclio-function-name": function_id},
        )
        with urllib.request.urlopen(request, timeout=300) as reply:
            items = json.loads(reply.read())
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=120)
    assert process.returncode == 0, "".join(lines) + rest
    assert isinstance(items, list)
    return items


def install_plugin(
    name: str,
    uses_torch: bool,
    venv_path: Path,
    wheels: dict[str, Path],
    constraints: Path,
    request: pytest.FixtureRequest,
) -> Path:
    """A venv with the core and the plugin ``name`` (and the torch helpers for torch plugins,
    on a copy of the torch template) installed from their wheels; checks it is isolated."""
    template = request.getfixturevalue("torch_template") if uses_torch else None
    venv = make_venv(venv_path, template)
    helpers = [wheels[TORCH_HELPERS]] if uses_torch else []
    pip_install(venv, wheels[CORE], *helpers, wheels[name], constraints=constraints)
    packages = assert_isolated(venv)
    if template is None:
        assert not set(TORCH) & set(packages), f"{name} must not need torch"
    else:
        # pip kept the template's torch: same files, nothing downloaded or reinstalled.
        for module in TORCH:
            here, there = (v / "lib" for v in (venv, template))
            init = next(here.glob(f"python3*/site-packages/{module}/__init__.py"))
            assert init.stat().st_ino == (there / init.relative_to(here)).stat().st_ino
    return venv


@attrs.frozen
class HookPlugin:
    """A hook plugin has no function of its own: it is run with SQUARES_FUNCTION over
    SQUARE_FRAMES frames of a moving red square, with ``options``, and ``check`` reads the
    summary and the CVAT XML output."""

    entry_point: str
    options: list[str]
    check: Callable[[dict, str], None]


def one_track(summary: dict, output: str) -> None:
    assert (summary["frames"], summary["tracks"]) == (SQUARE_FRAMES, 1)
    assert output.count("<track ") == 1


def one_box_a_frame(summary: dict, output: str) -> None:
    # Tiles of 32 pixels overlap; the square found on two of them is one box.
    assert summary["per_label"] == {"car": SQUARE_FRAMES}
    assert output.count("<box ") == SQUARE_FRAMES


HOOK_PLUGINS = {
    "cvat-aa-video-tracks": HookPlugin(
        "video-tracks", ["--tracks", "--track-min-length", "2"], one_track
    ),
    "cvat-aa-sliced-inference": HookPlugin(
        "sliced-inference", ["--tile", "32", "--tile-overlap", "0.5"], one_box_a_frame
    ),
}
SQUARE_FRAMES = 8
SQUARES_FUNCTION = """
import cvat_aa
import numpy as np

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])


def detect(context, image):
    ys, xs = np.nonzero(np.asarray(image)[..., 0] > 128)
    if not len(xs):
        return []
    return [cvat_aa.rectangle(0, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], score=0.9)]
"""


# Installed from its wheel in an isolated venv and listed by tests/test_example_plugin_install.py
# (its functions are an interactor and a tracker: nothing here would annotate with them).
TESTED_ELSEWHERE = {"cvat-aa-simple-interactors-trackers"}


def test_every_plugin_distribution_is_tested():
    plugins = set(distributions()) - {CORE, TESTING, TORCH_HELPERS} - TESTED_ELSEWHERE
    assert set(PLUGINS) | set(INTERACTIVE_PLUGINS) | set(HOOK_PLUGINS) == plugins


def test_the_core_wheel_runs_alone_with_its_declared_dependencies(
    tmp_path: Path,
    venv_path: Path,
    wheels: dict[str, Path],
    constraints: Path,
    photo: Path,
    sandbox_venv: Path,
) -> None:
    venv = make_venv(venv_path)
    pip_install(venv, wheels[CORE], constraints=constraints)
    packages = assert_isolated(venv)
    assert not set(TORCH) & packages, "the core must not need torch"
    assert not {"werkzeug", TESTING} & packages, "the core must not need the test server"
    cvat_aa = venv / "bin" / "cvat-aa"

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert run(cvat_aa, "--version").strip() == f"cvat-aa {version}"
    assert json.loads(run(cvat_aa, "functions", "list", "--json")) == []
    no_sandbox = subprocess.run(
        [str(cvat_aa), "sandbox"], capture_output=True, text=True, env=base_env(), check=False
    )
    assert (no_sandbox.returncode, no_sandbox.stderr) == (
        2,
        "cvat-aa: error: cvat-aa sandbox needs the cvat-aa-testing distribution:"
        " pip install 'cvat-aa[testing]'\n",
    )

    function_file = tmp_path / "halves.py"
    function_file.write_text(CORE_FUNCTION)
    function = ["--function-file", str(function_file)]
    process, lines = start_sandbox(sandbox_venv)
    try:
        demo_task = re.search(r"demo task:\s+(\d+)", "\n".join(lines)).group(1)
        assert any(line.startswith(f"cvat-aa annotate {demo_task} ") for line in lines)
        summary = annotate_in_sandbox(cvat_aa, lines, function)
    finally:
        stop_sandbox(process)
    assert summary["per_label"] == {"person": len(demo_images())}

    summary = annotate_images(cvat_aa, photo, function, tmp_path / "local")
    assert summary["per_label"] == {"person": 1}

    served = serve_once(cvat_aa, ["--function", str(function_file)], "halves", photo)
    assert [item["label"] for item in served] == ["person"]


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_each_plugin_wheel_runs_with_its_declared_dependencies(
    name: str,
    tmp_path: Path,
    venv_path: Path,
    wheels: dict[str, Path],
    constraints: Path,
    photo: Path,
    sandbox_venv: Path,
    request: pytest.FixtureRequest,
) -> None:
    plugin = PLUGINS[name]
    venv = install_plugin(name, plugin.uses_torch, venv_path, wheels, constraints, request)
    cvat_aa = venv / "bin" / "cvat-aa"
    assert run(cvat_aa, "--version").startswith("cvat-aa ")
    listing = {f["name"]: f for f in json.loads(run(cvat_aa, "functions", "list", "--json"))}
    assert list(listing) == [plugin.function]
    assert listing[plugin.function]["status"] == "ok", listing[plugin.function]["error"]
    assert listing[plugin.function]["distribution"] == name

    parameters = plugin.parameters(tmp_path, venv / "bin" / "python")
    function = ["--function", plugin.function, *parameters]
    # The function's labels, as the plugin's venv gives them, make the sandbox's task.
    labels = tmp_path / "labels.json"
    labels.write_text(run(cvat_aa, "functions", "show", plugin.function, *parameters, "--json"))
    process, lines = start_sandbox(sandbox_venv, "--images", str(photo), "--labels", str(labels))
    try:
        summary = annotate_in_sandbox(cvat_aa, lines, function)
    finally:
        stop_sandbox(process)
    assert summary["frames"] == 1

    summary = annotate_images(cvat_aa, photo, function, tmp_path / "local")
    assert summary["frames"] == 1

    served = serve_once(cvat_aa, function, plugin.function, photo)
    assert all(item["label"] for item in served)


@pytest.mark.parametrize("name", sorted(INTERACTIVE_PLUGINS))
def test_each_interactive_plugin_wheel_runs_with_its_declared_dependencies(
    name: str,
    venv_path: Path,
    wheels: dict[str, Path],
    constraints: Path,
    request: pytest.FixtureRequest,
) -> None:
    plugin = INTERACTIVE_PLUGINS[name]
    venv = install_plugin(name, plugin.uses_torch, venv_path, wheels, constraints, request)
    cvat_aa = venv / "bin" / "cvat-aa"
    listing = {f["name"]: f for f in json.loads(run(cvat_aa, "functions", "list", "--json"))}
    assert list(listing) == [plugin.function]
    assert listing[plugin.function]["status"] == "ok", listing[plugin.function]["error"]
    assert listing[plugin.function]["distribution"] == name
    assert listing[plugin.function]["kind"] == plugin.kind

    # The last line: Ultralytics prints a note on stdout when it makes its settings file.
    shapes = json.loads(run(venv / "bin" / "python", "-c", plugin.snippet).splitlines()[-1])
    if plugin.kind == "interaction":
        (shape,) = shapes
        assert shape["type"] == "mask"
        # CVAT's mask encoding: run lengths, then the box, inside the 160x120 image.
        left, top, right, bottom = shape["points"][-4:]
        assert 0 <= left <= right < 160 and 0 <= top <= bottom < 120
    else:
        assert shapes == [[20 + 6 * i, 30 + 3 * i, 50 + 6 * i, 60 + 3 * i] for i in (1, 2, 3)]


@pytest.mark.parametrize("name", sorted(HOOK_PLUGINS))
def test_each_hook_plugin_wheel_runs_with_its_declared_dependencies(
    name: str,
    tmp_path: Path,
    venv_path: Path,
    wheels: dict[str, Path],
    constraints: Path,
    request: pytest.FixtureRequest,
) -> None:
    plugin = HOOK_PLUGINS[name]
    venv = install_plugin(name, False, venv_path, wheels, constraints, request)
    cvat_aa = venv / "bin" / "cvat-aa"
    assert json.loads(run(cvat_aa, "functions", "list", "--json")) == []
    group = f"run options of hook plugin {plugin.entry_point}"
    assert group in run(cvat_aa, "annotate-files", "--help")

    frames = tmp_path / "frames"
    frames.mkdir()
    for n in range(SQUARE_FRAMES):
        image = PIL.Image.new("RGB", (64, 48))
        image.paste((255, 0, 0), (4 + 3 * n, 10, 12 + 3 * n, 18))
        image.save(frames / f"frame_{n:02d}.png")
    function_file = tmp_path / "squares.py"
    function_file.write_text(SQUARES_FUNCTION)
    output = tmp_path / "annotations.xml"
    summary = json.loads(
        run(
            cvat_aa,
            "annotate-files",
            str(frames),
            "--function-file",
            str(function_file),
            *plugin.options,
            "--output",
            str(output),
            "--json",
        )
    )
    plugin.check(summary, output.read_text())
