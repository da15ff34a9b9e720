"""The driver: downloads a task's frames, runs a function, maps labels, uploads annotations."""

from .annotate import AnnotationSummary, FunctionFailedError, annotate_job, annotate_task
from .frames import FrameSelection, NoDataError

__all__ = [
    "AnnotationSummary",
    "FrameSelection",
    "FunctionFailedError",
    "NoDataError",
    "annotate_job",
    "annotate_task",
]
