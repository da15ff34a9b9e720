"""The torchvision_classification function: a tag from a torchvision classifier."""

import subprocess
import sys

import cvat_aa
import cvat_sdk.auto_annotation.functions.torchvision_classification as sdk_classification
import pytest
import torch
from cvat_aa import FrameContext
from cvat_aa_torchvision_classification import TorchvisionClassificationFunction

MODEL = "mobilenet_v3_small"


@pytest.fixture(scope="session")
def model_name():
    return MODEL


@pytest.fixture(scope="module")
def function(weights_path):
    return TorchvisionClassificationFunction(MODEL, weights_path=weights_path, device="cpu")


def context(conf_threshold=None):
    return FrameContext(frame_name="frame.jpg", conf_threshold=conf_threshold)


@pytest.fixture
def class_probabilities(function, monkeypatch):
    """Make the model give every image these class probabilities (the rest share 0)."""

    def inject(probabilities):
        logits = torch.full((1000,), -1e4)
        for label, probability in probabilities.items():
            logits[label] = torch.tensor(probability).log()
        monkeypatch.setattr(function.model, "forward", lambda batch: logits.expand(len(batch), -1))

    return inject


def test_importing_the_plugin_leaves_torch_for_later():
    # `cvat-aa functions list` imports every plugin; torch takes seconds to import.
    code = "import sys, cvat_aa_torchvision_classification; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_function_is_installed_as_torchvision_classification(weights_path):
    function = cvat_aa.load_function(
        "torchvision_classification", model_name=MODEL, weights_path=weights_path, device="cpu"
    )
    assert isinstance(function, TorchvisionClassificationFunction)


def test_spec_has_a_tag_label_for_each_imagenet_class(function):
    labels = {label.id: label for label in function.spec.labels}
    assert len(labels) == 1000
    assert (labels[0].name, labels[999].name) == ("tench", "toilet tissue")
    assert {label.type for label in labels.values()} == {"tag"}


def test_the_image_is_tagged_with_its_most_likely_class(function, class_probabilities, photo):
    class_probabilities({3: 0.25, 281: 0.7, 999: 0.05})
    (tag,) = function.detect(context(), photo)
    assert tag.to_dict() == {"frame": 0, "label_id": 281}


def test_tags_have_no_score(function, class_probabilities, photo):
    class_probabilities({281: 0.7, 3: 0.3})
    (tag,) = function.detect(context(), photo)
    assert "score" not in tag.to_dict()


def test_threshold_applies_to_the_classs_probability(function, class_probabilities, photo):
    class_probabilities({281: 0.7, 3: 0.3})
    assert function.detect(context(conf_threshold=0.69), photo) != []
    assert function.detect(context(conf_threshold=0.71), photo) == []


def test_batched_results_equal_one_by_one_results(function, photos):
    one_by_one = [function.detect(context(), frame) for frame in photos]
    assert function.detect_batch([context()] * len(photos), photos) == one_by_one


def test_unknown_model_error_lists_the_classification_models():
    with pytest.raises(cvat_aa.FunctionParameterError, match="use one of: alexnet, convnext"):
        cvat_aa.load_function("torchvision_classification", model_name="fasterrcnn_resnet50_fpn")


def test_annotations_equal_cvat_sdks(function, torch_home, monkeypatch, photos):
    # cvat-sdk's function downloads DEFAULT weights through torchvision's cache, which holds
    # the same random weights as weights_path.
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    sdk_function = sdk_classification.create(MODEL)
    for photo in photos:
        for conf_threshold in (None, 0.001, 0.9):
            assert function.detect(context(conf_threshold), photo) == sdk_function.detect(
                context(conf_threshold), photo
            )


def test_annotates_a_task_through_the_driver(function, cvat_server, cvat_client, photos):
    names = {label.id: label.name for label in function.spec.labels}
    expected = sorted(
        (frame, names[tag.label_id])
        for frame, photo in enumerate(photos)
        for tag in function.detect(context(), photo)
    )
    # The task has the predicted classes' labels and one more; the function's other
    # 990-odd classes have no label there.
    task_labels = {name for _, name in expected} | {"goldfish"}
    task_id = cvat_server.create_task(
        "photos", images=photos, labels=[{"name": name, "type": "tag"} for name in task_labels]
    )
    cvat_aa.annotate_task(cvat_client, task_id, function, allow_unmatched_labels=True, batch_size=2)

    task = cvat_client.tasks.retrieve(task_id)
    task_label_names = {label.id: label.name for label in task.get_labels()}
    uploaded = sorted(
        (tag.frame, task_label_names[tag.label_id]) for tag in task.get_annotations().tags
    )
    assert len(expected) == len(photos)
    assert uploaded == expected
