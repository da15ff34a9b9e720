"""Data meta, frames and chunks of image and video tasks, read with the real cvat-sdk client."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cvat_sdk
import PIL.Image
import pytest
from cvat_aa_testing import TestServer
from cvat_sdk import models
from cvat_sdk.datasets import MediaDownloadPolicy, TaskDataset
from server_test_data import FRAME_COLORS, close_to, make_images, mean_color

av = pytest.importorskip("av")


def download_chunk(task, number: int, quality: str) -> bytes:
    buffer = io.BytesIO()
    task.download_chunk(number, buffer, quality=quality)
    return buffer.getvalue()


def test_meta_lists_frame_names_and_sizes(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files, chunk_size=2)
    meta = cvat_client.tasks.retrieve(task_id).get_meta()
    assert [(f.name, f.width, f.height) for f in meta.frames] == [
        (p.name, 64 + i, 48) for i, p in enumerate(image_files)
    ]
    assert (meta.size, meta.chunk_size, meta.deleted_frames) == (5, 2, [])


def test_deleted_frames_show_in_meta(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files, deleted_frames=[3])
    task = cvat_client.tasks.retrieve(task_id)
    task.remove_frames_by_ids([1, 3])
    assert task.get_meta().deleted_frames == [1, 3]


def test_original_frame_is_the_uploaded_file(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files)
    frame = cvat_client.tasks.retrieve(task_id).get_frame(2, quality="original")
    assert frame.read() == image_files[2].read_bytes()


def test_compressed_frame_is_a_jpeg_of_the_image(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files)
    image = PIL.Image.open(cvat_client.tasks.retrieve(task_id).get_frame(2, quality="compressed"))
    assert image.format == "JPEG"
    assert image.size == (66, 48)
    assert close_to(mean_color(image), FRAME_COLORS[2])


def test_frame_out_of_range_is_400(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files)
    with pytest.raises(cvat_sdk.exceptions.ApiException) as error:
        cvat_client.tasks.retrieve(task_id).get_frame(5)
    assert error.value.status == 400


def test_original_chunk_is_a_zip_of_the_chunks_frames_in_order(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files, chunk_size=2)
    task = cvat_client.tasks.retrieve(task_id)
    with zipfile.ZipFile(io.BytesIO(download_chunk(task, 1, "original"))) as chunk:
        assert [chunk.read(info) for info in chunk.infolist()] == [
            p.read_bytes() for p in image_files[2:4]
        ]
    with zipfile.ZipFile(io.BytesIO(download_chunk(task, 2, "original"))) as last_chunk:
        assert len(last_chunk.infolist()) == 1


def test_compressed_chunk_is_a_zip_of_jpegs(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files, chunk_size=2)
    task = cvat_client.tasks.retrieve(task_id)
    with zipfile.ZipFile(io.BytesIO(download_chunk(task, 0, "compressed"))) as chunk:
        images = [PIL.Image.open(io.BytesIO(chunk.read(info))) for info in chunk.infolist()]
    assert [image.format for image in images] == ["JPEG", "JPEG"]
    assert close_to(mean_color(images[1]), FRAME_COLORS[1])


def test_task_dataset_reads_every_frame_through_chunks(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    files = make_images(tmp_path, 11)
    task_id = cvat_server.create_task("t", images=files, chunk_size=2, deleted_frames=[4])
    dataset = TaskDataset(cvat_client, task_id, load_annotations=False)
    assert [sample.frame_index for sample in dataset.samples] == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]
    for sample in dataset.samples:
        image = sample.media.load_image()
        assert sample.frame_name == files[sample.frame_index].name
        assert image.size == (64 + sample.frame_index, 48)
        assert close_to(mean_color(image), FRAME_COLORS[sample.frame_index], tolerance=1)
    chunk_requests = cvat_server.request_log.entries(path=r"/data/$")
    assert sorted(e.query for e in chunk_requests) == sorted(
        f"number={n}&quality=original&type=chunk" for n in range(6)
    )


def test_video_is_uploaded_and_decoded_into_frames(
    cvat_client: cvat_sdk.Client, video_file: Path
) -> None:
    task = cvat_client.tasks.create_from_data(
        models.TaskWriteRequest(name="video"), [video_file], data_params={"chunk_size": 5}
    )
    assert (task.size, task.data_chunk_size, task.mode) == (12, 5, "interpolation")
    assert (task.data_original_chunk_type, task.data_compressed_chunk_type) == ("video", "video")
    meta = task.get_meta()
    assert [(f.name, f.width, f.height) for f in meta.frames] == [("clip.mp4", 64, 48)]
    for number in (0, 7, 11):
        image = PIL.Image.open(task.get_frame(number, quality="original"))
        assert close_to(mean_color(image), FRAME_COLORS[number])


def test_video_frame_range_and_step_select_frames(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, video_file: Path
) -> None:
    task_id = cvat_server.create_video_task(
        "v", video=video_file, start_frame=2, stop_frame=9, frame_step=3
    )
    task = cvat_client.tasks.retrieve(task_id)
    assert task.size == 3
    meta = task.get_meta()
    assert (meta.start_frame, meta.stop_frame, meta.frame_filter) == (2, 8, "step=3")
    assert close_to(mean_color(PIL.Image.open(task.get_frame(1))), FRAME_COLORS[5])


@pytest.mark.parametrize("quality", ["original", "compressed"])
def test_video_chunk_is_a_video_of_the_chunks_frames(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, video_file: Path, quality: str
) -> None:
    task_id = cvat_server.create_video_task("v", video=video_file, chunk_size=5)
    chunk = download_chunk(cvat_client.tasks.retrieve(task_id), 1, quality)
    with av.open(io.BytesIO(chunk)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    assert len(frames) == 5
    assert close_to(mean_color(frames[0]), FRAME_COLORS[5])


def test_video_with_zip_chunks_has_imageset_compressed_chunks(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, video_file: Path
) -> None:
    task_id = cvat_server.create_video_task(
        "v", video=video_file, chunk_size=4, use_zip_chunks=True
    )
    task = cvat_client.tasks.retrieve(task_id)
    assert task.data_compressed_chunk_type == "imageset"
    with zipfile.ZipFile(io.BytesIO(download_chunk(task, 2, "compressed"))) as chunk:
        assert len(chunk.infolist()) == 4


def test_task_dataset_reads_video_frames_on_demand(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, video_file: Path
) -> None:
    task_id = cvat_server.create_video_task("v", video=video_file)
    dataset = TaskDataset(
        cvat_client,
        task_id,
        load_annotations=False,
        media_download_policy=MediaDownloadPolicy.FETCH_FRAMES_ON_DEMAND,
    )
    assert len(dataset.samples) == 12
    assert close_to(mean_color(dataset.samples[9].media.load_image()), FRAME_COLORS[9])


def test_video_and_images_together_are_refused(
    cvat_client: cvat_sdk.Client, video_file: Path, image_files: list[Path]
) -> None:
    with pytest.raises(
        cvat_sdk.core.exceptions.BackgroundRequestException,
        match="either images or exactly one video",
    ):
        cvat_client.tasks.create_from_data(
            models.TaskWriteRequest(name="mixed"), [video_file, *image_files]
        )


def test_zip_of_images_becomes_an_image_task(
    cvat_client: cvat_sdk.Client, image_files: list[Path], tmp_path: Path
) -> None:
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in image_files:
            zipped.write(path, f"sub/{path.name}")
    task = cvat_client.tasks.create_from_data(models.TaskWriteRequest(name="zip"), [archive])
    assert [f.name for f in task.get_meta().frames] == [f"sub/{p.name}" for p in image_files]
