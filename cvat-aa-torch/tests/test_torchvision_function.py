"""cvat_aa_torch.torchvision_function: what the torchvision plugins' functions have in common.

The model is a small detector with random weights from a local file; nothing is downloaded.
Most tests replace its forward pass with a spy, to see what the function hands the model.
"""

from collections.abc import Mapping

import PIL.Image
import pytest
import torch
import torchvision
from cvat_aa import FrameContext, rectangle
from cvat_aa_torch.torchvision_function import TorchvisionFunction

DETECTION_MODELS = torchvision.models.list_models(module=torchvision.models.detection)
SMALL_DETECTOR = "ssdlite320_mobilenet_v3_large"


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
