"""cvat_aa.torchvision_support: the code the torchvision function plugins share.

Models get random weights saved to a local file; nothing is downloaded.
"""

import subprocess
import sys
from collections.abc import Mapping

import PIL.Image
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from cvat_aa import FrameContext, rectangle
from cvat_aa.torchvision_support import (
    TorchvisionFunction,
    build_model,
    models_of_kind,
    resolve_device,
    resolve_weights,
    weights_labels,
)

DETECTION_MODELS = torchvision.models.list_models(module=torchvision.models.detection)
SMALL_DETECTOR = "ssdlite320_mobilenet_v3_large"


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(url, *args, **kwargs):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def save_random_weights(path, model_name, **kwargs):
    """Save the state dict of ``model_name`` with random weights; return the path."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(model_name, weights=None, **kwargs)
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def detector_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / f"{SMALL_DETECTOR}.pth"
    return save_random_weights(path, SMALL_DETECTOR, weights_backbone=None, num_classes=91)


class _Detector(TorchvisionFunction):
    """The smallest subclass: rectangles from any detection model."""

    model_kind = "detection"
    label_type = "rectangle"

    @classmethod
    def supported_models(cls):
        return DETECTION_MODELS

    def to_annotations(self, context, detections: Mapping):
        return [
            rectangle(label, box, score=score)
            for box, label, score in zip(
                detections["boxes"].tolist(),
                detections["labels"].tolist(),
                detections["scores"].tolist(),
                strict=True,
            )
        ]


@pytest.fixture(scope="module")
def detector(detector_weights):
    return _Detector(SMALL_DETECTOR, weights_path=str(detector_weights), device="cpu")


def context(conf_threshold=None):
    return FrameContext(frame_name="frame.jpg", conf_threshold=conf_threshold)


def image(width=160, height=120):
    return PIL.Image.new("RGB", (width, height), (90, 120, 150))


def fake_detections(scores):
    n = len(scores)
    return {
        "boxes": torch.tensor([[10.0 + i, 20.0, 30.0 + i, 40.0] for i in range(n)]).reshape(n, 4),
        "labels": torch.arange(1, n + 1),
        "scores": torch.tensor(scores, dtype=torch.float32),
    }


class ForwardSpy:
    """Stands in for a model's forward: records each call and returns given detections."""

    def __init__(self, scores=(0.9,)):
        self.scores = list(scores)
        self.calls = []

    def __call__(self, batch):
        self.calls.append(
            {
                "shapes": [tuple(t.shape) for t in batch],
                "devices": {t.device.type for t in batch},
                "inference_mode": torch.is_inference_mode_enabled(),
            }
        )
        return [fake_detections(self.scores) for _ in batch]


@pytest.fixture
def spy(detector, monkeypatch):
    forward = ForwardSpy(scores=[0.2, 0.5, 0.8])
    monkeypatch.setattr(detector.model, "forward", forward)
    return forward


def test_importing_the_module_does_not_import_torch():
    code = (
        "import sys, cvat_aa, cvat_aa.torchvision_support;"
        " sys.exit('torch' in sys.modules or 'torchvision' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_cpu_device_is_the_cpu():
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_device_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_device_is_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_cuda_device_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device.*use device 'cpu' or 'auto'"):
        resolve_device("cuda")


def test_cuda_device_index_beyond_the_devices_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:", "mps"])
def test_unknown_device_names_the_accepted_forms(device):
    with pytest.raises(ValueError, match="must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(device)


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


def test_weights_path_loads_the_files_weights(detector_weights):
    model = build_model(
        SMALL_DETECTOR,
        torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT,
        weights_path=detector_weights,
        device=torch.device("cpu"),
    )
    saved = torch.load(detector_weights, weights_only=True)
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())


def test_weights_path_touches_neither_network_nor_cache(detector_weights, tmp_path, monkeypatch):
    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to fetch {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    build_model(SMALL_DETECTOR, weights, weights_path=detector_weights, device=torch.device("cpu"))
    assert list(tmp_path.iterdir()) == []


def test_pretrained_weights_that_cannot_be_downloaded_point_to_weights_path(tmp_path, monkeypatch):
    from urllib.error import URLError

    def offline(url, *args, **kwargs):
        raise URLError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    with pytest.raises(ValueError, match="could not download.*-p weights_path=str:"):
        build_model(SMALL_DETECTOR, weights, device=torch.device("cpu"))


def test_weights_path_builds_the_model_in_eval_mode(detector_weights):
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    model = build_model(
        SMALL_DETECTOR, weights, weights_path=detector_weights, device=torch.device("cpu")
    )
    assert not model.training


def test_weights_path_builds_the_architecture_the_weights_define(tmp_path):
    # GoogLeNet's ImageNet weights expect the inputs re-normalised inside the model, which a
    # model built without weights does not do.
    path = save_random_weights(
        tmp_path / "googlenet.pth", "googlenet", aux_logits=True, init_weights=False
    )
    model = build_model(
        "googlenet",
        torchvision.models.GoogLeNet_Weights.DEFAULT,
        weights_path=path,
        device=torch.device("cpu"),
    )
    assert model.transform_input


def test_weights_path_leaves_the_weights_enum_as_it_was(detector_weights):
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    build_model(SMALL_DETECTOR, weights, weights_path=detector_weights, device=torch.device("cpu"))
    assert "get_state_dict" not in vars(weights)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    with pytest.raises(ValueError, match="weights file .*missing.pth' does not exist"):
        build_model(
            SMALL_DETECTOR,
            weights,
            weights_path=tmp_path / "missing.pth",
            device=torch.device("cpu"),
        )


def test_weights_file_without_a_state_dict_is_a_clear_error(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    with pytest.raises(ValueError, match=r"not a state dict; save it with torch.save\(model"):
        build_model(
            SMALL_DETECTOR, weights, weights_path=tmp_path / "list.pth", device=torch.device("cpu")
        )


def test_weights_file_that_is_no_torch_file_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not weights")
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    with pytest.raises(ValueError, match="not a state dict that torch can load safely"):
        build_model(
            SMALL_DETECTOR, weights, weights_path=tmp_path / "notes.txt", device=torch.device("cpu")
        )


def test_weights_file_of_another_model_is_a_clear_error(tmp_path):
    path = save_random_weights(tmp_path / "resnet18.pth", "resnet18")
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    with pytest.raises(ValueError, match="does not fit model 'ssdlite320_mobilenet_v3_large'"):
        build_model(SMALL_DETECTOR, weights, weights_path=path, device=torch.device("cpu"))


def test_other_keywords_go_to_the_model_constructor(detector_weights):
    weights = torchvision.models.get_model_weights(SMALL_DETECTOR).DEFAULT
    model = build_model(
        SMALL_DETECTOR,
        weights,
        weights_path=detector_weights,
        device=torch.device("cpu"),
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
            device=torch.device("cpu"),
            no_such_option=1,
        )


def test_function_builds_its_spec_from_the_weights_categories(detector):
    names = {label.name for label in detector.spec.labels}
    assert "person" in names
    assert "N/A" not in names and "__background__" not in names
    assert {label.type for label in detector.spec.labels} == {"rectangle"}


def test_detect_is_detect_batch_of_one_frame(detector, spy):
    assert detector.detect(context(), image()) == detector.detect_batch([context()], [image()])[0]


def test_model_runs_under_inference_mode(detector, spy):
    detector.detect(context(), image())
    assert spy.calls[0]["inference_mode"]


def test_inputs_go_to_the_functions_device(detector, spy):
    detector.detect(context(), image())
    assert spy.calls[0]["devices"] == {"cpu"}


def test_on_the_cpu_each_frame_runs_alone(detector, spy):
    detector.detect_batch([context()] * 2, [image()] * 2)
    assert [call["shapes"] for call in spy.calls] == [[(3, 120, 160)], [(3, 120, 160)]]


@pytest.fixture
def on_accelerator(detector, monkeypatch):
    """Pretend the function runs on a GPU: inputs go to PyTorch's data-less "meta" device."""
    monkeypatch.setattr(detector, "device", torch.device("meta"))


def test_on_a_gpu_same_size_frames_run_in_one_model_call(detector, spy, on_accelerator):
    detector.detect_batch([context()] * 3, [image()] * 3)
    assert [call["shapes"] for call in spy.calls] == [[(3, 120, 160)] * 3]
    assert spy.calls[0]["devices"] == {"meta"}


def test_on_a_gpu_frames_of_different_sizes_run_in_separate_model_calls(
    detector, spy, on_accelerator
):
    frames = [image(160, 120), image(100, 80), image(160, 120)]
    detector.detect_batch([context()] * 3, frames)
    assert [call["shapes"] for call in spy.calls] == [
        [(3, 120, 160), (3, 120, 160)],
        [(3, 80, 100)],
    ]


def test_batch_results_keep_the_frames_order(detector, monkeypatch, on_accelerator):
    def forward(batch):
        # One detection per image, whose score tells the image's width.
        return [fake_detections([t.shape[2] / 1000]) for t in batch]

    monkeypatch.setattr(detector.model, "forward", forward)
    frames = [image(160, 120), image(100, 80), image(160, 120), image(170, 120)]
    results = detector.detect_batch([context()] * 4, frames)
    assert [result[0].score for result in results] == pytest.approx([0.16, 0.1, 0.16, 0.17])


def test_without_threshold_every_detection_is_kept(detector, spy):
    assert [s.score for s in detector.detect(context(), image())] == pytest.approx([0.2, 0.5, 0.8])


def test_threshold_keeps_detections_scoring_at_least_it(detector, spy):
    result = detector.detect(context(conf_threshold=0.5), image())
    assert [s.score for s in result] == pytest.approx([0.5, 0.8])


def test_detections_of_classes_that_are_no_label_are_dropped(detector, monkeypatch):
    detections = fake_detections([0.5, 0.5, 0.5])
    detections["labels"] = torch.tensor([0, 12, 13])  # background, "N/A", "stop sign"
    monkeypatch.setattr(detector.model, "forward", lambda batch: [detections])
    assert [shape.label_id for shape in detector.detect(context(), image())] == [13]


def test_each_frame_uses_its_own_threshold(detector, spy):
    results = detector.detect_batch([context(0.1), context(0.9)], [image(), image()])
    assert [len(result) for result in results] == [3, 0]


def noise(width=160, height=120):
    return PIL.Image.effect_noise((width, height), 40).convert("RGB")


def best_scores(annotations, count=10):
    return sorted((a.score for a in annotations), reverse=True)[:count]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_runs_on_cuda_with_cpu_like_results(detector_weights):
    on_cpu = _Detector(SMALL_DETECTOR, weights_path=str(detector_weights), device="cpu")
    on_cuda = _Detector(SMALL_DETECTOR, weights_path=str(detector_weights), device="cuda")
    frame = noise()
    assert next(on_cuda.model.parameters()).device.type == "cuda"
    # Kernels differ between devices, so near-equal detections may swap places: compare the
    # best scores only.
    expected = best_scores(on_cpu.detect(context(), frame))
    assert best_scores(on_cuda.detect(context(), frame)) == pytest.approx(expected, abs=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_batched_results_equal_one_by_one_results_up_to_rounding(detector_weights):
    on_cuda = _Detector(SMALL_DETECTOR, weights_path=str(detector_weights), device="cuda")
    frames = [noise(), noise(), noise(90, 70)]
    one_by_one = [on_cuda.detect(context(), frame) for frame in frames]
    batched = on_cuda.detect_batch([context()] * len(frames), frames)
    for alone, together in zip(one_by_one, batched, strict=True):
        assert best_scores(together) == pytest.approx(best_scores(alone), abs=1e-4)
