"""Loading the model that the `model` parameter names, and the other parameters."""

import json
import os
import subprocess
import sys

import cvat_aa
import pytest
import torch
from cvat_aa import FunctionParameterError
from cvat_aa_ultralytics_yolo import UltralyticsYoloFunction


def test_importing_the_plugin_leaves_ultralytics_and_torch_for_later():
    # `cvat-aa functions list` imports every plugin; Ultralytics and torch take seconds.
    code = (
        "import sys, cvat_aa_ultralytics_yolo;"
        " sys.exit('ultralytics' in sys.modules or 'torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_function_is_installed_as_ultralytics_yolo(model_file):
    function = cvat_aa.load_function(
        "ultralytics_yolo", model=model_file("detect"), device="cpu", imgsz=96, iou=0.5
    )
    assert isinstance(function, UltralyticsYoloFunction)


def test_a_local_weights_file_is_loaded_without_looking_up_any_host(model_file, network_attempts):
    UltralyticsYoloFunction(model_file("detect"), device="cpu")
    assert network_attempts == []


# Ultralytics decides whether it is online when it is first imported, so this needs a process
# of its own, in which nothing has set YOLO_OFFLINE.
NO_NETWORK_SCRIPT = """
import json, socket, sys
attempts = []
def refuse(host, *args, **kwargs):
    attempts.append(str(host))
    raise socket.gaierror(socket.EAI_NONAME, "no network in this test")
socket.getaddrinfo = refuse
import PIL.Image
from cvat_aa import FrameContext
from cvat_aa_ultralytics_yolo import create
function = create(sys.argv[1], device="cpu", imgsz=64)
function.detect(FrameContext(frame_name="x.png"), PIL.Image.new("RGB", (80, 60)))
print(json.dumps(attempts))
"""


def test_running_a_local_weights_file_never_tries_the_network(model_file, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "YOLO_OFFLINE"}
    completed = subprocess.run(
        [sys.executable, "-c", NO_NETWORK_SCRIPT, model_file("detect")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(completed.stdout.splitlines()[-1]) == []


def test_a_stock_model_that_cannot_be_downloaded_says_to_pass_a_local_file(
    tmp_path, monkeypatch, network_attempts
):
    monkeypatch.chdir(tmp_path)  # where Ultralytics would save the download
    with pytest.raises(FunctionParameterError) as raised:
        cvat_aa.load_function("ultralytics_yolo", model="yolov8n.pt", device="cpu")
    message = str(raised.value)
    assert "could not download the stock model 'yolov8n.pt'" in message
    assert "-p model=str:/path/to/yolov8n.pt" in message
    assert network_attempts  # it did try, and failed as it would offline
    assert list(tmp_path.iterdir()) == []


def test_a_stock_model_name_may_leave_out_the_pt_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FunctionParameterError, match="stock model 'yolo11n-seg.pt'"):
        cvat_aa.load_function("ultralytics_yolo", model="yolo11n-seg", device="cpu")


def test_an_unknown_model_name_is_a_clear_error_without_any_download(network_attempts):
    with pytest.raises(
        FunctionParameterError,
        match="'yolov8q.pt' is neither an existing weights file nor a stock Ultralytics model",
    ):
        cvat_aa.load_function("ultralytics_yolo", model="yolov8q.pt", device="cpu")
    assert network_attempts == []


def test_a_missing_weights_file_is_a_clear_error_without_any_download(tmp_path, network_attempts):
    # Its name is a stock model's, which Ultralytics would download to that path.
    missing = tmp_path / "models" / "yolov8n.pt"
    with pytest.raises(FunctionParameterError, match=f"weights file '{missing}' does not exist"):
        cvat_aa.load_function("ultralytics_yolo", model=str(missing), device="cpu")
    assert network_attempts == []
    assert not missing.parent.exists()


def test_a_file_that_is_not_a_pt_file_is_refused(tmp_path):
    model = tmp_path / "yolov8n.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(FunctionParameterError, match="is not a .pt file"):
        cvat_aa.load_function("ultralytics_yolo", model=str(model), device="cpu")


def test_a_pt_file_that_is_no_ultralytics_model_is_a_clear_error(tmp_path):
    model = tmp_path / "resnet.pt"
    torch.save({"weight": torch.zeros(2)}, model)
    with pytest.raises(
        FunctionParameterError, match="is not an Ultralytics YOLO weights file that can be loaded"
    ):
        cvat_aa.load_function("ultralytics_yolo", model=str(model), device="cpu")


def test_a_model_of_a_task_that_gives_no_annotations_is_refused(model_file):
    from ultralytics.cfg import TASKS

    if "depth" not in TASKS:
        pytest.skip("this Ultralytics version has no depth models")
    with pytest.raises(FunctionParameterError, match="is a 'depth' model; this function runs"):
        cvat_aa.load_function("ultralytics_yolo", model=model_file("depth"), device="cpu")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"imgsz": 0}, "imgsz must be a positive whole number"),
        ({"iou": 1.5}, "iou must be a number from 0 to 1"),
        ({"device": "tpu"}, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ],
)
def test_bad_parameter_values_are_clear_errors(model_file, params, message):
    with pytest.raises(FunctionParameterError, match=message):
        cvat_aa.load_function("ultralytics_yolo", model=model_file("detect"), **params)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_device_without_cuda_is_a_clear_error(model_file):
    with pytest.raises(FunctionParameterError, match="sees no CUDA device"):
        cvat_aa.load_function("ultralytics_yolo", model=model_file("detect"), device="cuda")


def test_ultralytics_writes_its_console_to_stderr_so_json_output_stays_clean(model_file, tmp_path):
    # A machine where Ultralytics never ran: it writes a settings note when first imported.
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "fresh-settings")}
    script = NO_NETWORK_SCRIPT.replace("print(json.dumps(attempts))", "")
    completed = subprocess.run(
        [sys.executable, "-c", script, model_file("detect")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout == ""
    assert "Ultralytics Settings" in completed.stderr


def test_loading_a_model_leaves_pils_image_open_as_it_was(model_file, tmp_path):
    # Ultralytics replaces PIL.Image.open process-wide with one that, on a file PIL cannot
    # read, tries to install pi-heif and raises ModuleNotFoundError.
    script = (
        "import sys, PIL.Image\n"
        "before = PIL.Image.open\n"
        "from cvat_aa_ultralytics_yolo import create\n"
        "create(sys.argv[1], device='cpu')\n"
        "assert PIL.Image.open is before\n"
        "open(sys.argv[2], 'w').write('not an image')\n"
        "try:\n"
        "    PIL.Image.open(sys.argv[2])\n"
        "except PIL.UnidentifiedImageError:\n"
        "    print('unidentified')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, model_file("detect"), str(tmp_path / "broken.jpg")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.strip() == "unidentified"
