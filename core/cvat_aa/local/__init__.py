"""Local runs: a function on images and videos on this machine, with no CVAT server.

``inputs`` finds the files and names their frames; ``run`` runs the function, validates its
output as a task run would and streams it to a file (:mod:`cvat_aa.export`). Look at it with
:mod:`cvat_aa.preview`.
"""

from .inputs import ImageInputError, LocalFrames, MediaFile, Skipped, find_media
from .run import LocalResult, annotate_images

__all__ = [
    "ImageInputError",
    "LocalFrames",
    "LocalResult",
    "MediaFile",
    "Skipped",
    "annotate_images",
    "find_media",
]
