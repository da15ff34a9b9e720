"""`cvat-aa annotate --images`, `--output`, `--format`, `--preview` and `--dry-run`."""

from __future__ import annotations

import json
import logging
import re
import textwrap
from pathlib import Path

import cvat_aa
import PIL.Image
import pytest
from cvat_aa.cli import main
from cvat_aa.cli.errors import ExitCode
from cvat_aa.export import read_coco, read_cvat_xml
from cvat_aa.labels import LabelCatalog
from cvat_aa_testing import TestServer, demo_images

README = Path(__file__).resolve().parent.parent / "README.md"

BOXES = """
    import cvat_aa

    spec = cvat_aa.DetectionFunctionSpec(labels=[
        cvat_aa.label_spec("car", 0, type="rectangle"),
        cvat_aa.label_spec("sky", 1, type="tag"),
    ])

    def detect(context, image):
        return [
            cvat_aa.rectangle(0, [2, 2, image.width - 2, image.height - 2], score=0.9),
            cvat_aa.tag(1),
        ]
"""

RAISES = """
    import cvat_aa
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])
    def detect(context, image):
        raise RuntimeError("model exploded")
"""

BAD = """
    import cvat_aa
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])
    def detect(context, image):
        return [cvat_aa.rectangle(3, [0, 0, 1, 1])]
"""


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() configures the cvat_aa logger for the process; undo it after each test."""
    logger = logging.getLogger("cvat_aa")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture
def function_file(tmp_path) -> Path:
    path = tmp_path / "boxes.py"
    path.write_text(textwrap.dedent(BOXES))
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, name in enumerate(("a.png", "b.jpg")):
        PIL.Image.new("RGB", (40 + i, 30), (100, 100, 100)).save(folder / name)
    return folder


def annotate(*args: object) -> int:
    return main(["annotate", *(str(a) for a in args)])


SPEC_LABELS = LabelCatalog.from_spec(
    [cvat_aa.label_spec("car", 0, type="rectangle"), cvat_aa.label_spec("sky", 1, type="tag")]
)


def test_a_local_run_writes_cvat_xml_and_a_preview(tmp_path, images, function_file, capsys):
    output, preview = tmp_path / "out.xml", tmp_path / "preview"
    code = annotate(
        "--images",
        images,
        "--function-file",
        function_file,
        "--output",
        output,
        "--preview",
        preview,
    )
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert "on 2 frames: 4 annotations" in out
    assert f"Wrote {output} (CVAT for images 1.1)" in out
    assert f"Preview: {preview / 'index.html'}" in out
    read = read_cvat_xml(output, SPEC_LABELS)
    assert [(f.name, len(f.shapes), len(f.tags)) for f in read.frames] == [
        ("a.png", 1, 1),
        ("b.jpg", 1, 1),
    ]
    assert sorted(p.name for p in (preview / "frames").iterdir()) == [
        "000000_a.png",
        "000001_b.png",
    ]


def test_a_json_output_is_coco(tmp_path, images, function_file):
    assert (
        annotate(
            "--images", images, "--function-file", function_file, "--output", tmp_path / "out.json"
        )
        == 0
    )
    read = read_coco(tmp_path / "out.json", SPEC_LABELS)
    assert [len(f.shapes) for f in read.frames] == [1, 1]


def test_the_format_option_wins_over_the_extension(tmp_path, images, function_file):
    output = tmp_path / "annotations.dat"
    assert (
        annotate(
            "--images",
            images,
            "--function-file",
            function_file,
            "--output",
            output,
            "--format",
            "cvat",
        )
        == 0
    )
    assert output.read_text().startswith('<?xml version="1.0" encoding="utf-8"?>\n<annotations>')


def test_the_summary_can_be_json(tmp_path, images, function_file, capsys):
    output = tmp_path / "out.json"
    assert (
        annotate("--images", images, "--function-file", function_file, "--output", output, "--json")
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert {
        k: summary[k]
        for k in ("function", "frames", "annotations", "per_label", "output", "format", "preview")
    } == {
        "function": str(function_file),
        "frames": 2,
        "annotations": 4,
        "per_label": {"car": 2, "sky": 2},
        "output": str(output),
        "format": "coco",
        "preview": None,
    }


def test_globs_and_files_can_be_mixed(tmp_path, images, function_file, capsys):
    assert (
        annotate(
            "--images", images / "a.png", str(images / "*.jpg"), "--function-file", function_file
        )
        == 0
    )
    assert "on 2 frames" in capsys.readouterr().out


def test_annotate_files_takes_the_paths_as_arguments(tmp_path, images, function_file, capsys):
    output = tmp_path / "out.json"
    args = ["annotate-files", images, "--function-file", function_file, "--output", output]
    code = main([str(a) for a in args])
    assert code == ExitCode.OK
    assert [len(f.shapes) for f in read_coco(output, SPEC_LABELS).frames] == [1, 1]
    assert "deprecated" not in capsys.readouterr().err


def test_annotate_images_is_the_deprecated_spelling_of_annotate_files(
    images, function_file, capsys
):
    assert annotate("--images", images, "--function-file", function_file) == ExitCode.OK
    assert capsys.readouterr().err.splitlines() == [
        "cvat-aa: 'annotate --images PATH...' is deprecated; use 'cvat-aa annotate-files PATH...'"
    ]


def test_annotate_files_refuses_what_only_runs_on_a_server_take(images, function_file, capsys):
    code = main(
        ["annotate-files", str(images), "--function-file", str(function_file), "--journal-dir", "j"]
    )
    assert code == ExitCode.USAGE
    assert "--journal-dir applies only to task and job runs (cvat-aa annotate)" in (
        capsys.readouterr().err
    )


# --- usage errors ------------------------------------------------------------------------------


def usage_error(capsys, *args: object) -> str:
    assert annotate(*args) == ExitCode.USAGE
    return capsys.readouterr().err


def test_no_images_found_is_a_usage_error(tmp_path, function_file, capsys):
    err = usage_error(capsys, "--images", tmp_path / "missing", "--function-file", function_file)
    assert "there is no file or folder" in err
    (tmp_path / "empty").mkdir()
    err = usage_error(capsys, "--images", tmp_path / "empty", "--function-file", function_file)
    assert "has no images" in err
    err = usage_error(capsys, "--images", str(tmp_path / "*.png"), "--function-file", function_file)
    assert "no images or videos match" in err


def test_a_missing_path_is_reported_before_the_function_is_loaded(tmp_path, capsys):
    err = usage_error(capsys, "--images", tmp_path / "missing", "--function", "no_such_function")
    assert "there is no file or folder" in err


def test_an_output_name_that_names_no_format_is_a_usage_error(
    tmp_path, images, function_file, capsys
):
    err = usage_error(
        capsys, "--images", images, "--function-file", function_file, "--output", tmp_path / "a.txt"
    )
    assert "--format cvat|coco" in err
    assert not (tmp_path / "a.txt").exists()


@pytest.fixture
def loud_function_file(tmp_path) -> Path:
    """A function file that says on stderr when it is loaded."""
    path = tmp_path / "loud.py"
    path.write_text("import sys\nprint('LOADED', file=sys.stderr)\n" + textwrap.dedent(BOXES))
    return path


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing/out.xml", "--output: the folder of the output, '.*missing', does not exist"),
        (".", "--output: the output '.*' is a folder; give a file name"),
    ],
    ids=["missing-folder", "a-folder"],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_function_is_loaded(
    tmp_path, images, loud_function_file, capsys, output, message
):
    err = usage_error(
        capsys, "--images", images, "--function-file", loud_function_file,
        "--output", tmp_path / output,
    )  # fmt: skip
    assert re.search(message, err)
    assert "LOADED" not in err


@pytest.mark.parametrize("task_run", [False, True], ids=["images", "task"])
def test_a_preview_that_cannot_be_written_is_refused_before_the_function_is_loaded(
    tmp_path, images, loud_function_file, capsys, task_run
):
    (tmp_path / "file").write_text("x")
    target = ["7", "--dry-run"] if task_run else ["--images", images]
    err = usage_error(
        capsys, *target, "--function-file", loud_function_file, "--preview", tmp_path / "file"
    )
    assert re.search("--preview: '.*file' is a file, not a folder; choose another folder", err)
    assert "LOADED" not in err


def test_frames_that_match_no_input_frame_are_refused_before_the_function_is_loaded(
    images, loud_function_file, capsys
):
    err = usage_error(
        capsys, "--images", images, "--function-file", loud_function_file, "--frames", "500-600"
    )
    assert (
        "the frame selection 500-600 matches no frame of the inputs (frames 0-1);"
        " choose frames in that range"
    ) in err
    assert "LOADED" not in err


def test_format_needs_an_output(images, function_file, capsys):
    assert "--format needs --output" in usage_error(
        capsys, "--images", images, "--function-file", function_file, "--format", "coco"
    )


@pytest.mark.parametrize(
    "option", [["--clear-existing"], ["--allow-unmatched-labels"], ["--dry-run"], ["--resume"]]
)
def test_task_run_options_are_refused_for_a_local_run(images, function_file, capsys, option):
    err = usage_error(capsys, "--images", images, "--function-file", function_file, *option)
    assert f"{option[0]} applies only to task and job runs" in err


def test_images_and_a_task_together_are_a_usage_error(images, function_file, capsys):
    assert "give one of a TASK_ID" in usage_error(
        capsys, "7", "--images", images, "--function-file", function_file
    )


def test_output_with_a_task_run_is_a_usage_error(tmp_path, function_file, capsys):
    err = usage_error(capsys, "7", "--function-file", function_file, "--output", tmp_path / "a.xml")
    assert "--output applies only to runs over files (cvat-aa annotate-files)" in err


# --- failures ----------------------------------------------------------------------------------


def test_a_function_that_raises_exits_6_and_writes_no_output(tmp_path, images, capsys):
    (tmp_path / "raises.py").write_text(textwrap.dedent(RAISES))
    output = tmp_path / "out.xml"
    code = annotate(
        "--images", images, "--function-file", tmp_path / "raises.py", "--output", output
    )
    assert code == ExitCode.FUNCTION_FAILED
    assert "failed on frame 0 (a.png): RuntimeError: model exploded" in capsys.readouterr().err
    assert not output.exists()


def test_with_on_error_skip_an_unreadable_image_is_listed_and_the_run_exits_6(
    tmp_path, images, function_file, capsys
):
    (images / "broken.jpg").write_text("not a jpeg")
    output = tmp_path / "out.xml"
    code = annotate(
        "--images", images, "--function-file", function_file, "--output", output,
        "--on-error", "skip",
    )  # fmt: skip
    assert code == ExitCode.FUNCTION_FAILED
    out = capsys.readouterr().out
    assert "on 2 frames: 4 annotations" in out
    assert "Skipped 1 frame (left out of the output):" in out
    assert (
        f"frame 2 (broken.jpg): cannot read the image '{images / 'broken.jpg'}': it is not in an"
        " image format PIL reads"
    ) in out
    assert [f.name for f in read_cvat_xml(output, SPEC_LABELS).frames] == ["a.png", "b.jpg"]


def test_with_on_error_skip_a_failing_frame_is_listed_in_the_json_summary(
    tmp_path, images, capsys
):
    (tmp_path / "raises.py").write_text(textwrap.dedent(RAISES))
    code = annotate(
        "--images", images, "--function-file", tmp_path / "raises.py", "--on-error", "skip",
        "--json",
    )  # fmt: skip
    assert code == ExitCode.FUNCTION_FAILED
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 0
    assert summary["skipped"] == [
        {
            "frame": i,
            "name": name,
            "reason": "the function failed: RuntimeError: model exploded",
        }
        for i, name in enumerate(["a.png", "b.jpg"])
    ]


def test_an_unreadable_image_ends_the_run_naming_it_and_writes_nothing(
    tmp_path, images, function_file, capsys
):
    (images / "broken.jpg").write_bytes(b"")
    output = tmp_path / "out.xml"
    err = usage_error(
        capsys, "--images", images, "--function-file", function_file, "--output", output
    )
    assert f"cannot read the image '{images / 'broken.jpg'}': the file is empty" in err
    assert not output.exists()


def test_a_function_that_breaks_the_protocol_exits_5(tmp_path, images, capsys):
    (tmp_path / "bad.py").write_text(textwrap.dedent(BAD))
    assert (
        annotate("--images", images, "--function-file", tmp_path / "bad.py")
        == ExitCode.BAD_FUNCTION
    )
    assert "unknown label ID (3)" in capsys.readouterr().err


# --- task runs: preview and dry run ------------------------------------------------------------


@pytest.fixture
def task(cvat_server: TestServer) -> int:
    return cvat_server.create_task(
        "preview",
        images=[PIL.Image.new("RGB", (40, 30), (100, 100, 100)) for _ in range(3)],
        labels=[
            {"name": "car", "type": "rectangle", "color": "#ff0000"},
            {"name": "sky", "type": "tag"},
        ],
    )


def server_options(server: TestServer) -> list[str]:
    return [
        "--server-host", server.host, "--server-port", str(server.port),
        "--auth", f"{server.username}:{server.password}",
    ]  # fmt: skip


def test_a_dry_run_uploads_nothing_and_writes_the_preview(
    cvat_server, task, function_file, tmp_path, capsys
):
    preview = tmp_path / "preview"
    code = annotate(
        task,
        "--function-file",
        function_file,
        "--dry-run",
        "--preview",
        preview,
        *server_options(cvat_server),
    )
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert f"Processed (dry run, nothing uploaded) task {task}: 3 frames, 6 annotations" in out
    assert "See the result in CVAT" not in out
    annotations = cvat_server.annotations(task)
    assert annotations["shapes"] == [] and annotations["tags"] == []
    page = (preview / "index.html").read_text()
    assert f"task {task} (dry run)" in page
    assert len(re.findall("2 annotations: car 1, sky 1", page)) == 3
    # Drawn in the task label's own colour.
    drawn = PIL.Image.open(preview / "frames" / "000000_frame_000000.png").convert("RGB")
    assert drawn.getpixel((20, 27)) == (255, 0, 0)


def test_a_task_run_with_a_preview_uploads_and_draws(
    cvat_server, task, function_file, tmp_path, capsys
):
    preview = tmp_path / "preview"
    assert (
        annotate(
            task,
            "--function-file",
            function_file,
            "--preview",
            preview,
            *server_options(cvat_server),
        )
        == 0
    )
    assert len(cvat_server.annotations(task)["shapes"]) == 3
    assert len(list((preview / "frames").iterdir())) == 3
    assert "See the result in CVAT" in capsys.readouterr().out


def test_frames_that_match_no_frame_of_the_task_exit_2_naming_its_frames(
    cvat_server, task, function_file, capsys
):
    err = usage_error(
        capsys, task, "--function-file", function_file, "--frames", "500-600",
        *server_options(cvat_server),
    )  # fmt: skip
    assert f"the frame selection 500-600 matches no frame of task {task} (frames 0-2)" in err
    assert cvat_server.annotations(task)["shapes"] == []


# --- the README's quick start ------------------------------------------------------------------


def test_the_readme_quick_start_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("cvat_aa_face_detection")
    demo = "cvat-aa-testing/src/cvat_aa_testing/demo_images"
    command = (
        f"cvat-aa annotate-files {demo} --function face_detection"
        " --output faces.xml --preview preview/"
    )
    assert command in README.read_text()
    monkeypatch.chdir(tmp_path)
    args = command.split()[1:]
    args[args.index(demo)] = str(demo_images()[0].parent)
    assert main(args) == 0
    assert (tmp_path / "faces.xml").is_file()
    assert (tmp_path / "preview" / "index.html").is_file()
    assert "face" in capsys.readouterr().out
