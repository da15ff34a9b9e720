"""Tasks made from the server's file share (server_files) and from URLs (remote_files).

What each test expects was seen on a real CVAT 2.73 given the same files and requests: frame
names, order and sizes, the meta's ``storage``, the 400s for bad paths, and the messages of
background requests that fail.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import cvat_sdk
import PIL.Image
import pytest
import urllib3
from cvat_aa_testing import TestServer
from cvat_sdk.core.exceptions import BackgroundRequestException
from cvat_sdk.core.proxies.tasks import ResourceType
from server_test_data import make_video

LABELS = [{"name": "thing"}]


def make_image(path: Path, size: tuple[int, int], color=(200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def share(cvat_server: TestServer) -> Path:
    """The share with a folder ``photos`` of images (nested, mixed case) and a text file."""
    root = cvat_server.share_dir
    for i, name in enumerate(["img10.png", "img2.png", "img1.jpg", "Img3.png", "sub/b.png"]):
        make_image(root / "photos" / name, (40 + i, 30 + i), (i * 40, 10, 10))
    (root / "photos" / "notes.txt").write_text("not media")
    return root


def create(client: cvat_sdk.Client, resource_type: ResourceType, resources, **params):
    return client.tasks.create_from_data(
        {"name": "from the share", "labels": LABELS},
        resource_type=resource_type,
        resources=resources,
        data_params=params,
    )


def frames(task) -> list[tuple[str, int, int]]:
    return [(f.name, f.width, f.height) for f in task.get_meta().frames]


def post_data(server: TestServer, client: cvat_sdk.Client, body: dict) -> urllib3.BaseHTTPResponse:
    """POSTs ``body`` as the data of a new task, and answers CVAT's response."""
    task_id = client.tasks.create({"name": "empty", "labels": LABELS}).id
    return urllib3.request(
        "POST",
        f"{server.url}/api/tasks/{task_id}/data/",
        json=body,
        headers=urllib3.make_headers(basic_auth=f"{server.username}:{server.password}"),
    )


def test_a_folder_gives_its_images_named_by_path_in_lexicographical_order(
    cvat_client: cvat_sdk.Client, share: Path
) -> None:
    task = create(cvat_client, ResourceType.SHARE, ["photos/"])
    assert frames(task) == [
        ("photos/Img3.png", 43, 33),
        ("photos/img1.jpg", 42, 32),
        ("photos/img10.png", 40, 30),
        ("photos/img2.png", 41, 31),
        ("photos/sub/b.png", 44, 34),
    ]


def test_a_folder_without_trailing_slash_is_a_folder_too(
    cvat_client: cvat_sdk.Client, share: Path
) -> None:
    task = create(cvat_client, ResourceType.SHARE, ["photos/sub"])
    assert frames(task) == [("photos/sub/b.png", 44, 34)]


def test_natural_sorting_orders_numbers_by_value_ignoring_case(
    cvat_client: cvat_sdk.Client, share: Path
) -> None:
    files = ["photos/img10.png", "photos/img2.png", "photos/img1.jpg", "photos/Img3.png"]
    task = create(cvat_client, ResourceType.SHARE, files, sorting_method="natural")
    assert [name for name, _, _ in frames(task)] == [
        "photos/img1.jpg",
        "photos/img2.png",
        "photos/Img3.png",
        "photos/img10.png",
    ]


def test_predefined_sorting_keeps_listed_files_first_then_the_folders_images(
    cvat_client: cvat_sdk.Client, share: Path
) -> None:
    files = ["photos/sub/", "photos/img2.png", "photos/img10.png"]
    task = create(cvat_client, ResourceType.SHARE, files, sorting_method="predefined")
    assert [name for name, _, _ in frames(task)] == [
        "photos/img2.png",
        "photos/img10.png",
        "photos/sub/b.png",
    ]


def test_a_folder_listed_with_a_file_inside_it_gives_that_file_alone(
    cvat_client: cvat_sdk.Client, share: Path
) -> None:
    task = create(cvat_client, ResourceType.SHARE, ["photos/", "photos/img2.png"])
    assert [name for name, _, _ in frames(task)] == ["photos/img2.png"]


def test_excluded_files_and_folders_are_left_out(cvat_client: cvat_sdk.Client, share: Path) -> None:
    task = create(
        cvat_client,
        ResourceType.SHARE,
        ["photos/"],
        server_files_exclude=["photos/sub/", "photos/img2.png"],
    )
    assert [name for name, _, _ in frames(task)] == [
        "photos/Img3.png",
        "photos/img1.jpg",
        "photos/img10.png",
    ]


def test_frame_range_and_step_select_from_the_sorted_files(
    cvat_client: cvat_sdk.Client, share: Path
) -> None:
    task = create(
        cvat_client, ResourceType.SHARE, ["photos/"], start_frame=1, stop_frame=4, frame_step=2
    )
    assert [name for name, _, _ in frames(task)] == ["photos/img1.jpg", "photos/img2.png"]
    meta = task.get_meta()
    assert (meta.start_frame, meta.stop_frame, meta.frame_filter) == (1, 3, "step=2")


def test_original_frame_is_the_share_file(cvat_client: cvat_sdk.Client, share: Path) -> None:
    task = create(cvat_client, ResourceType.SHARE, ["photos/img1.jpg"])
    assert task.get_frame(0, quality="original").read() == (share / "photos/img1.jpg").read_bytes()


def test_meta_reports_share_storage_unless_the_data_is_copied(
    cvat_client: cvat_sdk.Client, share: Path
) -> None:
    in_place = create(cvat_client, ResourceType.SHARE, ["photos/img1.jpg"], use_cache=True)
    copied = create(cvat_client, ResourceType.SHARE, ["photos/img1.jpg"], copy_data=True)
    assert (in_place.get_meta().storage, copied.get_meta().storage) == ("share", "local")


def test_a_video_on_the_share_is_named_by_its_path(
    cvat_client: cvat_sdk.Client, cvat_server: TestServer
) -> None:
    pytest.importorskip("av")
    (cvat_server.share_dir / "clips").mkdir()
    make_video(cvat_server.share_dir / "clips" / "clip.mp4", 12)
    task = create(cvat_client, ResourceType.SHARE, ["clips/clip.mp4"])
    assert frames(task) == [("clips/clip.mp4", 64, 48)]
    assert (task.size, task.data_chunk_size, task.data_original_chunk_type, task.overlap) == (
        12,
        36,
        "video",
        0,
    )


def test_the_share_root_can_be_any_folder(tmp_path: Path) -> None:
    make_image(tmp_path / "share" / "a.png", (7, 5))
    with TestServer(share_dir=tmp_path / "share") as server, server.make_client() as client:
        assert server.share_dir == tmp_path / "share"
        assert frames(create(client, ResourceType.SHARE, ["a.png"])) == [("a.png", 7, 5)]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../etc/passwd", "path contains a '..' segment"),
        ("photos/../photos/img1.jpg", "path contains a '..' segment"),
        ("/etc/passwd", "path is not relative"),
        ("photos//img1.jpg", "path is not in canonical form"),
        ("./photos/img1.jpg", "path is not in canonical form"),
        ("", "This field may not be blank."),
    ],
)
def test_a_path_that_is_not_canonical_and_inside_the_share_is_refused(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, share: Path, path: str, problem: str
) -> None:
    response = post_data(cvat_server, cvat_client, {"image_quality": 70, "server_files": [path]})
    assert (response.status, response.json()) == (400, {"server_files": [{"file": [problem]}]})


def test_an_excluded_path_outside_the_share_is_refused(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, share: Path
) -> None:
    response = post_data(
        cvat_server, cvat_client, {"server_files": ["photos/"], "server_files_exclude": ["../x"]}
    )
    assert (response.status, response.json()) == (
        400,
        {"server_files_exclude": {"0": ["path contains a '..' segment"]}},
    )


def test_a_missing_file_fails_the_request_as_on_cvat(
    cvat_client: cvat_sdk.Client, cvat_server: TestServer, share: Path
) -> None:
    with pytest.raises(BackgroundRequestException) as raised:
        create(cvat_client, ResourceType.SHARE, ["photos/nope.png"])
    missing = cvat_server.share_dir.resolve() / "photos/nope.png"
    assert str(raised.value) == (
        f"FileNotFoundError: [Errno 2] No such file or directory: '{missing}'\n"
    )


def test_a_missing_file_after_the_first_frame_fails_while_reading_its_size(
    cvat_client: cvat_sdk.Client, share: Path
) -> None:
    with pytest.raises(BackgroundRequestException) as raised:
        create(cvat_client, ResourceType.SHARE, ["photos/img1.jpg", "photos/nope.png"])
    assert str(raised.value) == (
        "utils.dataset_manifest.errors.InvalidImageError: "
        "failed to parse image file 'photos/nope.png'\n"
    )


@pytest.mark.parametrize(
    ("server_files", "message"),
    [
        (["photos/notes.txt"], "ValueError: No media data found\n"),
        (["missing-folder/"], "ValueError: No media data found\n"),
        (["clips/"], "Exception: No image found\n"),
    ],
)
def test_files_without_media_fail_the_request_as_on_cvat(
    cvat_client: cvat_sdk.Client, share: Path, server_files: list[str], message: str
) -> None:
    (share / "clips").mkdir()
    (share / "clips" / "clip.mp4").write_bytes(b"a folder's videos are not its images")
    with pytest.raises(BackgroundRequestException, match="^" + message + "$"):
        create(cvat_client, ResourceType.SHARE, server_files)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """An HTTP server of images, on loopback, at the URL this yields; /redirect/X redirects to
    /X."""
    root = tmp_path / "web"
    make_image(root / "a.png", (21, 11))
    make_image(root / "sub" / "b.jpg", (22, 12))
    make_image(root / "sub" / "a.png", (23, 13))
    make_image(root / "with space.png", (24, 14))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/redirect"))
                self.end_headers()
                return
            self.path = self.path.partition("?")[0]
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_remote_files_are_named_after_their_urls(cvat_client: cvat_sdk.Client, web: str) -> None:
    urls = [f"{web}/sub/b.jpg", f"{web}/with%20space.png", f"{web}/redirect/a.png?size=big"]
    task = create(cvat_client, ResourceType.REMOTE, urls)
    assert frames(task) == [("a.png", 21, 11), ("b.jpg", 22, 12), ("with space.png", 24, 14)]
    assert task.get_meta().storage == "local"


def test_a_remote_file_that_is_not_found_fails_the_request(
    cvat_client: cvat_sdk.Client, web: str
) -> None:
    with pytest.raises(BackgroundRequestException) as raised:
        create(cvat_client, ResourceType.REMOTE, [f"{web}/redirect/missing.png"])
    detail = f"Failed to download {web}/missing.png (redirected from {web}/redirect/missing.png)"
    assert str(raised.value) == (
        "rest_framework.exceptions.ValidationError: "
        f"[ErrorDetail(string='{detail}; HTTP error 404', code='invalid')]\n"
    )


def test_an_unreachable_url_fails_the_request(cvat_client: cvat_sdk.Client) -> None:
    with pytest.raises(BackgroundRequestException) as raised:
        create(cvat_client, ResourceType.REMOTE, ["http://127.0.0.1:9/x.png"])
    assert str(raised.value).startswith(
        "rest_framework.exceptions.ValidationError: [ErrorDetail(string='Failed to download "
        "http://127.0.0.1:9/x.png: ConnectionError: HTTPConnectionPool(host=\\'127.0.0.1\\', "
        "port=9): Max retries exceeded with url: /x.png"
    )


def test_two_urls_with_one_file_name_fail_the_request(
    cvat_client: cvat_sdk.Client, web: str
) -> None:
    with pytest.raises(BackgroundRequestException, match="filename collision: a.png"):
        create(cvat_client, ResourceType.REMOTE, [f"{web}/a.png", f"{web}/sub/a.png"])


def test_a_url_that_is_not_http_is_refused(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    response = post_data(cvat_server, cvat_client, {"remote_files": ["ftp://127.0.0.1/x.png"]})
    assert (response.status, response.json()) == (
        400,
        {"remote_files": ["'ftp://127.0.0.1/x.png': remote_files entries must be http(s) URLs."]},
    )


def test_cvat_cli_creates_tasks_from_the_share_and_from_urls(
    cvat_client: cvat_sdk.Client, cvat_cli, share: Path, web: str
) -> None:
    task_ids = [
        int(
            cvat_cli(
                "task",
                "create",
                name,
                resource_type,
                *resources,
                "--labels",
                '[{"name": "thing"}]',
                "--completion_verification_period",
                "0.1",
            ).stdout.split()[-1]
        )
        for name, resource_type, resources in [
            ("shared", "share", ["photos/sub/", "photos/img1.jpg"]),
            ("remote", "remote", [f"{web}/a.png"]),
        ]
    ]
    assert [frames(cvat_client.tasks.retrieve(task_id)) for task_id in task_ids] == [
        [("photos/img1.jpg", 42, 32), ("photos/sub/b.png", 44, 34)],
        [("a.png", 21, 11)],
    ]


def test_a_link_out_of_the_share_fails_the_request(
    cvat_client: cvat_sdk.Client, cvat_server: TestServer, tmp_path: Path
) -> None:
    outside = make_image(tmp_path / "outside.png", (5, 5))
    (cvat_server.share_dir / "link.png").symlink_to(outside)
    with pytest.raises(BackgroundRequestException) as raised:
        create(cvat_client, ResourceType.SHARE, ["link.png"])
    share = cvat_server.share_dir.resolve()
    assert str(raised.value) == (
        f"ValueError: '{outside.resolve()}' is not in the subpath of '{share}'\n"
    )
