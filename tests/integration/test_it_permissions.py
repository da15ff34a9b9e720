"""A second user, who may not change the first user's task, is refused before any work
(cvat-aa checks the permission to change the annotations before it loads the function).

"Before any work" is checked with the function's ``touch`` file: it exists once ``detect`` has
run on a frame. The refusal exits with 3 (docs/cli.md: "no permission") and leaves the task as
it was. The second user is ``CVAT_AA_IT_USER2``, or a user registered for the session.
"""

from __future__ import annotations

import json

import pytest
from readback import NOTHING, assert_annotations, expected_annotations, server_annotations
from target import Account


def refused_without_work(result, touched, client, task) -> None:
    assert result.returncode == 3, result.stderr
    error = result.stderr.lower()
    assert "cvat-aa: error:" in error and ("permission" in error or "not change" in error), error
    assert "traceback" not in error
    assert not touched.exists(), "the function ran before the user was refused"
    assert_annotations(server_annotations(client, task), NOTHING)


def test_a_user_who_cannot_see_the_task_is_refused(
    cvat_aa_cli, client, workspace, second_account, tmp_path
):
    task = workspace.create_task("stranger", frames=2)
    touched = tmp_path / "detect-ran"

    result = cvat_aa_cli(
        "annotate",
        str(task),
        "--function",
        "it_every_shape",
        "-p",
        f"touch=str:{touched}",
        account=second_account,
    )

    refused_without_work(result, touched, client, task)


@pytest.fixture(scope="session")
def viewer(users) -> tuple[Account, int]:
    """A user in no group: as a task's assignee, CVAT lets them see it but not change it."""
    manager, recorder = users
    account, user_id = manager.register("viewer")
    manager.set_groups(user_id, [])
    if recorder is not None:
        recorder.add_name(account.username, "<viewer>")
        recorder.add_secret(account.password)
    return account, user_id


def test_a_user_who_can_see_the_task_but_not_change_it_is_refused_before_any_work(
    cvat_aa_cli, client, workspace, viewer, tmp_path
):
    from cvat_sdk import models

    account, user_id = viewer
    task = workspace.create_task("viewer", frames=2)
    client.tasks.retrieve(task).update(models.PatchedTaskWriteRequest(assignee_id=user_id))
    touched = tmp_path / "detect-ran"

    result = cvat_aa_cli(
        "annotate",
        str(task),
        "--function",
        "it_every_shape",
        "-p",
        f"touch=str:{touched}",
        account=account,
    )

    refused_without_work(result, touched, client, task)


def test_a_user_who_can_see_the_task_may_make_a_dry_run_of_a_job(
    cvat_aa_cli, client, workspace, viewer
):
    from cvat_sdk import models

    account, user_id = viewer
    task = workspace.create_task("viewer-dry-run", frames=4, segment_size=2)
    client.tasks.retrieve(task).update(models.PatchedTaskWriteRequest(assignee_id=user_id))
    job = min(client.tasks.retrieve(task).get_jobs(), key=lambda j: j.start_frame)

    result = cvat_aa_cli(
        "annotate",
        "--job",
        str(job.id),
        "--function",
        "it_every_shape",
        "--dry-run",
        "--json",
        account=account,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 2
    assert_annotations(server_annotations(client, task), NOTHING)


@pytest.fixture(scope="session")
def job_assignee(users) -> tuple[Account, int]:
    """An ordinary user who will be assigned one job: CVAT lets them see nothing of its task."""
    manager, recorder = users
    account, user_id = manager.register("jobber")
    if recorder is not None:
        recorder.add_name(account.username, "<jobber>")
        recorder.add_secret(account.password)
    return account, user_id


def test_a_job_assignee_annotates_their_job(cvat_aa_cli, client, workspace, job_assignee):
    from cvat_sdk import models

    account, user_id = job_assignee
    # Jobs of 3 frames, chunks of 2: the second job starts inside the task's second chunk.
    task = workspace.create_task("job-assignee", frames=7, segment_size=3, chunk_size=2)
    job = sorted(client.tasks.retrieve(task).get_jobs(), key=lambda j: j.start_frame)[1]
    client.api_client.jobs_api.partial_update(
        job.id, patched_job_write_request=models.PatchedJobWriteRequest(assignee=user_id)
    )

    result = cvat_aa_cli(
        "annotate", "--job", str(job.id), "--function", "it_every_shape", account=account
    )

    assert result.returncode == 0, result.stderr
    assert_annotations(server_annotations(client, task), expected_annotations([3, 4, 5]))
