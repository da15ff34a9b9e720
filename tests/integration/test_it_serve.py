"""``cvat-aa serve`` behind the server's own lambda manager, as CVAT's UI drives it.

The module's ``served`` fixture runs ``cvat-aa serve`` where the server expects its Nuclio
dashboard (see serve_process.py); the tests call CVAT's ``/api/lambda`` endpoints with
cvat-sdk and read the results back. CVAT sends a Nuclio function the frame's pixels alone, so
the function served is ``it_frame_code``, which reads the frame number from a code painted
into every frame the suite uploads and otherwise outputs what ``it_every_shape`` does.

What CVAT's lambda manager (2.73, ``DetectionResultConverter``) does not take from a function,
and so sets to the same value on every shape it saves, whatever the function said:

* ``score``: the result's ``confidence`` is not read; CVAT's default score 1 is stored;
* ``occluded``: always false;
* ``z_order``: always 0.

Everything else (labels, types, points, rotation, attributes, groups, skeleton elements and
their ``outside``, tags, frames, source "auto") is what ``cvat-aa annotate`` uploads.

The interactor and tracker scenarios call them as CVAT's AI Tools do: an interactor with the
clicks' points (and a box), a tracker with the shapes to follow on a first frame, then with
the states CVAT signed and gave back on each frame after it.
"""

from __future__ import annotations

import json
import time

import cvat_aa_it_frame_code
import numpy as np
import pytest
from cvat_aa.serve.nuclio import interactor_help
from cvat_aa_it_functions import CONFIDENCE, SPEC, TRACKER_STEP, BoxOfPoints
from cvat_sdk import models
from cvat_sdk.api_client import exceptions
from cvat_sdk.masks import encode_mask
from readback import (
    NOTHING,
    assert_annotations,
    complete,
    complete_annotations,
    expected_annotations,
    server_annotations,
    task_names,
)
from serve_process import (
    FAILS_ON_2,
    FRAME_CODE,
    FRAME_CODE_PLUGIN,
    INTERACTOR,
    INVALID_ON_1,
    POLYGON_INTERACTOR,
    SERVED,
    TRACKER,
)
from workspace import FRAME_SIZE

#: The fields CVAT's lambda manager sets itself, and the value it sets (see the module doc).
SET_BY_CVAT = {"score": 1.0, "occluded": False, "z_order": 0}

REQUEST_TIMEOUT = 180.0


def lambda_request(client, **fields) -> models.FunctionCall:
    """``POST /api/lambda/requests``, then its state once it has finished or failed."""
    api = client.api_client.lambda_api
    request, _ = api.create_requests(models.FunctionCallRequest(**fields))
    deadline = time.monotonic() + REQUEST_TIMEOUT
    while str(request.status) not in ("finished", "failed"):
        assert time.monotonic() < deadline, f"request {request.id} is still {request.status}"
        time.sleep(0.3)
        request, _ = api.retrieve_requests(request.id)
    return request


def call_function(client, function_id: str, **fields) -> dict:
    """``POST /api/lambda/functions/{id}`` with ``fields`` as CVAT's UI sends them: the
    annotations of one frame, as CVAT answers.

    cvat-sdk's ``create_functions`` would send ``frame`` as a float (3.0: its model of the
    request types only ``task`` and ``job``), which CVAT 2.73 takes too; the UI sends integers.
    """
    api_client = client.api_client
    _, response = api_client.call_api(
        f"/api/lambda/functions/{function_id}",
        "POST",
        header_params={"Content-Type": "application/json"},
        body=fields,
        auth_settings=api_client.lambda_api.create_functions_endpoint.settings["auth"],
        _parse_response=False,
    )
    return json.loads(response.data)


def _text(value) -> str:
    return str(getattr(value, "value", value))  # cvat-sdk's enums


def cvat_labels(labels) -> list[dict]:
    """A function spec's labels as CVAT lists a function's (``LambdaFunction.parse_labels``)."""
    listed = []
    for label in labels:
        item = {
            "name": label.name,
            "type": _text(label.type),
            "attributes": [
                {"name": a.name, "input_type": _text(a.input_type), "values": list(a.values)}
                for a in getattr(label, "attributes", None) or []
            ],
        }
        if item["type"] == "skeleton":
            # cvat-sdk's skeleton_label_spec makes no svg: CVAT lists an empty one.
            item["sublabels"] = cvat_labels(label.sublabels)
            item["svg"] = ""
        listed.append(item)
    return listed


def shape_values(annotations: dict[str, list], field: str) -> set:
    """Every value ``field`` has on the shapes and their elements."""
    values = set()
    for shape in annotations["shapes"]:
        for item in [shape, *shape.get("elements", [])]:
            values.add(item[field])
    return values


def without(annotations: dict[str, list], fields) -> dict[str, list]:
    """The annotations with ``fields`` left out of every shape and element."""

    def strip(item: dict) -> dict:
        kept = {k: v for k, v in item.items() if k not in fields}
        if "elements" in kept:
            kept["elements"] = [strip(e) for e in kept["elements"]]
        return kept

    return {
        **annotations,
        "shapes": sorted(
            (strip(s) for s in annotations["shapes"]), key=lambda s: json.dumps(s, sort_keys=True)
        ),
    }


def without_label(annotations: dict[str, list], label: str) -> dict[str, list]:
    return {**annotations, "shapes": [s for s in annotations["shapes"] if s["label_id"] != label]}


def annotate(cvat_aa_cli, task: int, *args: str) -> None:
    result = cvat_aa_cli("annotate", str(task), "--function", FRAME_CODE_PLUGIN, *args)
    assert result.returncode == 0, result.stderr


def listed_function(function) -> dict:
    """How CVAT lists a function of :data:`SERVED` (``LambdaFunction.to_dict``)."""
    summary = cvat_aa_it_frame_code.__doc__.splitlines()[0]  # the plugin's, by default
    listed = {
        "id": function.id,
        "kind": function.kind,
        "labels_v2": cvat_labels(SPEC.labels) if function.kind == "detector" else [],
        "description": function.description or summary,
        "name": function.display_name or function.id,
        "version": 1,
    }
    if function.kind == "interactor":
        listed.update(
            {
                "min_pos_points": 1,
                "min_neg_points": 0,
                "startswith_box": False,
                "startswith_box_optional": True,
                "help_message": interactor_help(BoxOfPoints.spec),
                "animated_gif": "",
            }
        )
    elif function.kind == "tracker":
        listed["supported_shape_types"] = ["polygon", "rectangle"]
    return listed


def test_cvat_lists_exactly_the_served_functions(served, client):
    api = client.api_client.lambda_api

    _, response = api.list_functions(_parse_response=False)

    listed = {function["id"]: function for function in json.loads(response.data)}
    assert sorted(listed) == sorted(function.id for function in SERVED)
    for function in SERVED:
        expected = listed_function(function)
        assert listed[function.id] == expected
        _, response = api.retrieve_functions(function.id, _parse_response=False)
        assert json.loads(response.data) == expected


def test_a_whole_task_request_leaves_what_annotate_leaves(served, cvat_aa_cli, client, workspace):
    by_cvat = workspace.create_task("serve-task", frames=8, segment_size=3)
    by_annotate = workspace.create_task("serve-task-annotate", frames=8, segment_size=3)
    assert len(client.tasks.retrieve(by_cvat).get_jobs()) == 3
    annotate(cvat_aa_cli, by_annotate)

    request = lambda_request(client, function=FRAME_CODE.id, task=by_cvat)

    assert (request.status, request.progress) == ("finished", 100), request.exc_info
    assert_annotations(server_annotations(client, by_cvat), expected_annotations(range(8)))
    from_cvat = complete_annotations(client, by_cvat)
    from_annotate = complete_annotations(client, by_annotate)
    for field, value in SET_BY_CVAT.items():
        assert shape_values(from_cvat, field) == {value}, field
        assert len(shape_values(from_annotate, field)) > 1, f"the function sets no {field}"
    # Tags have no score; a skeleton's elements have cvat-sdk's default, 1.
    scored = {CONFIDENCE[name] for name in CONFIDENCE if name != "night"}
    assert shape_values(from_annotate, "score") == scored | {1.0}
    assert_annotations(without(from_cvat, SET_BY_CVAT), without(from_annotate, SET_BY_CVAT))


def test_a_single_frame_call_returns_what_annotate_gives_on_that_frame(
    served, cvat_aa_cli, client, workspace
):
    task = workspace.create_task("serve-frame", frames=5)
    annotate(cvat_aa_cli, task, "--frames", "3")
    labels, specs = task_names(client, task)
    by_annotate = complete_annotations(client, task)

    answer = call_function(client, FRAME_CODE.id, task=task, frame=3)

    assert answer["tracks"] == []
    by_cvat = complete(answer, labels, specs)
    for field, value in SET_BY_CVAT.items():
        assert shape_values(by_cvat, field) == {value}, field
    assert_annotations(without(by_cvat, SET_BY_CVAT), without(by_annotate, SET_BY_CVAT))


def test_a_single_frame_call_can_turn_the_mask_into_a_polygon(
    served, cvat_aa_cli, client, workspace
):
    task = workspace.create_task("serve-frame-polygon", frames=5)
    labels, specs = task_names(client, task)
    as_mask = complete(call_function(client, FRAME_CODE.id, task=task, frame=3), labels, specs)

    answer = call_function(client, FRAME_CODE.id, task=task, frame=3, conv_mask_to_poly=True)

    as_polygon = complete(answer, labels, specs)
    mask = next(s for s in as_mask["shapes"] if s["label_id"] == "stain")
    polygon = next(s for s in as_polygon["shapes"] if s["label_id"] == "stain")
    assert (mask["type"], polygon["type"]) == ("mask", "polygon")
    x1, y1, x2, y2 = mask["points"][-4:]
    xs, ys = polygon["points"][0::2], polygon["points"][1::2]
    assert len(xs) >= 3
    # The outline runs along the mask's pixels' edges: within half a pixel of its box.
    assert x1 - 0.5 <= min(xs) and max(xs) <= x2 + 0.5, polygon
    assert y1 - 0.5 <= min(ys) and max(ys) <= y2 + 0.5, polygon
    assert_annotations(without_label(as_polygon, "stain"), without_label(as_mask, "stain"))


def test_a_job_request_annotates_only_that_jobs_frames(served, client, workspace):
    task = workspace.create_task("serve-job", frames=8, segment_size=3)
    middle = sorted(client.tasks.retrieve(task).get_jobs(), key=lambda j: j.start_frame)[1]
    assert (middle.start_frame, middle.stop_frame) == (3, 5)

    request = lambda_request(client, function=FRAME_CODE.id, task=task, job=middle.id)

    assert request.status == "finished", request.exc_info
    assert_annotations(server_annotations(client, task), expected_annotations([3, 4, 5]))


def test_a_request_with_a_threshold_leaves_out_what_scores_below_it(served, client, workspace):
    task = workspace.create_task("serve-threshold", frames=3)

    request = lambda_request(client, function=FRAME_CODE.id, task=task, threshold=0.5)

    assert request.status == "finished", request.exc_info
    after = server_annotations(client, task)
    assert_annotations(after, expected_annotations(range(3), conf_threshold=0.5))
    assert {s["label"] for s in after["shapes"]}.isdisjoint({"lane", "spot"})  # 0.4, 0.3


def test_a_function_that_raises_fails_the_request_with_its_message(served, client, workspace):
    task = workspace.create_task("serve-raises", frames=4)

    request = lambda_request(client, function=FAILS_ON_2.id, task=task)

    assert request.status == "failed"
    assert (
        f"cvat-aa: function '{FAILS_ON_2.id}' failed: RuntimeError: the model cannot read frame 2"
        in request.exc_info
    ), request.exc_info
    # CVAT saves a request's results every 100 frames (after frames 100, 200...) and at the
    # end; frames done since the last save are lost with the failure: here, frames 0 and 1.
    assert_annotations(server_annotations(client, task), NOTHING)


def test_a_function_that_breaks_the_protocol_fails_the_request(served, client, workspace):
    task = workspace.create_task("serve-invalid", frames=3)

    request = lambda_request(client, function=INVALID_ON_1.id, task=task)

    assert request.status == "failed"
    assert (
        f"cvat-aa: function '{INVALID_ON_1.id}' is broken: function output rectangle shape with"
        " 3 coordinates; a rectangle needs exactly 4 coordinates" in request.exc_info
    ), request.exc_info
    assert_annotations(server_annotations(client, task), NOTHING)


def test_a_single_frame_call_of_a_broken_function_says_why(served, client, workspace):
    from cvat_sdk.api_client import exceptions

    task = workspace.create_task("serve-invalid-frame", frames=3)

    with pytest.raises(exceptions.ServiceException) as raised:
        call_function(client, INVALID_ON_1.id, task=task, frame=1)

    # CVAT answers with the status and reason phrase of cvat-aa's answer.
    assert raised.value.status == 500
    assert f"cvat-aa: function '{INVALID_ON_1.id}' is broken" in str(raised.value.body)
    assert "a rectangle needs exactly 4 coordinates" in str(raised.value.body)


# --- AI Tools: interactors and trackers ----------------------------------------------------------


def test_an_interactor_call_with_points_returns_a_mask_or_a_polygon(served, client, workspace):
    task = workspace.create_task("serve-interactor", frames=2)
    width, height = FRAME_SIZE
    bitmap = np.zeros((height, width), dtype=bool)
    bitmap[12:31, 10:21] = True

    as_mask = call_function(
        client, INTERACTOR.id, task=task, frame=1, pos_points=[[10, 12], [20, 30]], neg_points=[]
    )
    # A second click on the same frame (served from the preprocessed frame kept by serve).
    with_negative = call_function(
        client,
        INTERACTOR.id,
        task=task,
        frame=1,
        pos_points=[[10, 12], [20, 30]],
        neg_points=[[50, 40]],
    )
    as_polygon = call_function(
        client,
        POLYGON_INTERACTOR.id,
        task=task,
        frame=0,
        pos_points=[[10, 12]],
        neg_points=[],
        obj_bbox=[[5, 6], [30, 20]],
    )

    expected_mask = {"type": "mask", "points": encode_mask(bitmap), "attributes": []}
    assert as_mask == with_negative == {"shapes": [expected_mask]}
    assert as_polygon == {
        "shapes": [{"type": "polygon", "points": [5, 6, 30, 6, 30, 20, 5, 20], "attributes": []}]
    }


def test_an_interactor_refuses_prompts_it_does_not_take_with_cvat_clis_message(
    served, client, workspace
):
    task = workspace.create_task("serve-interactor-refused", frames=1)

    with pytest.raises(exceptions.ApiException) as raised:
        call_function(client, INTERACTOR.id, task=task, frame=0, pos_points=[], neg_points=[])

    # CVAT answers with the status and reason phrase of cvat-aa's answer.
    assert raised.value.status == 400
    assert "cvat-aa: not enough positive points" in str(raised.value.body)


def test_a_tracker_call_over_three_frames_returns_moved_shapes_and_states_cvat_accepts(
    served, client, workspace
):
    task = workspace.create_task("serve-tracker", frames=3)
    rectangle = {"type": "rectangle", "points": [5.0, 5.0, 15.0, 15.0]}
    polygon = {"type": "polygon", "points": [20.0, 30.0, 30.0, 30.0, 25.0, 40.0]}

    start = call_function(client, TRACKER.id, task=task, frame=0, shapes=[rectangle, polygon])
    answers = [start]
    for frame in (1, 2):
        # As CVAT's UI goes on: the frame and the states of the answer before.
        answers.append(
            call_function(client, TRACKER.id, task=task, frame=frame, states=answers[-1]["states"])
        )

    assert start["shapes"] == [rectangle, polygon]
    for frame, answer in enumerate(answers):
        # Signed by CVAT, a new signature on every answer.
        assert len(answer["states"]) == 2
        assert all(state.count(":") >= 2 for state in answer["states"])
        shift = TRACKER_STEP * frame
        assert answer["shapes"] == [
            {"type": "rectangle", "points": [5 + shift, 5, 15 + shift, 15]},
            {"type": "polygon", "points": [20 + shift, 30, 30 + shift, 30, 25 + shift, 40]},
        ]
    # A state whose signature CVAT does not recognise never reaches serve.
    value, stamp, _ = answers[-1]["states"][0].rsplit(":", 2)
    with pytest.raises(exceptions.ApiException) as raised:
        call_function(client, TRACKER.id, task=task, frame=2, states=[f"{value}:{stamp}:forged"])
    assert raised.value.status == 400
    assert "Invalid or expired tracker state" in str(raised.value.body)
