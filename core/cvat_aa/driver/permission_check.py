"""Before a run does any work: may this user change the annotations it would upload?

A user may be allowed to read a task (or a job) and not to change it: on CVAT, a user in no
group who is assigned the task, or a server with rules of its own. Without this check such a
run would load the model, read and annotate every frame, and only then fail on its first
upload. CVAT has no endpoint that answers "may I?", so the check asks the question the
upload asks, with nothing in it: ``PATCH .../annotations?action=create`` with no tags, shapes
or tracks. It needs the permission every upload needs (``update:annotations``; removing
annotations with ``--clear-existing`` needs ``delete:annotations``, which CVAT's rules grant
to exactly the same users), and it changes nothing that anyone can see. On CVAT 2.73 an empty
PATCH leaves the annotations, their version, the task's and its jobs' ``updated_date`` and
each job's state as they were (checked on a real server). An empty PUT would not do: it
replaces, so it would delete everything.

A dry run is not checked: it uploads nothing, so reading is all it needs.
"""

from __future__ import annotations

from typing import Any

import urllib3.exceptions
from cvat_sdk.api_client import exceptions as api_exceptions
from cvat_sdk.api_client import models

from ..errors import PermissionDeniedError
from .retry import RetryPolicy

__all__ = ["check_may_annotate"]


def check_may_annotate(client: Any, kind: str, target_id: int, *, retry: RetryPolicy) -> None:
    """Raise PermissionDeniedError unless the user may change the task's (or job's)
    annotations; change nothing either way."""
    api = client.api_client.jobs_api if kind == "job" else client.api_client.tasks_api
    empty = models.PatchedLabeledDataRequest(tags=[], shapes=[], tracks=[])
    try:
        retry.call(
            lambda: api.partial_update_annotations(
                "create", target_id, patched_labeled_data_request=empty, _parse_response=False
            ),
            what=f"checking that you may change the annotations of {kind} {target_id}",
        )
    except api_exceptions.ForbiddenException:
        user = _username(client)
        if not _may_read(api, target_id):
            raise PermissionDeniedError(
                f"{user} may not see {kind} {target_id} on this server (403 Forbidden), so"
                " nothing was run: ask the owner of the task (or a maintainer of its"
                " organization) for access, or check --auth and --organization"
            ) from None
        raise PermissionDeniedError(
            f"{user} may read {kind} {target_id} but not change its annotations on this"
            " server, so nothing was run or uploaded: ask the owner of the task (or a"
            " maintainer of its organization) for the right to annotate it, or make it a"
            " dry run (--dry-run), which uploads nothing"
        ) from None


def _may_read(api: Any, target_id: int) -> bool:
    try:
        api.retrieve(target_id, _parse_response=False)
    except api_exceptions.ForbiddenException:
        return False
    return True


def _username(client: Any) -> str:
    try:
        return f"user {client.users.retrieve_current_user().username!r}"
    except (api_exceptions.OpenApiException, urllib3.exceptions.HTTPError):
        # Only for the message: the missing permission is what matters.
        return "this user"
