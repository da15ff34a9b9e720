"""cvat-aa: auto-annotate CVAT tasks with ML models on your own machine.

The public API. Functions follow cvat-sdk's auto-annotation protocol, in its three kinds:
detection (``spec`` + ``detect``), interaction (run with :class:`Interactor`) and tracking
(run with :class:`Tracker`); see the plugin author guide in docs/. Every error cvat-aa raises
on purpose is a :class:`CvatAaError`; ``cvat_aa.errors`` has them all.
"""

from importlib.metadata import PackageNotFoundError, version

from .driver import (
    AnnotationSummary,
    FrameSelection,
    FunctionFailedError,
    LocalExecutor,
    NoDataError,
    RayExecutor,
    TasksSummary,
    TrackSummary,
    annotate_job,
    annotate_project,
    annotate_task,
    annotate_tasks,
    track_job,
    track_task,
)
from .errors import CvatAaError
from .hookspecs import hookimpl
from .interface import (
    BadFunctionError,
    BatchDetectionFunction,
    DetectionAnnotation,
    DetectionFunction,
    DetectionFunctionContext,
    DetectionFunctionSpec,
    FrameContext,
    FunctionKind,
    InteractionFunctionContext,
    InteractionFunctionSpec,
    InteractionPrompts,
    InteractionResultAttributes,
    InteractionResultShape,
    TrackableShape,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
    attribute_spec,
    checkbox_attribute_spec,
    function_kind,
    keypoint,
    keypoint_spec,
    label_spec,
    mask,
    number_attribute_spec,
    polygon,
    radio_attribute_spec,
    rectangle,
    select_attribute_spec,
    shape,
    skeleton,
    skeleton_label_spec,
    tag,
    text_attribute_spec,
)
from .interaction import Interactor, Prompts, check_prompts
from .local import ImageInputError, LocalResult, annotate_images
from .parameters import FunctionParameterError
from .pipeline import RunOptions, RunSummary
from .plugins import UnknownFunctionError, discover_functions, load_function
from .tracking import Tracker

try:
    __version__ = version("cvat-aa")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "AnnotationSummary",
    "BadFunctionError",
    "BatchDetectionFunction",
    "CvatAaError",
    "DetectionAnnotation",
    "DetectionFunction",
    "DetectionFunctionContext",
    "DetectionFunctionSpec",
    "FrameContext",
    "FrameSelection",
    "FunctionFailedError",
    "FunctionKind",
    "FunctionParameterError",
    "ImageInputError",
    "InteractionFunctionContext",
    "InteractionFunctionSpec",
    "InteractionPrompts",
    "InteractionResultAttributes",
    "InteractionResultShape",
    "Interactor",
    "LocalExecutor",
    "LocalResult",
    "NoDataError",
    "Prompts",
    "RayExecutor",
    "RunOptions",
    "RunSummary",
    "TasksSummary",
    "TrackSummary",
    "TrackableShape",
    "Tracker",
    "TrackingFunctionContext",
    "TrackingFunctionShapeContext",
    "TrackingFunctionSpec",
    "UnknownFunctionError",
    "__version__",
    "annotate_images",
    "annotate_job",
    "annotate_project",
    "annotate_task",
    "annotate_tasks",
    "attribute_spec",
    "check_prompts",
    "checkbox_attribute_spec",
    "discover_functions",
    "function_kind",
    "hookimpl",
    "keypoint",
    "keypoint_spec",
    "label_spec",
    "load_function",
    "mask",
    "number_attribute_spec",
    "polygon",
    "radio_attribute_spec",
    "rectangle",
    "select_attribute_spec",
    "shape",
    "skeleton",
    "skeleton_label_spec",
    "tag",
    "text_attribute_spec",
    "track_job",
    "track_task",
]
