"""cvat_aa_torch.torchvision_models: torchvision models by kind, built offline from a file.

Models get random weights saved to a local file; nothing is downloaded.
"""

from urllib.error import URLError

import pytest
import torch
import torchvision
from cvat_aa_torch.torchvision_models import build_model, models_of_kind

SMALL_DETECTOR = "ssdlite320_mobilenet_v3_large"
CPU = torch.device("cpu")


def save_random_weights(path, model_name, **kwargs):
    """Save the state dict of ``model_name`` with random weights; return the path."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(model_name, weights=None, **kwargs)
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def detector_default_weights():
    return torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT


def test_models_of_kind_filters_by_the_class_the_builder_returns():
    detection = torchvision.models.detection
    assert models_of_kind(detection, builds=detection.MaskRCNN) == [
        "maskrcnn_resnet50_fpn",
        "maskrcnn_resnet50_fpn_v2",
    ]


def test_models_of_kind_lists_only_the_modules_own_models():
    classification = models_of_kind(torchvision.models)
    assert "resnet18" in classification
    assert SMALL_DETECTOR not in classification


def test_weights_path_loads_the_files_weights(detector_weights, detector_default_weights):
    model = build_model(
        SMALL_DETECTOR, detector_default_weights, weights_path=detector_weights, device=CPU
    )
    saved = torch.load(detector_weights, weights_only=True)
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())


def test_weights_path_touches_neither_network_nor_cache(
    detector_weights, detector_default_weights, tmp_path, monkeypatch
):
    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to fetch {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    build_model(SMALL_DETECTOR, detector_default_weights, weights_path=detector_weights, device=CPU)
    assert list(tmp_path.iterdir()) == []


def test_pretrained_weights_that_cannot_be_downloaded_point_to_weights_path(
    detector_default_weights, tmp_path, monkeypatch
):
    def offline(url, *args, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ValueError, match="could not download.*-p weights_path=str:"):
        build_model(SMALL_DETECTOR, detector_default_weights, device=CPU)


def test_weights_path_builds_the_model_in_eval_mode(detector_weights, detector_default_weights):
    model = build_model(
        SMALL_DETECTOR, detector_default_weights, weights_path=detector_weights, device=CPU
    )
    assert not model.training


def test_weights_path_builds_the_architecture_the_weights_define(tmp_path):
    # GoogLeNet's ImageNet weights expect the inputs re-normalised inside the model, which a
    # model built without weights does not do.
    path = save_random_weights(
        tmp_path / "googlenet.pth", "googlenet", aux_logits=True, init_weights=False
    )
    model = build_model(
        "googlenet", torchvision.models.GoogLeNet_Weights.DEFAULT, weights_path=path, device=CPU
    )
    assert model.transform_input


def test_weights_path_leaves_the_weights_enum_as_it_was(detector_weights, detector_default_weights):
    build_model(SMALL_DETECTOR, detector_default_weights, weights_path=detector_weights, device=CPU)
    assert "get_state_dict" not in vars(detector_default_weights)


def test_weights_file_that_cannot_be_read_is_a_clear_error(detector_default_weights, tmp_path):
    with pytest.raises(ValueError, match="weights file .*missing.pth' does not exist"):
        build_model(
            SMALL_DETECTOR,
            detector_default_weights,
            weights_path=tmp_path / "missing.pth",
            device=CPU,
        )


def test_weights_file_of_another_model_is_a_clear_error(detector_default_weights, tmp_path):
    path = save_random_weights(tmp_path / "resnet18.pth", "resnet18")
    with pytest.raises(ValueError, match="does not fit model 'ssdlite320_mobilenet_v3_large'"):
        build_model(SMALL_DETECTOR, detector_default_weights, weights_path=path, device=CPU)


def test_other_keywords_go_to_the_model_constructor(detector_weights, detector_default_weights):
    model = build_model(
        SMALL_DETECTOR,
        detector_default_weights,
        weights_path=detector_weights,
        device=CPU,
        score_thresh=0.25,
    )
    assert model.score_thresh == 0.25


def test_a_keyword_the_model_does_not_take_is_named_in_the_error(tmp_path):
    # Classifiers reject unknown keywords; torchvision's detectors pass them on to their
    # input transform, which ignores them.
    path = save_random_weights(tmp_path / "resnet18.pth", "resnet18")
    with pytest.raises(ValueError, match="rejected the parameters no_such_option"):
        build_model(
            "resnet18",
            torchvision.models.ResNet18_Weights.DEFAULT,
            weights_path=path,
            device=CPU,
            no_such_option=1,
        )
