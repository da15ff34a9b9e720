"""Creating, listing and removing tasks and projects with the real cvat-sdk client."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cvat_sdk
import pytest
from cvat_aa_testing import TestServer
from cvat_sdk import models
from cvat_sdk.core.exceptions import BackgroundRequestException
from cvat_sdk.core.uploading import DataUploader
from server_test_data import LABELS_OF_EVERY_TYPE, make_images


def create_task(
    client: cvat_sdk.Client, files: list[Path], **spec
) -> cvat_sdk.core.proxies.tasks.Task:
    spec.setdefault("name", "task")
    return client.tasks.create_from_data(models.TaskWriteRequest(**spec), files)


def test_create_from_data_uploads_images_and_reports_the_data(
    cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task = cvat_client.tasks.create_from_data(
        models.TaskWriteRequest(name="cats", labels=[{"name": "cat"}]),
        image_files,
        data_params={"chunk_size": 2, "image_quality": 80},
    )
    assert (task.name, task.size, task.data_chunk_size, task.image_quality) == ("cats", 5, 2, 80)
    assert task.data_original_chunk_type == "imageset"
    assert task.updated_date.tzinfo is not None


def test_create_from_data_sends_the_files_in_one_bulk_request(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    create_task(cvat_client, image_files)
    uploads = [
        e for e in cvat_server.request_log if e.method == "POST" and e.path.endswith("/data/")
    ]
    assert [e.status for e in uploads] == [202, 200, 202]
    assert uploads[1].bytes_in > sum(p.stat().st_size for p in image_files)


def test_files_larger_than_the_request_limit_go_through_tus(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    files = make_images(tmp_path, 3, size=(300, 200), suffix=".bmp")
    task = cvat_client.tasks.create(models.TaskWriteRequest(name="tus"))
    url = cvat_client.api_map.make_endpoint_url(
        task.api.create_data_endpoint.path, kwsub={"id": task.id}
    )
    response = DataUploader(cvat_client, max_request_size=files[0].stat().st_size - 1).upload_files(
        url, files, image_quality=70, sorting_method="predefined"
    )
    cvat_client.wait_for_completion(json.loads(response.data)["rq_id"])
    task.fetch()
    assert task.size == 3
    assert [f.name for f in task.get_meta().frames] == [p.name for p in files]
    assert [e.method for e in cvat_server.request_log.entries(path=r"/data/[0-9a-f-]{36}$")] == [
        "PATCH"
    ] * 3


def test_tus_upload_bigger_than_one_chunk_is_sent_in_pieces(
    cvat_server: TestServer,
    cvat_client: cvat_sdk.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cvat_sdk.core.uploading, "TUS_CHUNK_SIZE", 10_000)
    files = make_images(tmp_path, 1, size=(200, 100), suffix=".bmp")
    task = cvat_client.tasks.create(models.TaskWriteRequest(name="tus"))
    url = cvat_client.api_map.make_endpoint_url(
        task.api.create_data_endpoint.path, kwsub={"id": task.id}
    )
    DataUploader(cvat_client, max_request_size=1000).upload_files(url, files, image_quality=70)
    task.fetch()
    assert task.size == 1
    assert len(cvat_server.request_log.entries(method="PATCH")) == -(
        -files[0].stat().st_size // 10_000
    )


def test_data_params_select_sort_and_step_frames(
    cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    files = make_images(tmp_path, 6)
    task = cvat_client.tasks.create_from_data(
        models.TaskWriteRequest(name="t"),
        list(reversed(files)),
        data_params={
            "sorting_method": "predefined",
            "start_frame": 1,
            "stop_frame": 4,
            "frame_step": 2,
        },
    )
    assert [f.name for f in task.get_meta().frames] == ["image_04.png", "image_02.png"]


def test_lexicographical_sorting_is_the_default(
    cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task = create_task(cvat_client, list(reversed(image_files)))
    assert [f.name for f in task.get_meta().frames] == sorted(p.name for p in image_files)


def test_unreadable_image_fails_the_background_request(
    cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(BackgroundRequestException, match="broken.jpg"):
        create_task(cvat_client, [broken])


def test_retrieve_returns_the_task(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("kept", images=image_files)
    task = cvat_client.tasks.retrieve(task_id)
    assert (task.id, task.name, task.size, task.owner.username) == (
        task_id,
        "kept",
        5,
        cvat_server.username,
    )


def test_retrieve_of_a_missing_task_is_404(cvat_client: cvat_sdk.Client) -> None:
    with pytest.raises(cvat_sdk.exceptions.ApiException) as error:
        cvat_client.tasks.retrieve(12345)
    assert error.value.status == 404


def test_list_pages_through_all_tasks(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    task_ids = [
        cvat_client.tasks.create(models.TaskWriteRequest(name=f"t{i}")).id for i in range(12)
    ]
    assert sorted(task.id for task in cvat_client.tasks.list()) == task_ids
    assert len(cvat_server.request_log.entries(method="GET", path=r"^/api/tasks$")) == 2


def test_remove_by_ids_deletes_tasks_and_ignores_missing_ones(
    cvat_server: TestServer,
    cvat_client: cvat_sdk.Client,
    image_files: list[Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept, removed = (
        cvat_server.create_task(name, images=image_files) for name in ("kept", "removed")
    )
    with caplog.at_level(logging.INFO):
        cvat_client.tasks.remove_by_ids([removed, 999])
    assert cvat_server.task_ids() == [kept]
    assert not (cvat_server.media_root / "tasks" / str(removed)).exists()
    assert "999" in caplog.text


def test_labels_of_every_type_come_back_with_attributes_and_sublabels(
    cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task = create_task(cvat_client, image_files, labels=LABELS_OF_EVERY_TYPE)
    labels = {label.name: label for label in task.get_labels()}
    assert {name: label.type for name, label in labels.items()} == {
        "anything": "any",
        "car": "rectangle",
        "road": "polygon",
        "sky": "mask",
        "eye": "points",
        "person": "skeleton",
        "daytime": "tag",
    }
    car_attributes = {
        a.name: (a.input_type.value, a.mutable, a.values) for a in labels["car"].attributes
    }
    assert car_attributes["color"] == ("select", False, ["red", "blue"])
    assert car_attributes["speed"] == ("number", True, ["0", "200", "1"])
    assert [s.name for s in labels["person"].sublabels] == ["head", "hand"]
    assert labels["person"].sublabels[1].attributes[0].name == "side"
    assert "data-node-from" in labels["person"].svg


def test_label_list_is_paginated(cvat_server: TestServer, cvat_client: cvat_sdk.Client) -> None:
    task = cvat_client.tasks.create(
        models.TaskWriteRequest(name="t", labels=[{"name": f"label{i}"} for i in range(23)])
    )
    assert [label.name for label in task.get_labels()] == [f"label{i}" for i in range(23)]
    assert len(cvat_server.request_log.entries(path="^/api/labels$")) == 3


def test_duplicate_label_names_are_rejected(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    with pytest.raises(cvat_sdk.exceptions.ApiException) as error:
        cvat_client.tasks.create(
            models.TaskWriteRequest(name="t", labels=[{"name": "cat"}, {"name": "cat"}])
        )
    assert error.value.status == 400
    assert cvat_server.task_ids() == []


def test_task_in_a_project_uses_the_projects_labels(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    project = cvat_client.projects.create(
        models.ProjectWriteRequest(name="p", labels=[{"name": "dog", "type": "rectangle"}])
    )
    task = create_task(cvat_client, image_files, project_id=project.id)
    assert [label.name for label in task.get_labels()] == ["dog"]
    assert [label.id for label in task.get_labels()] == [label.id for label in project.get_labels()]
    assert cvat_client.projects.retrieve(project.id).tasks.count == 1
    assert task.project_id == project.id


def test_python_api_creates_project_tasks_too(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    project_id = cvat_server.create_project("p", labels=[{"name": "dog"}])
    task_id = cvat_server.create_task("t", images=image_files, project_id=project_id)
    assert [label.name for label in cvat_client.tasks.retrieve(task_id).get_labels()] == ["dog"]


def test_updated_date_increases_with_every_change(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files, labels=[{"name": "cat"}])
    before = cvat_client.tasks.retrieve(task_id).updated_date
    cvat_server.set_annotations(
        task_id, {"tags": [{"frame": 0, "label_id": cvat_server.label_id(task_id, "cat")}]}
    )
    after_annotation = cvat_client.tasks.retrieve(task_id).updated_date
    cvat_client.tasks.retrieve(task_id).remove_frames_by_ids([1])
    after_deletion = cvat_client.tasks.retrieve(task_id).updated_date
    assert before < after_annotation < after_deletion


def test_task_ids_are_never_reused(cvat_server: TestServer, cvat_client: cvat_sdk.Client) -> None:
    first = cvat_client.tasks.create(models.TaskWriteRequest(name="a")).id
    cvat_client.tasks.remove_by_ids([first])
    assert cvat_client.tasks.create(models.TaskWriteRequest(name="b")).id > first


def test_list_filters_tasks_with_json_logic(cvat_client: cvat_sdk.Client) -> None:
    for name in ("a", "b", "c"):
        cvat_client.tasks.create(models.TaskWriteRequest(name=name))
    selected = cvat_client.tasks.list(filter=json.dumps({"in": [{"var": "name"}, ["a", "c"]]}))
    assert sorted(task.name for task in selected) == ["a", "c"]


def test_task_update_renames_and_adds_labels(cvat_client: cvat_sdk.Client) -> None:
    task = cvat_client.tasks.create(models.TaskWriteRequest(name="old", labels=[{"name": "cat"}]))
    task.update(models.PatchedTaskWriteRequest(name="new", labels=[{"name": "dog"}]))
    task = cvat_client.tasks.retrieve(task.id)
    assert (task.name, [label.name for label in task.get_labels()]) == ("new", ["cat", "dog"])


def test_removing_a_project_removes_its_tasks(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    project_id = cvat_server.create_project("p", labels=[{"name": "dog"}])
    cvat_server.create_task("t", images=image_files, project_id=project_id)
    cvat_client.projects.remove_by_ids([project_id])
    assert cvat_server.task_ids() == []
