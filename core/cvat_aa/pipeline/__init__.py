"""The one pipeline every run goes through, whatever its frames and wherever its results go.

::

    source ──frames──▶ executor ──annotations──▶ validate and map ──▶ sinks
    (task, job,        (here, or on               (LabelMapper:        (upload with journal,
     files)             Ray actors)                checks, frame        annotation file,
                                                   fitting, labels)     preview, on_frame)

* :mod:`.options`: :class:`RunOptions`, every option of a run, defined once;
* :mod:`.run`: :class:`Pipeline`, the loop, with the hooks, ``on_error`` and the
  frame-by-frame retry of a failed batch; the ``Source`` and ``Sink`` protocols;
* :mod:`.executors` and :mod:`.ray_executor`: where the function runs;
  :mod:`.detection`: running it on one batch, and what its failures become;
* :mod:`.label_mapping` and :mod:`.frame_bounds`: validating and mapping its output;
* :mod:`.sinks`: the sinks any run can have (the upload is the driver's);
* :mod:`.summary`: :class:`RunSummary`, what every run did.

Sources live with what they read: :mod:`cvat_aa.driver.task_frames` (a server) and
:mod:`cvat_aa.local.inputs` (files); the entry points that assemble a pipeline are
:mod:`cvat_aa.driver.task_run` and :mod:`cvat_aa.local.run`.
"""

from .options import RunOptions, Runs
from .summary import RunSummary, Skipped

__all__ = ["RunOptions", "RunSummary", "Runs", "Skipped"]
