"""Local runs: a function on images and videos on this machine, with no CVAT server.

``inputs`` finds the files and names their frames; ``run`` runs the function and validates
its output as a task run would. Write the result with :mod:`cvat_aa.export` and look at it
with :mod:`cvat_aa.preview`.
"""

from .inputs import ImageInputError, LocalFrames, MediaFile, find_media
from .run import LocalResult, annotate_images

__all__ = [
    "ImageInputError",
    "LocalFrames",
    "LocalResult",
    "MediaFile",
    "annotate_images",
    "find_media",
]
