"""cvat_aa_torch.weights: torchvision weights by name, their labels, and state-dict files."""

import pytest
import torch
import torchvision
from cvat_aa_torch.weights import (
    read_state_dict,
    resolve_weights,
    weights_full_name,
    weights_labels,
)

DETECTION_MODELS = torchvision.models.list_models(module=torchvision.models.detection)
SMALL_DETECTOR = "ssdlite320_mobilenet_v3_large"


def test_weights_resolve_by_model_and_weights_name():
    weights = resolve_weights(
        "resnet18", "IMAGENET1K_V1", valid_models=["resnet18"], kind="classification"
    )
    assert weights is torchvision.models.ResNet18_Weights.IMAGENET1K_V1


def test_default_weights_are_torchvisions_default():
    weights = resolve_weights(SMALL_DETECTOR, "DEFAULT", valid_models=DETECTION_MODELS, kind="x")
    assert weights is torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        resolve_weights("resnet18", "DEFAULT", valid_models=DETECTION_MODELS, kind="detection")
    message = str(error.value)
    assert "'resnet18' is not a torchvision detection model" in message
    assert all(name in message for name in DETECTION_MODELS)


def test_unknown_weights_name_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="no weights named 'COCO_V9'; use one of: COCO_V1, DEFAULT"
    ):
        resolve_weights(SMALL_DETECTOR, "COCO_V9", valid_models=DETECTION_MODELS, kind="x")


def test_full_name_is_the_enum_and_member():
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert weights_full_name(weights) == "ResNet18_Weights.IMAGENET1K_V1"


def test_labels_skip_unused_coco_ids_without_shifting_the_others():
    labels = dict(
        weights_labels(
            torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT, has_background=True
        )
    )
    assert labels[1] == "person"
    assert 12 not in labels  # "N/A" in torchvision's COCO list
    assert labels[13] == "stop sign"
    assert labels[90] == "toothbrush"
    assert len(labels) == 80


def test_labels_skip_the_background_class():
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    assert 0 not in dict(weights_labels(weights, has_background=True))


def test_labels_keep_class_zero_of_a_classifier():
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    assert weights_labels(weights, has_background=False)[0] == (0, "tench")


def test_a_state_dict_file_reads_as_its_tensors(tmp_path):
    saved = {"layer.weight": torch.rand(2, 3), "layer.bias": torch.rand(2)}
    torch.save(saved, tmp_path / "weights.pth")
    state_dict = read_state_dict(tmp_path / "weights.pth")
    assert state_dict.keys() == saved.keys()
    assert all(torch.equal(state_dict[key], value) for key, value in saved.items())


def test_a_state_dict_file_that_would_run_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    torch.save({"layer.weight": Payload()}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match=r"load safely \(with weights_only=True\)"):
        read_state_dict(tmp_path / "pickled.pth")


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="weights file .*missing.pth' does not exist"):
        read_state_dict(tmp_path / "missing.pth")


def test_weights_file_without_a_state_dict_is_a_clear_error(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"holds a list, not a state dict; save it with torch"):
        read_state_dict(tmp_path / "list.pth")


def test_weights_file_that_is_no_torch_file_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(ValueError, match="not a state dict that torch can load safely"):
        read_state_dict(tmp_path / "notes.txt")
