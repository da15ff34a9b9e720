"""Video frames and chunks built as CVAT 2.73 builds them.

CVAT encodes each job's frames into H.264 chunks with libopenh264 (libx264 when PyAV lacks
it) and serves a frame decoded from its chunk. The pixels come out of the codec; these tests
check where frames come from and how chunks are made, never exact pixel values beyond that
(``docs/testing.md`` has the comparison with a real CVAT).
"""

from __future__ import annotations

import io
from pathlib import Path

import cvat_sdk
import numpy as np
import PIL.Image
import pytest
from cvat_aa_testing import TestServer, media
from cvat_sdk.api_client.exceptions import ApiException
from server_test_data import FRAME_COLORS, close_to, mean_color

av = pytest.importorskip("av")

needs_openh264 = pytest.mark.skipif(
    "libopenh264" not in av.codecs_available,
    reason="this PyAV has no libopenh264 (the test environment pins av==16.0.1, which has it)",
)


@pytest.fixture
def without_openh264(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyAV as its wheels from version 17 on are built: no libopenh264, only libx264."""
    codec = av.codec.Codec

    def codec_without_openh264(name: str, mode: str = "r") -> object:
        if name == "libopenh264":
            raise av.codec.codec.UnknownCodecError(name)
        return codec(name, mode)

    monkeypatch.setattr(av.codec, "Codec", codec_without_openh264)


def make_textured_video(path: Path, frame_count: int = 12) -> Path:
    """A 160x120 video of fine detail, which openh264 cannot encode losslessly even at QP 0."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    texture = np.kron(blocks, np.ones((4, 4, 1), dtype=np.uint8)) // 2
    texture = texture + rng.integers(0, 48, texture.shape, dtype=np.uint8)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.bit_rate = 1_500_000
        for i in range(frame_count):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, 3 * i, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def exact_decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def pixels(data: bytes | io.RawIOBase) -> np.ndarray:
    raw = data if isinstance(data, bytes) else data.read()
    return np.asarray(PIL.Image.open(io.BytesIO(raw)).convert("RGB"))


def chunk_frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def job_chunk(client: cvat_sdk.Client, job_id: int, quality: str = "original", **which: int):
    _, response = client.api_client.jobs_api.retrieve_data(
        job_id, type="chunk", quality=quality, **which, _parse_response=False
    )
    return response.data


@needs_openh264
def test_chunks_are_encoded_with_openh264_as_cvat_does_when_pyav_has_it() -> None:
    original = media.video_chunk_encoding(100, compressed=False)
    compressed = media.video_chunk_encoding(70, compressed=True)
    assert (original.codec, original.qp, original.profile) == (
        "libopenh264",
        0,
        "constrained_baseline",
    )
    assert original.options == {"rc_mode": "buffer"}
    assert (compressed.codec, compressed.qp) == ("libopenh264", 15)


def test_without_openh264_chunks_fall_back_to_libx264_as_cvat_does(without_openh264) -> None:
    original = media.video_chunk_encoding(100, compressed=False)
    compressed = media.video_chunk_encoding(70, compressed=True)
    assert (original.codec, original.profile) == ("libx264", None)
    assert original.options == {"crf": "0", "preset": "ultrafast"}
    assert (compressed.codec, compressed.profile) == ("libx264", "baseline")
    assert compressed.options == {"coder": "0", "crf": "15", "wpredp": "0", "flags": "-loop"}


@needs_openh264
def test_an_original_frame_is_decoded_from_its_reencoded_job_chunk(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    video = make_textured_video(tmp_path / "textured.mp4")
    task_id = cvat_server.create_video_task(
        "v", video=video, chunk_size=4, segment_size=6, overlap=0
    )
    second_job = cvat_server.jobs(task_id)[1]
    task = cvat_client.tasks.retrieve(task_id)

    frame = pixels(task.get_frame(9, quality="original"))
    chunk = chunk_frames(job_chunk(cvat_client, second_job["id"], index=0))

    assert (frame == chunk[9 - 6]).all()
    assert not (frame == exact_decode(video)[9]).all()


def test_with_only_libx264_an_original_frame_is_the_exact_decode(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path, without_openh264
) -> None:
    video = make_textured_video(tmp_path / "textured.mp4")
    task_id = cvat_server.create_video_task("v", video=video, chunk_size=4)
    task = cvat_client.tasks.retrieve(task_id)

    assert (pixels(task.get_frame(5, quality="original")) == exact_decode(video)[5]).all()


@pytest.mark.parametrize("quality", ["original", "compressed"])
def test_a_video_frame_is_a_png(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, video_file: Path, quality: str
) -> None:
    task = cvat_client.tasks.retrieve(cvat_server.create_video_task("v", video=video_file))
    image = PIL.Image.open(task.get_frame(7, quality=quality))
    assert (image.format, image.size) == ("PNG", (64, 48))
    assert close_to(mean_color(image), FRAME_COLORS[7])


def test_a_chunk_is_built_once_for_all_its_frames(
    cvat_server: TestServer,
    cvat_client: cvat_sdk.Client,
    video_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = []
    write_video_chunk = media.write_video_chunk

    def counting(target: Path, *args, **kwargs) -> None:
        built.append(target.name)
        write_video_chunk(target, *args, **kwargs)

    monkeypatch.setattr(media, "write_video_chunk", counting)
    task = cvat_client.tasks.retrieve(
        cvat_server.create_video_task("v", video=video_file, chunk_size=4)
    )
    for frame in (0, 1, 3, 0, 2):
        task.get_frame(frame, quality="original")
    assert len(built) == 1
    task.get_frame(4, quality="original")
    task.get_frame(4, quality="compressed")
    assert len(built) == 3


def test_a_task_chunk_holds_its_frames_from_each_job(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, video_file: Path
) -> None:
    task_id = cvat_server.create_video_task(
        "v", video=video_file, chunk_size=4, segment_size=6, overlap=0
    )
    buffer = io.BytesIO()
    cvat_client.tasks.retrieve(task_id).download_chunk(1, buffer, quality="original")
    colors = [mean_color(PIL.Image.fromarray(frame)) for frame in chunk_frames(buffer.getvalue())]
    assert len(colors) == 4
    assert all(close_to(color, FRAME_COLORS[4 + i]) for i, color in enumerate(colors))


def test_a_jobs_chunk_by_index_starts_at_the_job_and_by_number_is_the_tasks_cut_to_it(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, video_file: Path
) -> None:
    task_id = cvat_server.create_video_task(
        "v", video=video_file, chunk_size=4, segment_size=5, overlap=0
    )
    job = cvat_server.jobs(task_id)[1]  # frames 5-9

    def first_frames(data: bytes) -> tuple[int, bool]:
        frames = chunk_frames(data)
        return len(frames), close_to(mean_color(PIL.Image.fromarray(frames[0])), FRAME_COLORS[5])

    assert first_frames(job_chunk(cvat_client, job["id"], index=0)) == (4, True)
    assert first_frames(job_chunk(cvat_client, job["id"], number=1)) == (3, True)
    assert len(chunk_frames(job_chunk(cvat_client, job["id"], number=2))) == 2
    with pytest.raises(ApiException) as refused:
        job_chunk(cvat_client, job["id"], number=0)
    assert refused.value.status == 400
