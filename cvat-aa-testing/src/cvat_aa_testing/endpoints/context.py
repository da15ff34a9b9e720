"""What every endpoint works on: the server's database and media, and look-ups that 404.

One :class:`ServerContext` per server is handed to each handler, so handlers are plain
functions that share no state but this.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import attrs

from ..lambda_requests import LambdaQueue
from ..native_functions import FunctionQueues
from ..nuclio import Gateway
from ..representations import SERVER_VERSION
from ..storage import Storage, Transaction
from .http import not_found


@attrs.frozen
class ServerContext:
    """One server's database, the folder of its tasks' media, the CVAT version it claims, the
    share root that ``server_files`` are relative to, its lambda manager (the Nuclio gateway,
    the requests running, and the secret that signs tracker states), and its native
    functions with their agents' queues."""

    storage: Storage
    media_root: Path
    server_version: str = SERVER_VERSION
    share_root: Path | None = None
    nuclio: Gateway = attrs.field(factory=Gateway)
    lambda_queue: LambdaQueue = attrs.field(factory=LambdaQueue)
    functions: FunctionQueues = attrs.field(factory=FunctionQueues)
    secret_key: bytes = attrs.field(factory=lambda: secrets.token_bytes(32))

    def task(self, tx: Transaction, task_id: str | int) -> dict[str, Any]:
        """The task, or a 404."""
        task = tx.task(int(task_id))
        if task is None:
            raise not_found("Task")
        return task

    def job(self, tx: Transaction, job_id: str | int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The job and its task, or a 404."""
        job = tx.job(int(job_id))
        if job is None:
            raise not_found("Job")
        return job, tx.task(job["task_id"])
