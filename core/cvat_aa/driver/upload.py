"""Uploading annotations in bounded pieces while detection goes on, and undoing them.

A piece holds whole frames only, so a frame's annotations are never half-uploaded. Pieces are
sent by one background thread, in order; the producer blocks when ``max_pending`` pieces are
waiting, which bounds memory. The ids the server gives to created annotations are kept, so a
run that fails can delete what it created and leave the task as it found it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from array import array
from collections.abc import Sequence
from typing import Any

import attrs
from cvat_sdk import models
from cvat_sdk.core import Client

__all__ = ["AnnotationTarget", "Uploader"]

logger = logging.getLogger(__name__)


@attrs.frozen
class AnnotationTarget:
    """The task or job whose annotations a run writes."""

    client: Client
    kind: str
    """``"task"`` or ``"job"``."""
    id: int

    @property
    def _api(self) -> Any:
        return self.client.tasks.api if self.kind == "task" else self.client.jobs.api

    def describe(self) -> str:
        return f"{self.kind} {self.id}"

    def get(self) -> models.LabeledData:
        data, _ = self._api.retrieve_annotations(self.id)
        return data

    def create(
        self, tags: Sequence[models.LabeledImageRequest], shapes: Sequence[models.LabeledShapeRequest]
    ) -> list[int]:
        """PATCH action=create; return the ids the server gave the new tags and shapes."""
        _, response = self._api.partial_update_annotations(
            "create",
            self.id,
            patched_labeled_data_request=models.PatchedLabeledDataRequest(tags=tags, shapes=shapes),
            _parse_response=False,
        )
        body = json.loads(response.data or b"{}")
        return [a["id"] for a in (*body.get("tags", []), *body.get("shapes", [])) if "id" in a]

    def replace(
        self, tags: Sequence[models.LabeledImageRequest], shapes: Sequence[models.LabeledShapeRequest]
    ) -> None:
        """PUT: replace all annotations of the target."""
        self._api.update_annotations(
            self.id, labeled_data_request=models.LabeledDataRequest(tags=tags, shapes=shapes)
        )

    def delete(self, ids: Sequence[int]) -> int:
        """Delete the tags, shapes and tracks with these ids; return how many were found."""
        wanted = set(ids)
        if not wanted:
            return 0
        current = self.get()
        request = models.PatchedLabeledDataRequest(
            tags=[models.LabeledImageRequest(**a.to_dict()) for a in current.tags if a.id in wanted],
            shapes=[models.LabeledShapeRequest(**a.to_dict()) for a in current.shapes if a.id in wanted],
            tracks=[models.LabeledTrackRequest(**a.to_dict()) for a in current.tracks if a.id in wanted],
        )
        found = len(request.tags) + len(request.shapes) + len(request.tracks)
        if found:
            self._api.partial_update_annotations(
                "delete", self.id, patched_labeled_data_request=request, _parse_response=False
            )
        return found


_STOP = object()


class Uploader:
    """Sends frames' annotations to a target in pieces, from a background thread."""

    def __init__(
        self,
        target: AnnotationTarget,
        *,
        piece_annotations: int = 2000,
        piece_frames: int = 200,
        max_pending: int = 2,
    ) -> None:
        self.target = target
        self.piece_annotations = piece_annotations
        self.piece_frames = piece_frames
        self.created = array("q")
        """Ids of everything this uploader created, for :meth:`rollback`."""
        self.requests = 0
        self._tags: list[models.LabeledImageRequest] = []
        self._shapes: list[models.LabeledShapeRequest] = []
        self._frames = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, max_pending))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="cvat-aa-upload", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain: a failed upload ends the run; later pieces are not sent
            tags, shapes = item
            try:
                self.created.extend(self.target.create(tags, shapes))
                self.requests += 1
            except BaseException as ex:  # handed to the producer thread
                self._error = ex

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def add(
        self, tags: Sequence[models.LabeledImageRequest], shapes: Sequence[models.LabeledShapeRequest]
    ) -> None:
        """Add one frame's annotations; a full piece is queued (blocking while the queue is full)."""
        self._check()
        self._tags.extend(tags)
        self._shapes.extend(shapes)
        self._frames += 1
        if (
            len(self._tags) + len(self._shapes) >= self.piece_annotations
            or self._frames >= self.piece_frames
        ):
            self._flush()

    def _flush(self) -> None:
        if self._tags or self._shapes:
            self._queue.put((self._tags, self._shapes))
        self._tags, self._shapes, self._frames = [], [], 0

    def close(self) -> None:
        """Send what is left and wait for every piece; raise the first upload error."""
        if self._thread.is_alive():
            self._flush()
            self._queue.put(_STOP)
            self._thread.join()
        self._check()

    def abort(self) -> None:
        """Stop without sending what is left (the run failed)."""
        self._tags, self._shapes = [], []
        if self._error is None:
            self._error = RuntimeError("upload aborted")
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def rollback(self) -> None:
        """Delete everything this uploader created (best effort; logged when it fails)."""
        if not self.created:
            return
        try:
            removed = self.target.delete(self.created)
            logger.info("Removed the %d annotations this run had uploaded", removed)
        except Exception:
            logger.error(
                "Could not remove the %d annotations this run uploaded to %s before failing",
                len(self.created),
                self.target.describe(),
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
