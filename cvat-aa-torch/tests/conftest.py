"""Fixtures of cvat_aa_torch's tests: nothing downloads, and a small detector has random weights."""

import pytest
from cvat_aa_torch.testing import no_downloads, save_random_weights  # noqa: F401

#: The smallest torchvision detector; its weights file loads in a fraction of a second.
SMALL_DETECTOR = "ssdlite320_mobilenet_v3_large"


@pytest.fixture(scope="session")
def detector_weights(tmp_path_factory):
    """A state-dict file of ssdlite320_mobilenet_v3_large with random weights."""
    return save_random_weights(SMALL_DETECTOR, tmp_path_factory.mktemp("torch-home"))
