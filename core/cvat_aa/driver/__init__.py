"""The driver: downloads a task's frames, runs a function, maps labels, uploads annotations."""

from .annotate import AnnotationSummary, annotate_job, annotate_task
from .detection import Executor, FunctionFailedError, LocalExecutor, detect_batch
from .frames import FrameSelection, NoDataError
from .projects import TasksSummary, annotate_project, annotate_tasks
from .ray_executor import RayExecutor

__all__ = [
    "AnnotationSummary",
    "Executor",
    "FrameSelection",
    "FunctionFailedError",
    "LocalExecutor",
    "NoDataError",
    "RayExecutor",
    "TasksSummary",
    "annotate_job",
    "annotate_project",
    "annotate_task",
    "annotate_tasks",
    "detect_batch",
]
