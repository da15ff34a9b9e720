"""Tracker: states kept in the process behind unguessable ids, refused across scopes and
image sizes, expired when unused; every tracked shape validated before it leaves."""

from __future__ import annotations

import secrets
import threading

import cvat_aa
import cvat_sdk.auto_annotation as sdk_aa
import numpy as np
import PIL.Image
import pytest
from cvat_aa.errors import BadRequestError, FunctionFailedError


class Shift:
    """Written against cvat-sdk only: moves every shape by (dx, dy) on each call to track."""

    spec = sdk_aa.TrackingFunctionSpec(supported_shape_types=["rectangle", "points"])

    def __init__(self, dx=5.0, dy=0.0):
        self.dx, self.dy = dx, dy
        self.preprocessed = 0

    def preprocess_image(self, context, image):
        assert isinstance(context, sdk_aa.TrackingFunctionContext)
        self.preprocessed += 1
        return np.asarray(image)

    def init_tracking_state(self, context, pp_image, shape):
        assert isinstance(context, sdk_aa.TrackingFunctionShapeContext)
        assert context.original_shape_type == shape.type
        return {"type": shape.type, "points": list(shape.points)}

    def track(self, context, pp_image, state):
        assert context.original_shape_type == state["type"]
        state["points"] = [
            p + (self.dx if i % 2 == 0 else self.dy) for i, p in enumerate(state["points"])
        ]
        return sdk_aa.TrackableShape(type=state["type"], points=state["points"])


class Returning:
    """Tracks nothing: returns what it is given (no preprocess_image)."""

    spec = sdk_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def __init__(self, result):
        self.result = result

    def init_tracking_state(self, context, pp_image, shape):
        assert isinstance(pp_image, PIL.Image.Image)
        return "state"

    def track(self, context, pp_image, state):
        return self.result


def frame(width=80, height=60, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), np.uint8)
    return PIL.Image.fromarray(pixels)


BOX = sdk_aa.TrackableShape(type="rectangle", points=[10, 10, 20, 20])


def test_a_function_written_for_cvat_sdk_follows_a_rectangle_over_frames():
    tracker = cvat_aa.Tracker(Shift())
    [state] = tracker.init_tracking(frame(), [BOX], scope=3)
    moved = [tracker.track(frame(seed=i), [state], scope=3)[0] for i in (1, 2, 3)]
    assert [s.points for s in moved] == [
        [15, 10, 25, 20],
        [20, 10, 30, 20],
        [25, 10, 35, 20],
    ]
    assert all(s.type == "rectangle" for s in moved)


def test_each_shape_gets_its_own_unguessable_state_id():
    tracker = cvat_aa.Tracker(Shift())
    ids = tracker.init_tracking(frame(), [BOX, BOX, BOX])
    assert len(set(ids)) == 3
    assert all(isinstance(i, str) and len(i) >= 32 for i in ids)


def test_an_image_is_preprocessed_once_for_all_its_shapes():
    function = Shift()
    tracker = cvat_aa.Tracker(function)
    ids = tracker.init_tracking(frame(), [BOX, BOX])
    tracker.track(frame(seed=1), ids)
    assert function.preprocessed == 2


def test_a_shape_type_the_spec_does_not_support_is_refused_with_cvat_clis_message():
    tracker = cvat_aa.Tracker(Shift())
    polygon = sdk_aa.TrackableShape(type="polygon", points=[1, 1, 5, 1, 5, 5])
    with pytest.raises(BadRequestError, match="^Unsupported shape type 'polygon'$"):
        tracker.init_tracking(frame(), [BOX, polygon])


def test_a_shape_to_track_with_bad_points_is_a_bad_request():
    tracker = cvat_aa.Tracker(Shift())
    with pytest.raises(BadRequestError, match="3 coordinates"):
        tracker.init_tracking(frame(), [sdk_aa.TrackableShape(type="rectangle", points=[1, 2, 3])])


def test_an_unknown_state_is_refused_as_possibly_expired():
    tracker = cvat_aa.Tracker(Shift())
    with pytest.raises(
        BadRequestError, match="^Tracking state 'nope' not found - possibly expired$"
    ):
        tracker.track(frame(), ["nope"])


def test_a_state_unused_for_longer_than_the_maximum_age_expires():
    tracker = cvat_aa.Tracker(Shift(), state_max_age_s=0)
    [state] = tracker.init_tracking(frame(), [BOX])
    with pytest.raises(BadRequestError, match="possibly expired"):
        tracker.track(frame(), [state])


def test_the_least_recently_used_states_go_beyond_the_maximum_count():
    tracker = cvat_aa.Tracker(Shift(), max_states=2)
    first, second = tracker.init_tracking(frame(), [BOX, BOX])
    tracker.track(frame(), [first])
    [third] = tracker.init_tracking(frame(), [BOX])
    tracker.track(frame(), [first, third])
    with pytest.raises(BadRequestError, match="possibly expired"):
        tracker.track(frame(), [second])


def test_a_state_made_for_one_task_is_refused_for_another():
    tracker = cvat_aa.Tracker(Shift())
    [state] = tracker.init_tracking(frame(), [BOX], scope=1)
    with pytest.raises(BadRequestError, match=f"^Tracking state '{state}' is not for task #2$"):
        tracker.track(frame(), [state], scope=2)


def test_an_image_of_another_size_is_refused_with_cvat_clis_message():
    tracker = cvat_aa.Tracker(Shift())
    [state] = tracker.init_tracking(frame(), [BOX])
    with pytest.raises(
        BadRequestError,
        match="^Image sizes of the start frame and the current frame are different$",
    ):
        tracker.track(frame(width=81), [state])


def test_a_forgotten_state_is_gone():
    tracker = cvat_aa.Tracker(Shift())
    [state] = tracker.init_tracking(frame(), [BOX])
    tracker.forget([state, "unknown"])
    with pytest.raises(BadRequestError, match="not found"):
        tracker.track(frame(), [state])


def test_a_lost_object_is_none():
    tracker = cvat_aa.Tracker(Returning(None))
    ids = tracker.init_tracking(frame(), [BOX])
    assert tracker.track(frame(), ids) == [None]


def test_a_shape_of_another_type_than_the_original_gets_cvat_clis_message():
    tracker = cvat_aa.Tracker(Returning(sdk_aa.TrackableShape(type="points", points=[1, 1])))
    ids = tracker.init_tracking(frame(), [BOX])
    with pytest.raises(
        cvat_aa.BadFunctionError,
        match="^function output shape of type 'points', but original shape was of type"
        " 'rectangle'$",
    ):
        tracker.track(frame(), ids)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (sdk_aa.TrackableShape(type="rectangle", points=[1, 1, 5]), "3 coordinates"),
        (sdk_aa.TrackableShape(type="rectangle", points=[1, 1, 5, float("nan")]), "non-finite"),
        (sdk_aa.TrackableShape(type="rectangle", points=[5, 5, 1, 1]), "x2 < x1"),
        ({"type": "rectangle", "points": [1, 1, 5, 5]}, "not a TrackableShape"),
    ],
    ids=["points count", "finite", "inverted", "not a trackable shape"],
)
def test_a_tracked_shape_that_breaks_the_rules_is_a_bad_function(result, message):
    tracker = cvat_aa.Tracker(Returning(result))
    ids = tracker.init_tracking(frame(), [BOX])
    with pytest.raises(cvat_aa.BadFunctionError, match=message):
        tracker.track(frame(), ids)


def test_a_rectangle_moving_past_the_edge_is_clipped_and_one_wholly_outside_is_lost():
    tracker = cvat_aa.Tracker(Shift(dx=65))
    [state] = tracker.init_tracking(frame(), [BOX])
    [clipped] = tracker.track(frame(), [state])
    assert clipped.points == [75, 10, 80, 20]
    assert tracker.track(frame(), [state]) == [None]


def test_numpy_coordinates_become_python_numbers():
    shape = sdk_aa.TrackableShape(type="rectangle", points=list(np.float32([1, 1, 5, 5])))
    tracker = cvat_aa.Tracker(Returning(shape))
    [tracked] = tracker.track(frame(), tracker.init_tracking(frame(), [BOX]))
    assert all(type(p) is float for p in tracked.points)


def test_a_tracker_refuses_an_interaction_function():
    class Interaction:
        spec = sdk_aa.InteractionFunctionSpec(min_pos_points=1)

        def detect(self, context, pp_image, prompts):
            return []

    with pytest.raises(cvat_aa.BadFunctionError, match="interaction function, not a tracking"):
        cvat_aa.Tracker(Interaction())


def test_what_the_function_raises_is_a_function_failure():
    class Failing(Returning):
        def track(self, context, pp_image, state):
            raise RuntimeError("lost the model")

    tracker = cvat_aa.Tracker(Failing(None))
    ids = tracker.init_tracking(frame(), [BOX])
    with pytest.raises(FunctionFailedError, match="RuntimeError: lost the model"):
        tracker.track(frame(), ids)


def test_a_hook_plugin_can_wrap_tracking(fresh_plugin_manager):
    class Freeze:
        @cvat_aa.hookimpl(wrapper=True)
        def cvat_aa_track(self, function, context, pp_image, state):
            yield
            return sdk_aa.TrackableShape(type="rectangle", points=[0, 0, 1, 1])

    from cvat_aa.plugins import get_plugin_manager

    get_plugin_manager().register(Freeze())
    tracker = cvat_aa.Tracker(Shift())
    [shape] = tracker.track(frame(), tracker.init_tracking(frame(), [BOX]))
    assert shape.points == [0, 0, 1, 1]


def test_states_are_safe_to_use_from_several_threads():
    tracker = cvat_aa.Tracker(Shift(dx=0))
    ids = tracker.init_tracking(frame(), [BOX] * 8)
    errors = []

    def follow(state_id):
        try:
            for _ in range(5):
                tracker.track(frame(), [state_id])
        except cvat_aa.CvatAaError as ex:  # collected: the test asserts there were none
            errors.append(ex)

    threads = [threading.Thread(target=follow, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_annotating_files_with_a_tracking_function_says_how_it_is_used(tmp_path):
    frame().save(tmp_path / "a.png")
    with pytest.raises(
        cvat_aa.BadFunctionError,
        match="function 'Shift' is a tracking function: .* run it over frames with"
        " 'cvat-aa track', or serve it",
    ):
        cvat_aa.annotate_images(Shift(), [tmp_path / "a.png"])


def test_the_annotate_command_refuses_a_tracking_function_before_connecting(
    make_distribution, capsys
):
    from cvat_aa.cli import main

    make_distribution(
        "cvat-aa-follows",
        modules={
            "follows_m": (
                "import cvat_sdk.auto_annotation as cvataa\n"
                "spec = cvataa.TrackingFunctionSpec(supported_shape_types=['rectangle'])\n"
                "def init_tracking_state(context, pp_image, shape):\n"
                "    return shape\n"
                "def track(context, pp_image, state):\n"
                "    return state\n"
            )
        },
        entry_points={"cvat_aa.functions": {"follows": "follows_m"}},
    )
    # No server is given: the run would fail to connect if it got that far.
    assert main(["annotate", "1", "--function", "follows"]) == 5
    err = capsys.readouterr().err
    assert (
        "function 'follows' is a tracking function: CVAT calls it to follow shapes from frame to"
        " frame; run it over frames with 'cvat-aa track', or serve it with"
        " 'cvat-aa serve -f follows' or 'cvat-aa agent run'" in err
    )


# --- two-way compatibility: the same shapes as cvat-cli's agent worker --------------------
#
# cvat-cli's agent runs a tracking function in a worker process through module-level job
# functions (cvat_cli/_internal/agent_driver_tracking.py). They are called here directly, with
# the worker's current function patched: cvat-cli accepts what a cvat-aa function returns, and
# a function written for cvat-sdk follows shapes through Tracker as it does there.


@pytest.fixture
def cvat_cli_worker(monkeypatch):
    from cvat_cli._internal import agent_driver_tracking

    def worker_running(function):
        monkeypatch.setattr(agent_driver_tracking, "worker_current_function", lambda: function)
        monkeypatch.setattr(
            agent_driver_tracking,
            "_tracking_states",
            agent_driver_tracking._TrackingStateContainer(),
            raising=False,
        )
        monkeypatch.setattr(
            agent_driver_tracking,
            "_tracking_state_id_generator",
            lambda: secrets.token_urlsafe(24),
            raising=False,
        )
        return agent_driver_tracking

    return worker_running


def _example_tracker():
    from cvat_aa.plugins import find_function

    return find_function("template_tracker").load(search=6)


def _moving_frames():
    """Four frames of the same random texture, moved by (2, 1) pixels each time."""
    pixels = np.random.default_rng(3).integers(0, 255, (60, 80, 3), np.uint8)
    return [PIL.Image.fromarray(np.roll(pixels, (i, 2 * i), axis=(0, 1))) for i in range(4)]


@pytest.mark.parametrize(
    "make_function", [Shift, _example_tracker], ids=["cvat-sdk", "cvat-aa example"]
)
def test_cvat_cli_and_tracker_give_the_same_shapes_over_three_frames(
    cvat_cli_worker, make_function
):
    first, *later = _moving_frames()
    shapes = [BOX, sdk_aa.TrackableShape(type="rectangle", points=[30, 20.5, 50, 45])]

    cli = cvat_cli_worker(make_function())
    cli_states = cli._worker_job_init_tracking(7, first, shapes)
    from_cli = [cli._worker_job_track(7, frame, cli_states) for frame in later]

    tracker = cvat_aa.Tracker(make_function())
    states = tracker.init_tracking(first, shapes, scope=7)
    ours = [tracker.track(frame, states, scope=7) for frame in later]

    assert ours == from_cli
    assert all(shape is not None for frame in ours for shape in frame)
    assert ours[0][0].points != BOX.points  # the shapes did move


def test_cvat_cli_refuses_a_changed_shape_type_as_tracker_does(cvat_cli_worker):
    wrong = sdk_aa.TrackableShape(type="points", points=[1, 1])
    cli = cvat_cli_worker(Preprocessing(wrong))
    states = cli._worker_job_init_tracking(1, frame(), [BOX])
    with pytest.raises(sdk_aa.BadFunctionError) as from_cli:
        cli._worker_job_track(1, frame(), states)

    tracker = cvat_aa.Tracker(Preprocessing(wrong))
    with pytest.raises(cvat_aa.BadFunctionError) as ours:
        tracker.track(frame(), tracker.init_tracking(frame(), [BOX]))
    assert str(ours.value) == str(from_cli.value)


class Preprocessing(Returning):
    """cvat-cli's track job calls preprocess_image whether the function has it or not."""

    def preprocess_image(self, context, image):
        return image


def test_annotating_files_with_a_tracking_function_by_name_uses_that_name(tmp_path):
    frame().save(tmp_path / "a.png")
    with pytest.raises(cvat_aa.BadFunctionError, match="'cvat-aa serve -f template_tracker'"):
        cvat_aa.annotate_images("template_tracker", [tmp_path / "a.png"])
