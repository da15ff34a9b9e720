"""RunOptions: every run option once, with the runs it applies to; the API and the CLI both
follow that data."""

from __future__ import annotations

import attrs
import cvat_aa
import pytest
from cvat_aa.cli import build_parser
from cvat_aa.cli.run_options import FLAGS
from cvat_aa.pipeline import RunOptions, Runs

# Options that the Python API alone sets: objects, or what the CLI works out itself.
API_ONLY = {
    "executor",  # --executor and the Ray flags build it, with the function (cli/options.py)
    "function_name",
    "journal_key",
    "keep_annotations",
    "on_frame",
    "pbar",
    "plugin_options",  # the flags of hook plugins' run options (cvat_aa_run_options) set it
    "retry",
    "task_name",
}


def subcommand(name: str):
    (commands,) = [
        a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"
    ]
    return commands.choices[name]


def flag_names(runs: Runs) -> set[str]:
    fields = attrs.fields_dict(RunOptions)
    return {
        name
        for flag in FLAGS
        if any(fields[option].metadata["runs"] & runs for option in flag.options)
        for name in flag.names
    }


def test_every_option_applies_to_some_run():
    for field in attrs.fields(RunOptions):
        assert field.metadata["runs"] & Runs.BOTH, field.name


def test_every_option_has_a_flag_or_is_for_the_api_only():
    with_flags = {option for flag in FLAGS for option in flag.options}
    assert with_flags | API_ONLY == {f.name for f in attrs.fields(RunOptions)}
    assert not with_flags & API_ONLY


def test_the_journal_key_covers_exactly_the_options_that_change_results():
    assert set(RunOptions().key_parts()) == {
        "allow_unmatched_labels",
        "clear_existing",
        "conf_threshold",
        "conv_mask_to_poly",
        "frames",
        "label_map",
    }


@pytest.mark.parametrize(
    ("command", "runs"), [("annotate", Runs.SERVER), ("annotate-files", Runs.FILES)]
)
def test_each_command_offers_the_flags_of_its_runs_and_refuses_the_others(command, runs):
    parser = subcommand(command)
    offered = {
        name
        for action in parser._actions
        if action.help != "==SUPPRESS==" and action.__class__.__name__ != "_Refuse"
        for name in action.option_strings
    }
    refused = {
        name
        for action in parser._actions
        if action.__class__.__name__ == "_Refuse"
        for name in action.option_strings
    }
    assert flag_names(runs) <= offered
    assert refused == flag_names(Runs.BOTH) - flag_names(runs)


def test_an_option_of_the_other_runs_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="does not take output: it applies only to runs over files"):
        cvat_aa.annotate_task(None, 1, "boxes", output=tmp_path / "a.xml")
    with pytest.raises(TypeError, match=r"does not take clear_existing: .* on a CVAT server"):
        cvat_aa.annotate_images("boxes", [tmp_path], clear_existing=True)


def test_an_unknown_option_is_a_type_error(tmp_path):
    unexpected = r"annotate_tasks\(\) got an unexpected keyword argument 'bach_size'"
    with pytest.raises(TypeError, match=unexpected):
        cvat_aa.annotate_tasks(None, [1], "boxes", bach_size=4)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("batch_size", 0, "batch_size must be a whole number, at least 1"),
        ("upload_frames", 0, "upload_frames must be a whole number, at least 1"),
        ("conf_threshold", 1.5, "conf_threshold must be None or a number between 0 and 1"),
        ("on_error", "ignore", "on_error must be 'stop' or 'skip'"),
    ],
)
def test_values_are_checked_once_for_every_entry_point(option, value, message):
    with pytest.raises(ValueError, match=message):
        RunOptions.for_runs(Runs.SERVER, "annotate_task", **{option: value})


def test_options_are_converted_to_their_types(tmp_path):
    options = RunOptions(
        frames="0-9:2", label_map={"person": "pedestrian"}, journal_key={"a": 1}, preview="p"
    )
    assert 4 in options.frames and 5 not in options.frames
    assert options.label_map.to_dict() == {"person": {"name": "pedestrian"}}
    assert options.journal_key == '{"a": 1}'
    assert options.preview.name == "p"
