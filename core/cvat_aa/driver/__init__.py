"""The driver: downloads a task's frames, runs a function, maps labels, uploads annotations."""

from .annotate import AnnotationSummary, annotate_job, annotate_task
from .detection import Executor, FunctionFailedError, LocalExecutor, detect_batch
from .frames import FrameSelection, NoDataError

__all__ = [
    "AnnotationSummary",
    "Executor",
    "FrameSelection",
    "FunctionFailedError",
    "LocalExecutor",
    "NoDataError",
    "annotate_job",
    "annotate_task",
    "detect_batch",
]
