"""The driver: the server side of a run. It reads a task's (or job's) frames from CVAT, runs
them through the pipeline and uploads the results with a journal, so that a run that fails
leaves the task as it was and a run that was killed resumes."""

from ..frames import FrameSelection
from ..pipeline.detection import FunctionFailedError
from ..pipeline.detection import run_batch as detect_batch  # its name before cvat-aa 0.2
from ..pipeline.executors import Executor, LocalExecutor
from ..pipeline.ray_executor import RayExecutor
from .projects import TasksSummary, annotate_project, annotate_tasks
from .task_frames import NoDataError
from .task_run import AnnotationSummary, annotate_job, annotate_task
from .track_run import TrackSummary, track_job, track_task

__all__ = [
    "AnnotationSummary",
    "Executor",
    "FrameSelection",
    "FunctionFailedError",
    "LocalExecutor",
    "NoDataError",
    "RayExecutor",
    "TasksSummary",
    "TrackSummary",
    "annotate_job",
    "annotate_project",
    "annotate_task",
    "annotate_tasks",
    "detect_batch",
    "track_job",
    "track_task",
]
