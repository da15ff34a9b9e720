"""`cvat-aa functions list|show`, `--version`, and how the CLI reports errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cvat_aa
import pytest
from cvat_aa import plugins
from cvat_aa.cli import main

SKELETON_FUNCTION = """
    '''Finds people as skeletons.'''
    import cvat_aa

    def create(threshold: float = 0.5, model: str = "small"):
        class F:
            spec = cvat_aa.DetectionFunctionSpec(labels=[
                cvat_aa.skeleton_label_spec("person", 0, [
                    cvat_aa.keypoint_spec("nose", 0),
                    cvat_aa.keypoint_spec("eye", 1, attributes=[cvat_aa.checkbox_attribute_spec("open", 0)]),
                ]),
                cvat_aa.label_spec("car", 1, type="rectangle", attributes=[
                    cvat_aa.select_attribute_spec("colour", 0, ["red", "blue"]),
                ]),
            ])
            def detect(self, context, image):
                return []
        return F()
"""


@pytest.fixture
def installed(make_distribution):
    make_distribution(
        "cvat-aa-people",
        version="1.2",
        modules={"people_cli_a": SKELETON_FUNCTION},
        entry_points={plugins.FUNCTIONS_GROUP: {"people": "people_cli_a"}},
    )
    make_distribution(
        "cvat-aa-broken",
        version="0.1",
        modules={"broken_cli_a": "raise RuntimeError('needs a GPU driver')\n"},
        entry_points={plugins.FUNCTIONS_GROUP: {"broken": "broken_cli_a"}},
    )


def test_list_shows_name_distribution_status_and_summary(installed, capsys):
    assert main(["functions", "list"]) == 0
    out = capsys.readouterr().out
    people = next(line for line in out.splitlines() if line.startswith("people"))
    assert "cvat-aa-people 1.2" in people and "ok" in people
    assert "Finds people as skeletons." in people
    broken = next(line for line in out.splitlines() if line.startswith("broken"))
    assert "broken" in broken and "RuntimeError: needs a GPU driver" in broken


def test_list_json_is_data_for_scripts(installed, capsys):
    assert main(["functions", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["people"] == {
        "name": "people",
        "distribution": "cvat-aa-people",
        "version": "1.2",
        "summary": "Finds people as skeletons.",
        "status": "ok",
        "error": None,
        "kind": None,  # a factory that does not say what it returns: not built to find out
    }
    assert rows["broken"]["status"] == "broken"


def test_show_prints_the_spec_as_a_tree(installed, capsys):
    assert main(["functions", "show", "people"]) == 0
    out = capsys.readouterr().out
    assert "person  [skeleton]  id=0" in out
    assert "- nose  [points]  id=0" in out
    assert "@open (checkbox)" in out
    assert "car  [rectangle]  id=1" in out and "@colour (select) ['red', 'blue']" in out
    assert "threshold: float = 0.5" in out


def test_show_json_has_labels_and_parameters(installed, capsys):
    assert main(["functions", "show", "people", "-p", "model=str:big", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [label["name"] for label in data["labels"]] == ["person", "car"]
    assert [s["name"] for s in data["labels"][0]["sublabels"]] == ["nose", "eye"]
    assert [p["name"] for p in data["parameters"]] == ["threshold", "model"]


def test_show_a_function_file(tmp_path, capsys):
    path = tmp_path / "f.py"
    path.write_text(SKELETON_FUNCTION.replace("\n    ", "\n"))
    assert main(["functions", "show", "--function-file", str(path)]) == 0
    assert "person  [skeleton]" in capsys.readouterr().out


def test_show_an_unknown_function_is_a_usage_error_without_traceback(installed, capsys):
    assert main(["functions", "show", "poeple"]) == 2
    err = capsys.readouterr().err
    assert "no function named 'poeple'" in err and "Traceback" not in err


def test_show_a_broken_plugin_is_a_bad_function(installed, capsys):
    assert main(["functions", "show", "broken"]) == 5
    assert "needs a GPU driver" in capsys.readouterr().err


def test_show_with_a_wrong_parameter_lists_the_parameters(installed, capsys):
    assert main(["functions", "show", "people", "-p", "size=int:3"]) == 2
    assert "threshold: float = 0.5, model: str = 'small'" in capsys.readouterr().err


def test_a_malformed_parameter_is_a_usage_error(installed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["functions", "show", "people", "-p", "size=3"])
    assert exit_info.value.code == 2
    assert "has no type" in capsys.readouterr().err


def test_debug_shows_the_traceback(installed, capsys):
    assert main(["--debug", "functions", "show", "broken"]) == 5
    assert "Traceback" in capsys.readouterr().err


def test_version_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "cvat_aa", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"cvat-aa {cvat_aa.__version__}"


def test_list_shows_a_plugin_that_exits_at_import_as_broken(installed, make_distribution):
    dist_info = make_distribution(
        "cvat-aa-quitter",
        version="0.9",
        modules={"quitter_cli_a": "import sys\nsys.exit(0)\n"},
        entry_points={plugins.FUNCTIONS_GROUP: {"quitter": "quitter_cli_a"}},
    )
    result = subprocess.run(
        [sys.executable, "-m", "cvat_aa", "functions", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(dist_info.parent)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert (rows["quitter"]["status"], rows["quitter"]["error"]) == ("broken", "SystemExit: 0")
    assert rows["people"]["status"] == "ok"


def test_show_a_function_whose_spec_exits_is_a_bad_function(tmp_path, capsys):
    path = tmp_path / "f.py"
    path.write_text(
        "import sys\n"
        "class F:\n"
        "    @property\n"
        "    def spec(self):\n"
        "        sys.exit(4)\n"
        "    def detect(self, context, image):\n"
        "        return []\n"
        "def create():\n"
        "    return F()\n"
    )
    assert main(["functions", "show", "--function-file", str(path)]) == 5
    err = capsys.readouterr().err
    assert "reading 'spec' and 'detect' of function" in err and "raised SystemExit: 4" in err


INTERACTION_FUNCTION = """
    '''Finds the object under the click.'''
    import cvat_aa

    spec = cvat_aa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)

    def detect(context, pp_image, prompts):
        return []
"""

TRACKING_FUNCTION = """
    '''Follows boxes and points.'''
    from __future__ import annotations

    import cvat_aa

    class Follower:
        spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle", "points"])

        def init_tracking_state(self, context, pp_image, shape):
            return shape

        def track(self, context, pp_image, state):
            return state

    def create(speed: int = 1) -> Follower:
        return Follower()
"""


@pytest.fixture
def every_kind(installed, make_distribution):
    make_distribution(
        "cvat-aa-kinds",
        version="0.3",
        modules={"clicks_cli_a": INTERACTION_FUNCTION, "follows_cli_a": TRACKING_FUNCTION},
        entry_points={
            plugins.FUNCTIONS_GROUP: {"clicks": "clicks_cli_a", "follows": "follows_cli_a"}
        },
    )


def test_list_shows_each_functions_kind(every_kind, capsys):
    assert main(["functions", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "KIND"]
    kinds = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert {name: kinds[name] for name in ("broken", "clicks", "follows", "people")} == {
        "broken": "?",
        "clicks": "interaction",
        "follows": "tracking",
        "people": "?",
    }


def test_list_json_gives_each_kind_or_null(every_kind, capsys):
    assert main(["functions", "list", "--json"]) == 0
    kinds = {row["name"]: row["kind"] for row in json.loads(capsys.readouterr().out)}
    assert {name: kinds[name] for name in ("broken", "clicks", "follows", "people")} == {
        "broken": None,
        "clicks": "interaction",
        "follows": "tracking",
        "people": None,
    }


def test_show_tells_the_kind_of_a_detection_function_it_builds(installed, capsys):
    assert main(["functions", "show", "people"]) == 0
    assert "kind: detection" in capsys.readouterr().out.splitlines()
    assert main(["functions", "show", "people", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "detection"


def test_show_an_interaction_function_gives_the_prompts_it_needs(every_kind, capsys):
    assert main(["functions", "show", "clicks"]) == 0
    out = capsys.readouterr().out
    assert "kind: interaction" in out
    assert "positive points: at least 1" in out
    assert "negative points: at least 0" in out
    assert "bounding box: optional" in out
    assert main(["functions", "show", "clicks", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "name": "clicks",
        "parameters": [],
        "kind": "interaction",
        "min_pos_points": 1,
        "min_neg_points": 0,
        "min_bounding_boxes": 0,
    }


def test_show_a_tracking_function_gives_the_shape_types_it_tracks(every_kind, capsys):
    assert main(["functions", "show", "follows"]) == 0
    out = capsys.readouterr().out
    assert "kind: tracking" in out and "tracks: points, rectangle" in out
    assert "speed: int = 1" in out
    assert main(["functions", "show", "follows", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["kind"], data["supported_shape_types"]) == ("tracking", ["points", "rectangle"])
