"""Matching a function's labels to a task's: cvat-sdk's checks and words, and label maps."""

from __future__ import annotations


import attrs
import cvat_aa
import cvat_sdk.auto_annotation as sdk_aa
import numpy as np
import PIL.Image
import pytest
from cvat_aa.pipeline.label_mapping import LabelMap, LabelMapError, LabelMapper, LabelMismatchError
from cvat_aa.local import annotate_images
from cvat_sdk import models
from cvat_sdk.auto_annotation import driver as sdk_driver


@attrs.frozen
class TaskLabel:
    """A task label as ``task.get_labels()`` gives it, for the mapper."""

    id: int
    name: str
    type: str = "any"
    attributes: list = attrs.field(factory=list)
    sublabels: list = attrs.field(factory=list)


def task_attribute(id, name, input_type="text", values=()):
    return models.AttributeRequest(
        id=id, name=name, input_type=input_type, values=list(values), mutable=False
    )


TASK_LABELS = [
    TaskLabel(100, "car", "rectangle", attributes=[task_attribute(1, "colour", "select", ["red"])]),
    TaskLabel(101, "scene", "tag"),
    TaskLabel(
        102, "pedestrian", "skeleton", sublabels=[TaskLabel(103, "head"), TaskLabel(104, "foot")]
    ),
    TaskLabel(105, "thing"),
]

SPEC_LABELS = [
    cvat_aa.label_spec(
        "car", 0, type="rectangle", attributes=[cvat_aa.select_attribute_spec("colour", 0, ["red"])]
    ),
    cvat_aa.label_spec("scene", 1, type="tag"),
    cvat_aa.skeleton_label_spec(
        "pedestrian", 2, [cvat_aa.keypoint_spec("head", 0), cvat_aa.keypoint_spec("foot", 1)]
    ),
    cvat_aa.label_spec("thing", 3),
]


def mapper(spec_labels=SPEC_LABELS, task_labels=TASK_LABELS, **options):
    options = {"allow_unmatched_labels": False, "conv_mask_to_poly": False, **options}
    return LabelMapper(spec_labels, task_labels, **options)


# Outputs that break the protocol, each checked against cvat-sdk's own mapper.
BAD_OUTPUTS = {
    "preset id": lambda: [
        models.LabeledShapeRequest(type="rectangle", frame=0, label_id=0, points=[1, 1, 2, 2], id=5)
    ],
    "preset source": lambda: [cvat_aa.rectangle(0, [1, 1, 2, 2], source="manual")],
    "frame not 0": lambda: [models.LabeledImageRequest(frame=3, label_id=1)],
    "unknown label": lambda: [cvat_aa.rectangle(42, [1, 1, 2, 2])],
    "wrong shape type": lambda: [cvat_aa.polygon(0, [1, 1, 2, 2, 3, 1])],
    "tag for a shape label": lambda: [cvat_aa.tag(0)],
    "unknown attribute": lambda: [
        cvat_aa.rectangle(
            0, [1, 1, 2, 2], attributes=[models.AttributeValRequest(spec_id=9, value="red")]
        )
    ],
    "attribute value": lambda: [
        cvat_aa.rectangle(
            0, [1, 1, 2, 2], attributes=[models.AttributeValRequest(spec_id=0, value="blue")]
        )
    ],
    "same attribute twice": lambda: [
        cvat_aa.rectangle(
            0,
            [1, 1, 2, 2],
            attributes=[
                models.AttributeValRequest(spec_id=0, value="red"),
                models.AttributeValRequest(spec_id=0, value="red"),
            ],
        )
    ],
    "missing keypoint": lambda: [cvat_aa.skeleton(2, [cvat_aa.keypoint(0, [1, 1])])],
    "unknown sublabel": lambda: [
        cvat_aa.skeleton(2, [cvat_aa.keypoint(0, [1, 1]), cvat_aa.keypoint(7, [1, 1])])
    ],
    "same keypoint twice": lambda: [
        cvat_aa.skeleton(2, [cvat_aa.keypoint(0, [1, 1]), cvat_aa.keypoint(0, [1, 1])])
    ],
    "elements on a box": lambda: [
        cvat_aa.rectangle(0, [1, 1, 2, 2], elements=[cvat_aa.keypoint(0, [1, 1])])
    ],
    "not an annotation": lambda: ["box"],
}


@pytest.mark.parametrize("output", BAD_OUTPUTS.values(), ids=BAD_OUTPUTS.keys())
def test_output_errors_are_cvat_sdks_word_for_word(output):
    theirs = sdk_driver._AnnotationMapper(
        None, SPEC_LABELS, TASK_LABELS, allow_unmatched_labels=False, conv_mask_to_poly=False
    )
    with pytest.raises(sdk_aa.BadFunctionError) as expected:
        theirs.validate_and_remap(output(), 0)
    with pytest.raises(cvat_aa.BadFunctionError) as got:
        mapper().map_frame(output(), 0, frame_size=(10, 10))
    assert str(got.value) == str(expected.value)


def test_numpy_numbers_put_into_points_after_construction_are_converted():
    box = cvat_aa.rectangle(0, [1, 1, 2, 2])
    box.points[:] = [np.float32(1), np.int64(2), np.array(3.5), np.float64(4)]
    _, (shape,) = mapper().map_frame([box], 0, frame_size=(10, 10))
    assert shape.points == [1.0, 2, 3.5, 4.0]
    assert [type(p) for p in shape.points] == [float, int, float, float]


# Label mismatches: cvat-sdk's words first, then both sides' names and what to do.


def test_a_label_the_task_lacks_is_named_with_both_sides_labels():
    spec = [*SPEC_LABELS, cvat_aa.label_spec("person", 4)]
    with pytest.raises(LabelMismatchError) as caught:
        mapper(spec)
    message = str(caught.value)
    assert message.startswith("label 'person' is not in dataset (")
    assert "the task's labels are 'car', 'scene', 'pedestrian', 'thing'" in message
    assert "the function's are 'car', 'scene', 'pedestrian', 'thing', 'person'" in message
    assert message.endswith("with label_map, or leave it out with allow_unmatched_labels=True")


def test_on_the_command_line_the_advice_names_the_options():
    with pytest.raises(LabelMismatchError) as caught:
        mapper([cvat_aa.label_spec("person", 4)])
    message = str(caught.value.for_command_line())
    assert "--label-map FUNCTION_LABEL=TASK_LABEL" in message
    assert "--allow-unmatched-labels" in message


def test_a_sublabel_the_task_lacks_is_named_with_both_sides_sublabels():
    spec = [
        cvat_aa.skeleton_label_spec(
            "pedestrian", 2, [cvat_aa.keypoint_spec("head", 0), cvat_aa.keypoint_spec("nose", 1)]
        )
    ]
    with pytest.raises(
        LabelMismatchError, match="sublabel 'nose' of label 'pedestrian' is not in dataset"
    ) as caught:
        mapper(spec)
    assert "the task's label 'pedestrian' has sublabels 'head', 'foot'" in str(caught.value)
    assert "--label-map-file" in str(caught.value.for_command_line())


def test_an_attribute_the_task_lacks_is_named_with_both_sides_attributes():
    spec = [
        cvat_aa.label_spec("thing", 3, attributes=[cvat_aa.text_attribute_spec("note", 0)]),
    ]
    with pytest.raises(
        LabelMismatchError, match="attribute 'note' of label 'thing' is not in dataset"
    ) as caught:
        mapper(spec)
    assert "the task's label 'thing' has no attributes" in str(caught.value)


def test_a_mismatch_is_still_cvat_sdks_bad_function_error():
    with pytest.raises(sdk_aa.BadFunctionError, match=r"^label 'person' is not in dataset"):
        mapper([cvat_aa.label_spec("person", 4)])


# Label maps.


def test_a_label_map_puts_a_label_on_a_task_label_of_another_name():
    spec = [cvat_aa.label_spec("person", 7)]
    m = mapper(spec, label_map={"person": "thing"})
    _, (shape,) = m.map_frame([cvat_aa.rectangle(7, [1, 1, 5, 5])], 0, frame_size=(10, 10))
    assert shape.label_id == 105


def test_a_label_map_renames_skeleton_points_and_attributes():
    spec = [
        cvat_aa.skeleton_label_spec(
            "person",
            0,
            [cvat_aa.keypoint_spec("nose", 0), cvat_aa.keypoint_spec("ankle", 1)],
        ),
        cvat_aa.label_spec(
            "auto",
            1,
            type="rectangle",
            attributes=[cvat_aa.select_attribute_spec("paint", 0, ["red"])],
        ),
    ]
    m = mapper(
        spec,
        label_map={
            "person": {"name": "pedestrian", "sublabels": {"nose": "head", "ankle": "foot"}},
            "auto": {"name": "car", "attributes": {"paint": "colour"}},
        },
    )
    _, (person, car) = m.map_frame(
        [
            cvat_aa.skeleton(0, [cvat_aa.keypoint(0, [1, 1]), cvat_aa.keypoint(1, [2, 2])]),
            cvat_aa.rectangle(1, [1, 1, 5, 5], attributes={0: "red"}),
        ],
        0,
        frame_size=(10, 10),
    )
    assert (person.label_id, sorted(e.label_id for e in person.elements)) == (102, [103, 104])
    assert (car.label_id, [a.spec_id for a in car.attributes]) == (100, [1])


def test_labels_the_map_does_not_name_match_by_name():
    spec = [*SPEC_LABELS, cvat_aa.label_spec("person", 4)]
    m = mapper(spec, label_map={"person": "thing"})
    _, shapes = m.map_frame(
        [cvat_aa.rectangle(0, [1, 1, 2, 2]), cvat_aa.rectangle(4, [1, 1, 2, 2])],
        0,
        frame_size=(10, 10),
    )
    assert [s.label_id for s in shapes] == [100, 105]


def test_a_label_mapped_to_none_is_left_out():
    spec = [*SPEC_LABELS, cvat_aa.label_spec("person", 4)]
    m = mapper(spec, label_map={"person": None})
    _, shapes = m.map_frame([cvat_aa.rectangle(4, [1, 1, 2, 2])], 0, frame_size=(10, 10))
    assert shapes == []


def test_several_function_labels_may_go_to_one_task_label():
    spec = [cvat_aa.label_spec("truck", 0, type="rectangle"), cvat_aa.label_spec("bus", 1)]
    m = mapper(spec, label_map={"truck": "thing", "bus": "thing"})
    _, shapes = m.map_frame(
        [cvat_aa.rectangle(0, [1, 1, 2, 2]), cvat_aa.rectangle(1, [1, 1, 2, 2])],
        0,
        frame_size=(10, 10),
    )
    assert [s.label_id for s in shapes] == [105, 105]


@pytest.mark.parametrize(
    ("label_map", "message"),
    [
        ({"persn": "thing"}, "names 'persn', which is not a label of the function"),
        (
            {"car": "truck"},
            r"puts 'car' on 'truck', which is not a label of the task \(its labels: 'car', 'scene', 'pedestrian', 'thing'\)",
        ),
        (
            {"pedestrian": {"sublabels": {"nose": "head"}}},
            "sublabel 'nose' of 'pedestrian', which the function's label",
        ),
        (
            {"pedestrian": {"sublabels": {"head": "nose"}}},
            "on 'nose', which the task's label 'pedestrian' does not have",
        ),
        (
            {"car": {"attributes": {"paint": "colour"}}},
            "attribute 'paint' of label 'car', which the function does not have",
        ),
        (
            {"car": {"attributes": {"colour": "paint"}}},
            "on 'paint', which the task's label 'car' does not have",
        ),
    ],
    ids=[
        "function-label",
        "task-label",
        "function-sublabel",
        "task-sublabel",
        "function-attribute",
        "task-attribute",
    ],
)
def test_a_label_map_with_names_that_do_not_exist_is_a_usage_error(label_map, message):
    with pytest.raises(LabelMapError, match=message):
        mapper(label_map=label_map)


def test_a_map_to_a_label_the_task_lacks_is_refused_even_when_unmatched_labels_are_allowed():
    with pytest.raises(ValueError, match="not a label of the task"):
        mapper(label_map={"car": "truck"}, allow_unmatched_labels=True)


@pytest.mark.parametrize(
    ("label_map", "message"),
    [
        (["person"], "must map the function's label names to the task's"),
        ({"person": 3}, "must map to a name, to None or to a mapping"),
        ({"person": {"nam": "x"}}, "unknown keys 'nam'"),
        ({"person": {"sublabels": ["nose"]}}, "must be a mapping of names"),
        ({"person": {"attributes": {"a": 1}}}, "must map to a name"),
    ],
)
def test_a_label_map_of_the_wrong_form_says_what_is_wrong(label_map, message):
    with pytest.raises(LabelMapError, match=message):
        LabelMap.parse(label_map)


def test_a_label_map_has_one_canonical_form_for_journal_keys():
    a = LabelMap.parse({"b": "x", "a": {"name": "y", "attributes": {"q": None, "p": "r"}}})
    b = LabelMap.parse(
        {"a": {"attributes": {"p": "r", "q": None}, "name": "y"}, "b": {"name": "x"}}
    )
    assert a.to_dict() == b.to_dict()


# Through the public entry points.


class Person:
    spec = cvat_aa.DetectionFunctionSpec(
        labels=[
            cvat_aa.skeleton_label_spec(
                "person",
                0,
                [cvat_aa.keypoint_spec("nose", 0), cvat_aa.keypoint_spec("tail", 1)],
                svg='<line data-node-from="1" data-node-to="2"></line>',
            ),
            cvat_aa.label_spec("dog", 1, type="rectangle"),
        ]
    )

    def detect(self, context, image):
        return [
            cvat_aa.skeleton(0, [cvat_aa.keypoint(0, [1, 1]), cvat_aa.keypoint(1, [3, 3])]),
            cvat_aa.rectangle(1, [1, 1, 4, 4]),
        ]


def test_a_task_run_puts_mapped_labels_on_the_task(cvat_server, cvat_client):
    task = cvat_server.create_task(
        "mapped",
        images=[PIL.Image.new("RGB", (10, 10))],
        labels=[
            {
                "name": "pedestrian",
                "type": "skeleton",
                "sublabels": [
                    {"name": "head", "type": "points"},
                    {"name": "foot", "type": "points"},
                ],
            },
        ],
    )
    summary = cvat_aa.annotate_task(
        cvat_client,
        task,
        Person(),
        label_map={
            "person": {"name": "pedestrian", "sublabels": {"nose": "head", "tail": "foot"}},
            "dog": None,
        },
    )
    assert summary.per_label == {"pedestrian": 1}
    (shape,) = cvat_server.annotations(task)["shapes"]
    assert shape["label_id"] == cvat_server.label_id(task, "pedestrian")


def test_a_task_run_mapping_to_a_label_the_task_lacks_is_a_value_error(cvat_server, cvat_client):
    task = cvat_server.create_task(
        "mapped", images=[PIL.Image.new("RGB", (10, 10))], labels=[{"name": "car"}]
    )
    with pytest.raises(ValueError, match=r"puts 'dog' on 'hound'.*\(its labels: 'car'\)"):
        cvat_aa.annotate_task(cvat_client, task, Person(), label_map={"dog": "hound"})
    assert cvat_server.annotations(task)["shapes"] == []


def test_a_local_run_writes_its_labels_under_their_mapped_names(tmp_path):
    PIL.Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    result = annotate_images(
        Person(),
        [tmp_path / "a.png"],
        label_map={"person": {"name": "pedestrian", "sublabels": {"tail": None}}, "dog": "hound"},
    )
    assert result.annotations.per_label() == {"pedestrian": 1, "hound": 1}
    pedestrian = result.annotations.labels.named("pedestrian")
    assert [s.name for s in pedestrian.sublabels] == ["nose"]
    (skeleton,) = [s for s in result.annotations.frames[0].shapes if s.type.value == "skeleton"]
    assert [e.label_id for e in skeleton.elements] == [0]


def test_a_local_run_keeps_skeleton_edges_of_renamed_points(tmp_path):
    PIL.Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    result = annotate_images(
        Person(),
        [tmp_path / "a.png"],
        label_map={"person": {"sublabels": {"nose": "head", "tail": "foot"}}},
    )
    person = result.annotations.labels.named("person")
    assert [s.name for s in person.sublabels] == ["head", "foot"]
    assert person.edges() == [(0, 1)]
