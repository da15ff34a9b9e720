"""cvat_aa_torch.batching: which frames run together, and their copies on the device."""

import pytest
import torch
from cvat_aa_torch.batching import batch_indices, to_device

CPU = torch.device("cpu")
# PyTorch's data-less device stands in for a GPU where no GPU is needed.
ACCELERATOR = torch.device("meta")


def test_on_the_cpu_each_frame_is_a_batch_of_its_own():
    assert batch_indices(["a", "a", "b"], CPU) == [[0], [1], [2]]


def test_on_an_accelerator_frames_with_equal_keys_run_together():
    assert batch_indices([(160, 120), (160, 120), (160, 120)], ACCELERATOR) == [[0, 1, 2]]


def test_on_an_accelerator_batches_come_in_the_order_of_their_first_frame():
    keys = [(160, 120), (100, 80), (160, 120), (170, 120), (100, 80)]
    assert batch_indices(keys, ACCELERATOR) == [[0, 2], [1, 4], [3]]


def test_no_frames_make_no_batches():
    assert batch_indices([], ACCELERATOR) == []


def test_tensors_are_copied_to_the_device():
    tensors = [torch.zeros(3, 4, 5), torch.ones(3, 2, 2)]
    copies = to_device(tensors, ACCELERATOR)
    assert [(t.device, t.shape) for t in copies] == [(ACCELERATOR, t.shape) for t in tensors]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensors_copied_to_cuda_hold_the_same_values():
    tensors = [torch.rand(3, 40, 50), torch.rand(3, 20, 20)]
    copies = to_device(tensors, torch.device("cuda"))
    assert {t.device.type for t in copies} == {"cuda"}
    assert all(torch.equal(copy.cpu(), tensor) for copy, tensor in zip(copies, tensors))
