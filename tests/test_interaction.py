"""Interactor: prompts checked as cvat-cli checks them, preprocessed images cached, every shape
validated and fitted into the image before it leaves the process."""

from __future__ import annotations

import json
import threading

import attrs
import cvat_aa
import cvat_sdk.auto_annotation as sdk_aa
import numpy as np
import PIL.Image
import pytest
from cvat_aa.errors import BadRequestError, FunctionFailedError
from cvat_sdk import models
from cvat_sdk.masks import encode_mask


class BoxAroundPoint:
    """Written against cvat-sdk only: a square of side 10 around the first positive point."""

    def __init__(self, spec=None, *, shape_type="polygon", confidence="0.5"):
        self.spec = spec or sdk_aa.InteractionFunctionSpec(
            min_pos_points=1, min_neg_points=0, min_bounding_boxes=0
        )
        self.shape_type = shape_type
        self.confidence = confidence
        self.preprocessed = 0
        self.detected = 0

    def preprocess_image(self, context, image):
        assert isinstance(context, sdk_aa.InteractionFunctionContext)
        self.preprocessed += 1
        return np.asarray(image)

    def detect(self, context, pp_image, prompts):
        assert isinstance(pp_image, np.ndarray)
        self.detected += 1
        x, y = prompts.pos_points[0]
        if self.shape_type == "mask":
            bitmap = np.zeros(pp_image.shape[:2], dtype=bool)
            bitmap[int(y) - 5 : int(y) + 5, int(x) - 5 : int(x) + 5] = True
            points = encode_mask(bitmap)
        else:
            points = [x - 5, y - 5, x + 5, y - 5, x + 5, y + 5, x - 5, y + 5]
        return [
            sdk_aa.InteractionResultShape(
                type=self.shape_type,
                points=points,
                attributes=[
                    models.AttributeValRequest(
                        spec_id=sdk_aa.InteractionResultAttributes.CONFIDENCE,
                        value=self.confidence,
                    )
                ],
            )
        ]


class Returning:
    """An interaction function that returns what it is given (no preprocess_image)."""

    spec = sdk_aa.InteractionFunctionSpec(min_pos_points=0)

    def __init__(self, *shapes):
        self.shapes = list(shapes)

    def detect(self, context, pp_image, prompts):
        assert isinstance(pp_image, PIL.Image.Image)
        return self.shapes


@pytest.fixture
def image():
    return PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8))


def test_prompts_from_a_cvat_request_are_tuples_of_floats():
    prompts = cvat_aa.Prompts.from_request([[1, 2]], [[3, 4.5]], [[0, 0], [10, 20]])
    assert prompts.pos_points == ((1.0, 2.0),)
    assert prompts.neg_points == ((3.0, 4.5),)
    assert prompts.bounding_box == ((0.0, 0.0), (10.0, 20.0))
    assert isinstance(prompts, sdk_aa.InteractionPrompts)


@pytest.mark.parametrize("no_box", [None, []])
def test_an_empty_obj_bbox_is_no_box(no_box):
    assert cvat_aa.Prompts.from_request([[1, 2]], [], no_box).bounding_box is None


@pytest.mark.parametrize(
    "request_args",
    [([[1]],), ([[1, "a"]],), ([[1, 2]], [[float("nan"), 1]]), ([], [], [[0, 0]])],
    ids=["one coordinate", "not a number", "not finite", "half a box"],
)
def test_malformed_prompts_are_a_bad_request(request_args):
    with pytest.raises(BadRequestError):
        cvat_aa.Prompts.from_request(*request_args)


@pytest.mark.parametrize(
    ("spec", "prompts", "message"),
    [
        ({"min_pos_points": 2}, {"pos_points": [(1, 1)]}, "not enough positive points"),
        (
            {"min_pos_points": 0},
            {"neg_points": [(1, 1)]},
            "negative points are not supported",
        ),
        ({"min_pos_points": 0, "min_neg_points": 1}, {}, "not enough negative points"),
        (
            {"min_pos_points": 0},
            {"bounding_box": ((0, 0), (1, 1))},
            "bounding boxes are not supported",
        ),
        ({"min_pos_points": 0, "min_bounding_boxes": 1}, {}, "a bounding box is required"),
    ],
)
def test_prompts_the_spec_does_not_allow_are_refused_with_cvat_clis_messages(
    spec, prompts, message
):
    with pytest.raises(BadRequestError, match=f"^{message}$"):
        cvat_aa.check_prompts(sdk_aa.InteractionFunctionSpec(**spec), cvat_aa.Prompts(**prompts))


def test_prompts_the_spec_allows_pass():
    spec = sdk_aa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)
    cvat_aa.check_prompts(spec, cvat_aa.Prompts(pos_points=[(1, 1)], bounding_box=((0, 0), (2, 2))))


def test_a_function_written_for_cvat_sdk_finds_a_shape(image):
    interactor = cvat_aa.Interactor(BoxAroundPoint())
    [shape] = interactor.interact(image, cvat_aa.Prompts(pos_points=[(20, 30)]))
    assert shape.type == "polygon"
    assert shape.points == [15, 25, 25, 25, 25, 35, 15, 35]
    assert shape.attributes[0].value == "0.5"


class Detection:
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])

    def detect(self, context, image):
        return []


def test_an_interactor_refuses_a_detection_function():
    with pytest.raises(cvat_aa.BadFunctionError, match="detection function, not an interaction"):
        cvat_aa.Interactor(Detection())


def test_the_preprocessed_image_is_reused_under_the_same_cache_key(image):
    function = BoxAroundPoint()
    interactor = cvat_aa.Interactor(function)
    loads = []

    def load():
        loads.append(1)
        return image

    for x in (10, 20, 30):
        interactor.interact(load, cvat_aa.Prompts(pos_points=[(x, 30)]), cache_key=("task", 1, 0))
    assert (len(loads), function.preprocessed, function.detected) == (1, 1, 3)


def test_without_a_cache_key_every_call_preprocesses(image):
    function = BoxAroundPoint()
    interactor = cvat_aa.Interactor(function)
    for _ in range(2):
        interactor.interact(image, cvat_aa.Prompts(pos_points=[(20, 30)]))
    assert function.preprocessed == 2


def test_the_cache_keeps_the_most_recently_used_entries(image):
    function = BoxAroundPoint()
    interactor = cvat_aa.Interactor(function, cache_entries=2)
    prompts = cvat_aa.Prompts(pos_points=[(20, 30)])
    for key in ("a", "b", "a", "c", "a"):  # "b" is the least recently used when "c" comes
        interactor.interact(image, prompts, cache_key=key)
    assert function.preprocessed == 3
    interactor.interact(image, prompts, cache_key="b")
    assert function.preprocessed == 4


def test_a_cached_image_expires_when_unused_for_longer_than_the_maximum_age(image):
    function = BoxAroundPoint()
    interactor = cvat_aa.Interactor(function, cache_max_age_s=0)
    prompts = cvat_aa.Prompts(pos_points=[(20, 30)])
    interactor.interact(image, prompts, cache_key="a")
    interactor.interact(image, prompts, cache_key="a")
    assert function.preprocessed == 2


def test_bad_prompts_are_refused_before_the_image_is_loaded(image):
    interactor = cvat_aa.Interactor(BoxAroundPoint())

    def load():
        raise AssertionError("the image must not be loaded")

    with pytest.raises(BadRequestError, match="not enough positive points"):
        interactor.interact(load, cvat_aa.Prompts())


def test_a_mask_inside_the_image_is_returned_unchanged(image):
    interactor = cvat_aa.Interactor(BoxAroundPoint(shape_type="mask"))
    [shape] = interactor.interact(image, cvat_aa.Prompts(pos_points=[(20, 30)]))
    assert shape.type == "mask" and shape.points[-4:] == [15, 25, 24, 34]


def test_a_polygon_past_the_edge_is_clipped_to_the_image(image):
    interactor = cvat_aa.Interactor(BoxAroundPoint())
    [shape] = interactor.interact(image, cvat_aa.Prompts(pos_points=[(78, 30)]))
    assert max(shape.points[0::2]) == 80


def test_a_shape_wholly_outside_the_image_is_dropped(image):
    outside = sdk_aa.InteractionResultShape(type="polygon", points=[100, 100, 110, 100, 110, 110])
    assert cvat_aa.Interactor(Returning(outside)).interact(image, cvat_aa.Prompts()) == []


def test_numpy_numbers_become_python_numbers(image):
    shape = sdk_aa.InteractionResultShape(
        type="polygon", points=list(np.array([1, 1, 9, 1, 9, 9], dtype=np.float32))
    )
    [returned] = cvat_aa.Interactor(Returning(shape)).interact(image, cvat_aa.Prompts())
    assert all(type(p) is float for p in returned.points)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (
            sdk_aa.InteractionResultShape(type="blob", points=[1, 1, 2, 2]),
            "of type 'blob', which is not a shape type",
        ),
        (
            sdk_aa.InteractionResultShape(type="polygon", points=[1, 1, 2, 2]),
            "polygon shape with 4 coordinates",
        ),
        (
            sdk_aa.InteractionResultShape(type="polygon", points=[1, 1, 2, float("inf"), 3, 3]),
            "non-finite coordinate",
        ),
        (
            sdk_aa.InteractionResultShape(type="mask", points=[0, 10000, 0, 0, 99, 99]),
            "does not fit in the 80x60 frame",
        ),
        (models.LabeledShapeRequest(type="polygon", points=[], label_id=0, frame=0), "not an"),
    ],
    ids=["type", "points count", "finite", "mask bounds", "not a result shape"],
)
def test_a_shape_that_breaks_the_rules_is_a_bad_function(image, shape, message):
    with pytest.raises(cvat_aa.BadFunctionError, match=message):
        cvat_aa.Interactor(Returning(shape)).interact(image, cvat_aa.Prompts())


def test_an_attribute_that_is_not_a_result_attribute_gets_cvat_sdks_message(image):
    shape = sdk_aa.InteractionResultShape(type="polygon", points=[1, 1, 9, 1, 9, 9])
    # Changed behind cvat-sdk's own validator, as a function that bypassed it would be.
    object.__setattr__(shape, "attributes", [models.AttributeValRequest(spec_id=7, value="1")])
    with pytest.raises(
        cvat_aa.BadFunctionError, match="^7 is not one of InteractionResultAttributes members$"
    ):
        cvat_aa.Interactor(Returning(shape)).interact(image, cvat_aa.Prompts())


def test_cvat_sdks_own_error_from_the_function_becomes_ours(image):
    class BuildsABadShape(Returning):
        def detect(self, context, pp_image, prompts):
            return [
                sdk_aa.InteractionResultShape(
                    type="polygon",
                    points=[1, 1, 9, 1, 9, 9],
                    attributes=[models.AttributeValRequest(spec_id=3, value="1")],
                )
            ]

    with pytest.raises(cvat_aa.BadFunctionError, match="3 is not one of"):
        cvat_aa.Interactor(BuildsABadShape()).interact(image, cvat_aa.Prompts())


@pytest.mark.parametrize("confidence", ["1.5", "-0.1", "nan", "high"])
def test_a_confidence_outside_0_to_1_is_a_bad_function(image, confidence):
    interactor = cvat_aa.Interactor(BoxAroundPoint(confidence=confidence))
    with pytest.raises(cvat_aa.BadFunctionError, match="confidence"):
        interactor.interact(image, cvat_aa.Prompts(pos_points=[(20, 30)]))


def test_what_the_function_raises_is_a_function_failure_that_carries_it(image):
    class Failing(Returning):
        def detect(self, context, pp_image, prompts):
            raise ValueError("no model")

    with pytest.raises(FunctionFailedError, match="ValueError: no model") as caught:
        cvat_aa.Interactor(Failing()).interact(image, cvat_aa.Prompts())
    assert isinstance(caught.value.original, ValueError)


def test_a_hook_plugin_can_wrap_interaction(image, fresh_plugin_manager):
    class DropLowConfidence:
        @cvat_aa.hookimpl(wrapper=True)
        def cvat_aa_interact(self, function, context, pp_image, prompts):
            shapes = yield
            return [s for s in shapes if float(s.attributes[0].value) >= 0.7]

    from cvat_aa.plugins import get_plugin_manager

    get_plugin_manager().register(DropLowConfidence())
    interactor = cvat_aa.Interactor(BoxAroundPoint())
    assert interactor.interact(image, cvat_aa.Prompts(pos_points=[(20, 30)])) == []


def test_calls_from_several_threads_share_one_preprocessed_image_safely(image):
    function = BoxAroundPoint()
    interactor = cvat_aa.Interactor(function)
    interactor.interact(image, cvat_aa.Prompts(pos_points=[(20, 30)]), cache_key="k")
    results = []

    def click(x):
        results.append(
            interactor.interact(image, cvat_aa.Prompts(pos_points=[(x, 30)]), cache_key="k")
        )

    threads = [threading.Thread(target=click, args=(10 + i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and function.preprocessed == 1


def test_annotating_files_with_an_interaction_function_says_how_it_is_used(tmp_path, image):
    image.save(tmp_path / "a.png")
    with pytest.raises(
        cvat_aa.BadFunctionError,
        match="function 'BoxAroundPoint' is an interaction function: CVAT calls it when a user"
        " clicks in the UI; serve it with 'cvat-aa serve -f BoxAroundPoint'",
    ):
        cvat_aa.annotate_images(BoxAroundPoint(), [tmp_path / "a.png"])


def test_the_annotate_files_command_refuses_an_interaction_function_with_exit_5(
    tmp_path, image, capsys
):
    from cvat_aa.cli import main

    image.save(tmp_path / "a.png")
    (tmp_path / "clicks.py").write_text(
        "import cvat_aa\n"
        "spec = cvat_aa.InteractionFunctionSpec(min_pos_points=1)\n"
        "def detect(context, pp_image, prompts):\n"
        "    return []\n"
    )
    code = main(
        ["annotate-files", "--function-file", str(tmp_path / "clicks.py"), str(tmp_path / "a.png")]
    )
    assert code == 5
    assert "is an interaction function" in capsys.readouterr().err


# --- two-way compatibility: the same shapes as cvat-cli's agent worker --------------------
#
# cvat-cli's agent runs an interaction function in a worker process through module-level job
# functions (cvat_cli/_internal/agent_driver_interaction.py). They are called here directly,
# with the worker's current function patched: cvat-cli accepts what a cvat-aa function
# returns, and a function written for cvat-sdk gives through Interactor what it gives there.


@pytest.fixture
def cvat_cli_worker(monkeypatch):
    from cvat_cli._internal import agent_driver_interaction

    def worker_running(function):
        monkeypatch.setattr(agent_driver_interaction, "worker_current_function", lambda: function)
        monkeypatch.setattr(
            agent_driver_interaction,
            "_pp_image_cache",
            agent_driver_interaction._PpImageCache(),
            raising=False,
        )
        return agent_driver_interaction

    return worker_running


def _cli_prompts(agent_driver_interaction, **prompts):
    defaults = {"pos_points": (), "neg_points": (), "bounding_box": None}
    return agent_driver_interaction._InteractionPromptsImpl(**{**defaults, **prompts})


def _as_sent(shape):
    """The shape as JSON, as cvat-cli's driver sends it (attrs.asdict, models as dicts)."""
    return json.dumps(attrs.asdict(shape), default=lambda model: model.to_dict())


def _example_interactor():
    from cvat_aa.plugins import find_function

    return find_function("colour_region").load(tolerance=25)


@pytest.mark.parametrize(
    "make_function",
    [
        lambda: BoxAroundPoint(),
        lambda: BoxAroundPoint(shape_type="mask"),
        _example_interactor,
    ],
    ids=["cvat-sdk polygon", "cvat-sdk mask", "cvat-aa example"],
)
@pytest.mark.parametrize(
    "prompts",
    [
        {"pos_points": ((20.0, 30.0),)},
        {"pos_points": ((20.0, 30.0), (22.0, 31.0)), "neg_points": ((40.0, 10.0),)},
        {"pos_points": ((20.0, 30.0),), "bounding_box": ((10.0, 20.0), (30.0, 40.0))},
    ],
    ids=["one point", "negative point", "box"],
)
def test_cvat_cli_and_interactor_give_the_same_shapes(
    cvat_cli_worker, image, make_function, prompts
):
    cli = cvat_cli_worker(make_function())
    cli_prompts = _cli_prompts(cli, **prompts)
    from_cli = cli._worker_job_interact(("task", 1, 0), image, cli_prompts)
    # Again from cvat-cli's cache of preprocessed images: the same answer.
    assert cli._worker_job_interact_from_cache(("task", 1, 0), cli_prompts) == from_cli

    interactor = cvat_aa.Interactor(make_function())
    ours = interactor.interact(image, cli_prompts)  # cvat-cli's own prompts object
    assert ours == interactor.interact(image, cvat_aa.Prompts(**prompts), cache_key="k")
    assert [_as_sent(s) for s in ours] == [_as_sent(s) for s in from_cli]
    assert len(ours) > 0


def test_a_mask_keeps_the_whole_numbers_cvat_cli_would_send(cvat_cli_worker, image):
    cli = cvat_cli_worker(BoxAroundPoint(shape_type="mask"))
    prompts = cvat_aa.Prompts(pos_points=[(20, 30)])
    [from_cli] = cli._worker_job_interact("k", image, prompts)
    [ours] = cvat_aa.Interactor(BoxAroundPoint(shape_type="mask")).interact(image, prompts)
    assert _as_sent(ours) == _as_sent(from_cli)


def test_annotate_task_refuses_an_interaction_function_and_leaves_the_task_alone(
    cvat_server, cvat_client
):
    task = cvat_server.create_task(
        "clicks",
        images=[PIL.Image.new("RGB", (20, 16), "red")],
        labels=[{"name": "car", "type": "rectangle"}],
    )
    with pytest.raises(cvat_aa.BadFunctionError, match="is an interaction function"):
        cvat_aa.annotate_task(cvat_client, task, BoxAroundPoint())
    assert cvat_server.annotations(task)["shapes"] == []
