"""Offline fixtures: a detector with random weights, saved where torchvision caches weights."""

# Shared with every model plugin: random weights where torchvision caches them, photos.
from cvat_aa_torch.testing import (  # noqa: F401
    no_downloads,
    photo,
    photos,
    torch_home,
    weights_path,
)
