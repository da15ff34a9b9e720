"""What a run did, for every kind of run: one summary type, and one way to print it.

A :class:`RunSummary` describes a run on a task, a job or files alike: frames, annotations
per label, time, what was skipped and why. A run over several tasks composes one per task
(:class:`~cvat_aa.driver.projects.TasksSummary`), and a run over files returns one inside
its :class:`~cvat_aa.local.LocalResult`, beside the annotations it produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = ["RunSummary", "Skipped", "per_label_lines"]

FUNCTION_FAILED = "the function failed: "


@attrs.frozen
class Skipped:
    """A frame that was not annotated (or a file that was not read), and why."""

    frame: int | None
    """The frame number; None for a file of which no frame could be read."""
    name: str
    """The frame's name, or the file's path."""
    reason: str
    """Why, as a sentence: ``the function failed: ValueError: ...``, or what was wrong with
    the file."""

    @classmethod
    def function_failed(cls, frame: int, name: str, error: str) -> Skipped:
        """A frame the function raised ``error`` (``"ValueError: ..."``) on."""
        return cls(frame, name, f"{FUNCTION_FAILED}{error}")

    @property
    def function_error(self) -> str | None:
        """What the function raised on the frame; None when the input could not be read."""
        if self.frame is None or not self.reason.startswith(FUNCTION_FAILED):
            return None
        return self.reason.removeprefix(FUNCTION_FAILED)

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "name": self.name, "reason": self.reason}

    def __str__(self) -> str:
        if self.frame is None:
            return f"{self.name}: {self.reason}"
        return f"frame {self.frame} ({self.name}): {self.reason}"


def per_label_lines(per_label: Mapping[str, int]) -> list[str]:
    """``  name  count`` lines, most frequent first, names aligned."""
    width = max((len(name) for name in per_label), default=0)
    return [
        f"  {name:<{width}}  {count}"
        for name, count in sorted(per_label.items(), key=lambda item: (-item[1], item[0]))
    ]


def _skipped(value: Any) -> tuple[Skipped, ...]:
    return tuple(s if isinstance(s, Skipped) else Skipped(**s) for s in value)


@attrs.frozen(kw_only=True)
class RunSummary:
    """What a run did."""

    target: str
    """``"task"``, ``"job"``, or ``"images"`` for a run over files."""
    target_id: int | None = None
    """The task's or job's id; None for a run over files."""
    task_id: int | None = None
    """The task the annotations went to (a job's task); None for a run over files."""
    function: str | None = None
    """The function's name (its class name when it was given as an object)."""
    frames: int
    """Frames annotated (including frames a resumed run had finished before; skipped frames
    not included)."""
    annotations: int
    """Tags, shapes and tracks produced (and uploaded, unless ``dry_run``)."""
    per_label: dict[str, int]
    """Annotations per label name (the task's labels; in a run over files, the output's)."""
    elapsed_s: float
    tracks: int = 0
    """Tracks among the annotations (a result stage, such as video tracks, made them)."""
    skipped: tuple[Skipped, ...] = attrs.field(default=(), converter=_skipped)
    """Frames and files left out with ``on_error="skip"``, with why, in the order met."""
    resumed: bool = False
    """Whether the run continued an interrupted one."""
    frames_resumed: int = 0
    """Frames a resumed run had finished before (included in ``frames``)."""
    dry_run: bool = False
    output: Path | None = None
    """The file a run over files wrote the annotations to, if any."""
    preview: Path | None = None
    """The preview gallery's ``index.html``, if the run drew one."""

    @property
    def failed_frames(self) -> dict[int, str]:
        """The frames the function failed on, with what it raised (only with
        ``on_error="skip"``)."""
        return {
            s.frame: error
            for s in self.skipped
            if s.frame is not None and (error := s.function_error) is not None
        }

    @property
    def on_files(self) -> bool:
        return self.target == "images"

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain data (what ``--json`` prints and observer hooks get)."""
        return {
            "target": self.target,
            "target_id": self.target_id,
            "task_id": self.task_id,
            "function": self.function,
            "frames": self.frames,
            "annotations": self.annotations,
            "per_label": dict(self.per_label),
            "elapsed_s": self.elapsed_s,
            "tracks": self.tracks,
            "failed_frames": self.failed_frames,
            "skipped": [s.to_dict() for s in self.skipped],
            "resumed": self.resumed,
            "frames_resumed": self.frames_resumed,
            "dry_run": self.dry_run,
            "output": None if self.output is None else str(self.output),
            "preview": None if self.preview is None else str(self.preview),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """The summary :meth:`to_dict` (and JSON) gave."""
        fields = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def headline(self) -> str:
        """The first line of :meth:`format`."""
        # The rate is this run's: frames a resumed run had finished before took no time now.
        now = self.frames - self.frames_resumed
        tracks = f" ({self.tracks} of them tracks)" if self.tracks else ""
        rate = f" ({now / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else ""
        if self.on_files:
            return (
                f"Ran {self.function} on {self.frames} frames: {self.annotations}"
                f" annotations{tracks} in {self.elapsed_s:.1f} s{rate}"
            )
        verb = "Processed (dry run, nothing uploaded)" if self.dry_run else "Annotated"
        return (
            f"{verb} {self.target} {self.target_id}: {self.frames} frames,"
            f" {self.annotations} annotations{tracks} in {self.elapsed_s:.1f} s{rate}"
            + (f" (resumed: {self.frames_resumed} frames were done before)" if self.resumed else "")
        )

    def skipped_lines(self) -> list[str]:
        """What was skipped and why, after a line that counts it (nothing when nothing was)."""
        if not self.skipped:
            return []
        files = sum(1 for s in self.skipped if s.frame is None)
        counts = [
            f"{n} {noun}{'' if n == 1 else 's'}"
            for n, noun in ((len(self.skipped) - files, "frame"), (files, "file"))
            if n
        ]
        where = "left out of the output" if self.on_files else "not annotated"
        return [
            f"Skipped {' and '.join(counts)} ({where}):",
            *(f"  {skipped}" for skipped in self.skipped),
        ]

    def format(self) -> str:
        """A short human-readable report."""
        return "\n".join([self.headline(), *per_label_lines(self.per_label), *self.skipped_lines()])
