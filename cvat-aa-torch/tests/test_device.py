"""cvat_aa_torch.device: the ``device`` parameter of every torch plugin."""

import pytest
import torch
from cvat_aa_torch.device import resolve_device


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
