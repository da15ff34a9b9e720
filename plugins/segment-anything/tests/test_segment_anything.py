"""Segment Anything with random weights: prompts in, CVAT masks and polygons out, offline."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from cvat_aa import InteractionResultAttributes, function_kind
from cvat_aa.interaction import Interactor, Prompts
from cvat_aa.plugins import load_function
from cvat_aa_segment_anything import SegmentAnythingFunction, create, largest_polygon
from cvat_aa_segment_anything.models import MODELS
from cvat_sdk.masks import decode_mask

#: The models see the 160x120 image at 1024x768 (letterboxed to 1024x1024): 6.4 times larger.
# The size of conftest's image (not imported from it: another plugin's tests have a
# conftest module too, and which one "conftest" names depends on what pytest collected first).
WIDTH, HEIGHT = 160, 120
SCALE = 1024 / WIDTH
CLICK = (80.0, 55.0)


def confidence_of(shape):
    (attribute,) = shape.attributes
    assert attribute.spec_id == InteractionResultAttributes.CONFIDENCE
    return float(attribute.value)


class Spy:
    """Wraps a module's forward, keeping the keyword arguments of each call."""

    def __init__(self, monkeypatch, module):
        self.calls = []
        forward = module.forward

        def spy(*args, **kwargs):
            self.calls.append(kwargs)
            return forward(*args, **kwargs)

        monkeypatch.setattr(module, "forward", spy)


def test_it_is_an_interaction_function_that_takes_points_and_an_optional_box():
    spec = SegmentAnythingFunction.spec
    assert function_kind(spec) == "interaction"
    # As CVAT's own Segment Anything function declares itself.
    assert (spec.min_pos_points, spec.min_neg_points, spec.min_bounding_boxes) == (0, 0, 0)


def test_it_is_loaded_by_name_from_a_weights_file(weights_file, network_attempts):
    function = load_function(
        "segment-anything", model="mobile_sam", weights=str(weights_file()), device="cpu"
    )
    assert isinstance(function, SegmentAnythingFunction)
    assert network_attempts == []


def test_a_click_gives_a_mask_in_cvats_encoding(sam_function, image):
    (shape,) = Interactor(sam_function()).interact(image, Prompts(pos_points=[CLICK]))
    assert shape.type == "mask"
    mask = decode_mask(shape.points, image_width=WIDTH, image_height=HEIGHT)
    assert mask.any()
    # The encoding ends with the mask's bounding box: left, top, right, bottom.
    ys, xs = mask.nonzero()
    assert shape.points[-4:] == [xs.min(), ys.min(), xs.max(), ys.max()]
    assert 0 <= confidence_of(shape) <= 1


def test_polygon_output_gives_the_outline_of_the_masks_largest_part(sam_function, image):
    (shape,) = Interactor(sam_function(output="polygon")).interact(
        image, Prompts(pos_points=[CLICK], bounding_box=((40, 20), (120, 90)))
    )
    assert shape.type == "polygon"
    assert len(shape.points) >= 6 and len(shape.points) % 2 == 0
    assert all(0 <= x <= WIDTH for x in shape.points[0::2])
    assert all(0 <= y <= HEIGHT for y in shape.points[1::2])
    assert 0 <= confidence_of(shape) <= 1


def test_largest_polygon_outlines_the_largest_part_only():
    mask = np.zeros((50, 80), dtype=bool)
    mask[5:10, 5:10] = True
    mask[20:40, 30:70] = True
    points = largest_polygon(mask)
    xs, ys = points[0::2], points[1::2]
    assert (min(xs), min(ys), max(xs), max(ys)) == (30, 20, 69, 39)
    assert largest_polygon(np.zeros((5, 5), dtype=bool)) is None


@pytest.mark.parametrize("output", ["mask", "polygon"])
def test_an_empty_mask_gives_no_shape(sam_function, output):
    function = sam_function(output=output)
    assert function._shape(np.zeros((HEIGHT, WIDTH), dtype=bool), 0.5) is None


def test_points_and_box_reach_the_decoder_at_the_models_input_scale(
    sam_function, embedding, monkeypatch
):
    function = sam_function()
    spy = Spy(monkeypatch, function.model.prompt_encoder)
    prompts = Prompts(
        pos_points=[(10, 20)], neg_points=[(100, 50)], bounding_box=((5, 6), (150, 110))
    )
    function.detect(None, embedding(), prompts)
    (call,) = spy.calls
    coordinates, labels = call["points"]
    np.testing.assert_allclose(
        coordinates.numpy(), [[[10 * SCALE, 20 * SCALE], [100 * SCALE, 50 * SCALE]]], rtol=1e-6
    )
    assert labels.tolist() == [[1, 0]]
    np.testing.assert_allclose(
        call["boxes"].numpy(), [[5 * SCALE, 6 * SCALE, 150 * SCALE, 110 * SCALE]], rtol=1e-6
    )


def test_sam2_gets_the_box_as_its_two_corner_points(sam_function, embedding, monkeypatch):
    function = sam_function("sam2_t")
    spy = Spy(monkeypatch, function.model.sam_prompt_encoder)
    prompts = Prompts(pos_points=[(10, 20)], bounding_box=((5, 6), (150, 110)))
    (shape,) = function.detect(None, embedding("sam2_t"), prompts)
    (call,) = spy.calls
    coordinates, labels = call["points"]
    np.testing.assert_allclose(
        coordinates.numpy(),
        [[[5 * SCALE, 6 * SCALE], [150 * SCALE, 110 * SCALE], [10 * SCALE, 20 * SCALE]]],
        rtol=1e-6,
    )
    # SAM 2's labels for a box's top left and bottom right corners, then a positive point.
    assert labels.tolist() == [[2, 3, 1]]
    assert shape.type == "mask" and 0 <= confidence_of(shape) <= 1


@pytest.mark.parametrize(
    ("prompts", "multimask"),
    [
        (Prompts(pos_points=[CLICK]), True),
        (Prompts(pos_points=[CLICK], neg_points=[(10, 10)]), False),
        (Prompts(pos_points=[CLICK, (90, 60)]), False),
        (Prompts(pos_points=[CLICK], bounding_box=((40, 20), (120, 90))), False),
        (Prompts(bounding_box=((40, 20), (120, 90))), False),
    ],
)
def test_only_a_lone_click_asks_for_three_masks_and_keeps_the_best(
    sam_function, embedding, monkeypatch, prompts, multimask
):
    function = sam_function()
    spy = Spy(monkeypatch, function.model.mask_decoder)
    shapes = function.detect(None, embedding(), prompts)
    assert [call["multimask_output"] for call in spy.calls] == [multimask]
    assert len(shapes) == 1


@pytest.mark.parametrize(
    "prompts", [Prompts(), Prompts(neg_points=[CLICK])], ids=["nothing", "negative only"]
)
def test_without_a_positive_point_or_a_box_there_is_nothing_to_segment(
    sam_function, embedding, prompts
):
    assert sam_function().detect(None, embedding(), prompts) == []


def test_the_image_is_encoded_once_for_many_prompts(sam_function, image, monkeypatch):
    function = sam_function()
    encodings = Spy(monkeypatch, function.model.image_encoder)
    images = []

    def load():
        images.append(image)
        return image

    interactor = Interactor(function)
    for click in [CLICK, (70, 40), (100, 70)]:
        (shape,) = interactor.interact(load, Prompts(pos_points=[click]), cache_key=("task", 1))
        assert shape.type == "mask"
    assert len(encodings.calls) == len(images) == 1


def test_it_runs_on_the_cpu_when_asked(sam_function):
    function = sam_function()
    assert function.device == torch.device("cpu")
    assert {p.device.type for p in function.model.parameters()} == {"cpu"}


def test_building_a_function_leaves_torchs_thread_count_as_it_was(random_model):
    from ultralytics.utils import NUM_THREADS

    # Ultralytics' device selection sets its own count, NUM_THREADS: start from another.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(NUM_THREADS + 1)
        SegmentAnythingFunction(random_model("mobile_sam"), device="cpu")
        assert torch.get_num_threads() == NUM_THREADS + 1
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_it_runs_on_cuda_by_default_when_there_is_one(random_model, image):
    function = SegmentAnythingFunction(random_model("mobile_sam"))
    assert function.device.type == "cuda"
    embedding = function.preprocess_image(None, image)
    assert embedding.features.device.type == "cuda"
    (shape,) = function.detect(None, embedding, Prompts(pos_points=[CLICK]))
    assert shape.type == "mask"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_asking_for_cuda_without_one_says_so(random_model):
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        SegmentAnythingFunction(random_model("mobile_sam"), device="cuda")


def test_without_weights_the_error_names_the_weights_parameter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"pass its path with the 'weights' parameter \(-p weights=str:/path/to/sam2.1_b.pt\)",
    ):
        create(model="sam2.1_b")


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="weights file '.*/nothing.pt' does not exist"):
        create(weights=str(tmp_path / "nothing.pt"))


def test_ultralytics_weights_file_is_found_in_the_current_directory(
    weights_file, tmp_path, monkeypatch, network_attempts
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mobile_sam.pt").write_bytes(weights_file().read_bytes())
    function = create(device="cpu")
    assert isinstance(function, SegmentAnythingFunction)
    assert network_attempts == []


def test_a_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"backbone.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="does not fit this model.*'model' parameter"):
        create(weights=str(path), device="cpu")


def test_sam2_1_weights_load_into_the_sam2_architecture(random_model, tmp_path):
    from cvat_aa_segment_anything.models import build_model, load_weights

    # SAM 2.1 files have three tensors that only video tracking uses; Meta nests the weights.
    state = dict(random_model("sam2_t").state_dict())
    state["no_obj_embed_spatial"] = torch.zeros(1, 64)
    state["obj_ptr_tpos_proj.weight"] = torch.zeros(256, 256)
    state["obj_ptr_tpos_proj.bias"] = torch.zeros(256)
    path = tmp_path / "sam2.1_t.pt"
    torch.save({"model": state}, path)
    model = build_model("sam2.1_t")
    load_weights(model, path)
    assert torch.equal(
        model.sam_mask_decoder.iou_prediction_head.layers[0].weight,
        random_model("sam2_t").sam_mask_decoder.iou_prediction_head.layers[0].weight,
    )


def test_a_pickled_object_in_a_weights_file_is_not_run(tmp_path):
    path = tmp_path / "mobile_sam.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "config": object()}, path)
    with pytest.raises(ValueError, match="not a state dict that torch can load safely"):
        create(weights=str(path), device="cpu")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "sam3"}, "model must be one of mobile_sam, sam_b, .*, not 'sam3'"),
        ({"output": "rle"}, "output must be one of mask, polygon, not 'rle'"),
        ({"device": "gpu"}, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not 'gpu'"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_loaded(options, message):
    with pytest.raises(ValueError, match=message):
        create(**options)


def test_every_model_name_has_a_builder():
    from ultralytics.models.sam import build

    assert {info.builder for info in MODELS.values()} <= set(dir(build))


def test_ultralytics_writes_its_console_to_stderr_so_json_output_stays_clean(tmp_path):
    # A machine where Ultralytics never ran: it writes a settings note when first imported.
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "fresh-settings")}
    script = (
        "from cvat_aa_segment_anything import create\n"
        "try:\n"
        "    create(weights='/nonexistent/mobile_sam.pt')\n"
        "except ValueError:\n"
        "    pass\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout == ""
    assert "Ultralytics Settings" in completed.stderr


def test_building_a_model_leaves_pils_image_open_as_it_was(tmp_path):
    # Ultralytics replaces PIL.Image.open process-wide with one that, on a file PIL cannot
    # read, tries to install pi-heif and raises ModuleNotFoundError.
    script = (
        "import sys, PIL.Image\n"
        "before = PIL.Image.open\n"
        "from cvat_aa_segment_anything.models import build_model\n"
        "build_model('mobile_sam')\n"
        "assert PIL.Image.open is before\n"
        "open(sys.argv[1], 'w').write('not an image')\n"
        "try:\n"
        "    PIL.Image.open(sys.argv[1])\n"
        "except PIL.UnidentifiedImageError:\n"
        "    print('unidentified')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "broken.jpg")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.strip() == "unidentified"
