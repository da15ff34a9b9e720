"""Task data that is not uploaded: files on the server's share, and files behind URLs.

A ``POST /api/tasks/{id}/data`` may name ``server_files`` (paths relative to the share root,
``TestServer(share_dir=...)``) and ``remote_files`` (http(s) URLs) instead of uploading files,
as cvat-sdk's ``ResourceType.SHARE``/``REMOTE`` and ``cvat-cli task create ... share|remote``
do. This module turns them into the same (frame name, file) pairs an upload gives, so the
task is built by :func:`task_data.attach_data` like any other. What it mirrors of CVAT 2.73
(``cvat/apps/engine/task.py``, checked against a real server):

* Paths must be relative and canonical; a bad one is refused at once with a 400 that names
  the problem, exactly as CVAT's ``problem_with_untrusted_path`` words it.
* A directory (with or without a trailing slash) stands for the images anywhere below it;
  other files in it, videos included, are ignored. A directory listed together with a file
  inside it is dropped. Files of an unknown type are skipped.
* A frame's name is its path relative to the share root; a URL's file is named after the
  last segment of the URL's path, unquoted. Two URLs with one name fail the request.
* ``server_files_exclude`` drops images by path, or every image under an entry ending in
  ``/``.
* Missing files, downloads that fail and a request that names no media fail the background
  request with CVAT's message, word for word (paths are this server's).

The server keeps its own copy of the files either way (``copy_data`` changes only the
``storage`` that the task's meta reports), and downloads run while the request is answered
rather than in a background job.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath

import urllib3

from . import media

#: CVAT's timeouts for downloading remote files: (connect, read) seconds.
DOWNLOAD_TIMEOUT = urllib3.Timeout(connect=10, read=60)


def path_problem(untrusted_path: str) -> str | None:
    """What is wrong with a server path, in CVAT's words; None if it is a canonical relative
    path (a trailing slash allowed)."""
    path = PurePath(untrusted_path)
    if not path.parts:
        return "path is empty"
    if path.root or path.drive:
        return "path is not relative"
    if ".." in path.parts:
        return "path contains a '..' segment"
    if path.as_posix() != untrusted_path.removesuffix("/"):
        return "path is not in canonical form"
    return None


def url_problem(url: str) -> str | None:
    """Why a ``remote_files`` entry is refused at once; None for an http(s) URL."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"{url!r}: remote_files entries must be http(s) URLs."
    return None


def _failure(exception: str, message: str) -> media.MediaError:
    """A failed request's message as CVAT's background job reports an exception."""
    return media.MediaError(f"{exception}: {message}\n")


def _no_such_file(path: Path) -> media.MediaError:
    return _failure("FileNotFoundError", f"[Errno 2] No such file or directory: {str(path)!r}")


def _without_listed_parents(paths: list[str]) -> list[str]:
    """CVAT's ``_count_files``: drops an entry that prefixes the folder of the entry sorted
    just before it, in the caller's order otherwise (so ``a/`` and ``a/x.png`` give
    ``a/x.png`` alone)."""
    by_reverse_order = sorted(paths, reverse=True)
    kept = {
        current
        for previous, current in zip(["", *by_reverse_order], by_reverse_order)
        if not os.path.dirname(previous).startswith(current)
    }
    return [path for path in paths if path in kept]


def _images_below(folder: Path) -> list[Path]:
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and media.media_kind(path.name) == "image"
    ]


def _excluded(name: str, exclude: frozenset[str]) -> bool:
    return name in exclude or any(
        f"{parent.as_posix()}/" in exclude for parent in PurePath(name).parents
    )


def share_files(
    share_root: Path,
    server_files: Sequence[str],
    *,
    exclude: Sequence[str] = (),
    order: Callable[[list[tuple[str, Path]]], list[tuple[str, Path]]] = sorted,
    copy_data: bool = False,
) -> list[tuple[str, Path]]:
    """The (name, path) pairs that ``server_files`` stand for, in the order CVAT takes them
    before sorting them with the task's sorting method (``order``): the files named, then the
    images of the folders named.

    Paths were checked with :func:`path_problem`; raises MediaError for what CVAT's background
    job fails on.
    """
    listed = _without_listed_parents([path.rstrip("/") for path in server_files])
    files: list[tuple[str, Path]] = []
    folders: list[Path] = []
    for name in listed:
        path = share_root / name
        # A symbolic link out of the share fails as on CVAT (join_untrusted_path, Python 3.12).
        if not path.resolve().is_relative_to(share_root):
            raise _failure(
                "ValueError",
                f"{str(path.resolve())!r} is not in the subpath of {str(share_root)!r}",
            )
        if path.is_dir():
            folders.append(path)
        elif media.media_kind(name) is not None:
            files.append((name, path))
        # Anything else is skipped, as CVAT skips files of a type it does not know.
    _check_media_mix([media.media_kind(name) for name, _ in files], len(folders))
    # Folders alone are read in the order listed (each one's images sorted here; CVAT takes
    # them in the order the file system lists them); folders beside files are merged, sorted.
    folder_images = [
        (path.relative_to(share_root).as_posix(), path)
        for folder in folders
        for path in sorted(_images_below(folder))
    ]
    if files:
        folder_images.sort()
    elif folders and not folder_images:
        raise _failure("Exception", "No image found")
    excluded = frozenset(exclude)
    images = [
        (name, path)
        for name, path in [*files, *folder_images]
        if media.media_kind(name) != "image" or not _excluded(name, excluded)
    ]
    if not images:
        raise _failure("ValueError", "No media data found")
    _check_present(images, order, copy_data=copy_data)
    return images


def _check_media_mix(kinds: list[str | None], folder_count: int) -> None:
    """CVAT's ``_validate_data``: images and folders mix, a video or an archive goes alone."""
    counts = {
        "image": kinds.count("image"),
        "video": kinds.count("video"),
        "audio": 0,
        "archive": 0,
        "directory": folder_count,
        "pdf": 0,
        "zip": kinds.count("archive"),
    }
    alone = counts["video"] + counts["zip"]
    if alone > 1 or (alone == 1 and counts["image"] + folder_count > 0):
        found = ", ".join(f"{count} {kind}(s)" for kind, count in counts.items())
        # CVAT's message continues a string literal on a new line, indent included.
        raise _failure(
            "ValueError",
            "Only one video, audio, archive, pdf, zip or many image, directory can be used "
            f"simultaneously, {' ' * 12}but {found} found.",
        )


def _check_present(
    files: list[tuple[str, Path]],
    order: Callable[[list[tuple[str, Path]]], list[tuple[str, Path]]],
    *,
    copy_data: bool,
) -> None:
    """Fails the request on a missing file as CVAT does: copying the share's files fails on
    the first one missing; reading them in place fails on the first frame with
    FileNotFoundError, and on a later one while its size is read."""
    missing = [(name, path) for name, path in files if not path.is_file()]
    if not missing:
        return
    if copy_data:
        raise _no_such_file(missing[0][1])
    first_frame = order(list(files))[0]
    if first_frame in missing:
        raise _no_such_file(first_frame[1])
    raise _failure(
        "utils.dataset_manifest.errors.InvalidImageError",
        f"failed to parse image file {missing[0][0]!r}",
    )


def _download_failure(message: str) -> media.MediaError:
    # CVAT turns a failed download into a DRF ValidationError inside its background job.
    return _failure(
        "rest_framework.exceptions.ValidationError",
        f"[ErrorDetail(string={message!r}, code='invalid')]",
    )


def download(urls: Sequence[str], target_dir: Path) -> list[tuple[str, Path]]:
    """Downloads ``remote_files`` into ``target_dir``, as CVAT's ``_download_data`` does:
    redirects are followed, anything but a 200 fails, and each file is named after its URL."""
    target_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    # Like requests, which CVAT uses: no retries, up to 30 redirects followed.
    http = urllib3.PoolManager(
        retries=urllib3.Retry(total=None, connect=0, read=False, status=0, other=0, redirect=30)
    )
    try:
        for url in urls:
            name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
            if name in files:
                raise _download_failure(f"filename collision: {name}")
            try:
                response = http.request("GET", url, preload_content=False, timeout=DOWNLOAD_TIMEOUT)
            except urllib3.exceptions.HTTPError as e:
                raise _download_failure(
                    f"Failed to download {url}: {_requests_error_name(e)}: {e}"
                ) from e
            try:
                if response.status != 200:
                    final_url = url
                    for redirect in response.retries.history if response.retries else ():
                        final_url = urllib.parse.urljoin(final_url, redirect.redirect_location)
                    message = f"Failed to download {final_url}"
                    if final_url != url:
                        message += f" (redirected from {url})"
                    raise _download_failure(f"{message}; HTTP error {response.status}")
                path = target_dir / name
                if not name:
                    raise _failure(
                        "IsADirectoryError", f"[Errno 21] Is a directory: '{target_dir}/'"
                    )
                with open(path, "wb") as output:
                    shutil.copyfileobj(response, output)
            finally:
                response.release_conn()
            files[name] = path
    finally:
        http.clear()
    return list(files.items())


def _requests_error_name(error: urllib3.exceptions.HTTPError) -> str:
    """The requests exception CVAT would have seen for a urllib3 error."""
    reason = getattr(error, "reason", error)
    # urllib3 makes a refused connection a kind of connect timeout; requests does not.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return "ConnectionError"
    if isinstance(reason, urllib3.exceptions.ConnectTimeoutError):
        return "ConnectTimeout"
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return "ReadTimeout"
    return "ConnectionError"


def parse_sources(body: dict, errors: dict) -> tuple[list[str], list[str], list[str]]:
    """``server_files``, ``server_files_exclude`` and ``remote_files`` of a data request;
    problems go into ``errors`` as CVAT's serializer words them (per entry, by position)."""

    def strings(key: str) -> list[str]:
        value = body.get(key) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            errors[key] = ['Expected a list of items but got type "str".']
            return []
        return value

    def problem(path: str) -> str | None:
        return path_problem(path) if path else "This field may not be blank."

    server_files = strings("server_files")
    problems = [problem(path) for path in server_files]
    if any(problems):
        errors["server_files"] = [{"file": [p]} if p else {} for p in problems]
    exclude = strings("server_files_exclude")
    exclude_problems = {str(i): [p] for i, path in enumerate(exclude) if (p := problem(path))}
    if exclude_problems:
        errors["server_files_exclude"] = exclude_problems
    remote_files = strings("remote_files")
    url_problems = [problem for url in remote_files if (problem := url_problem(url))]
    if url_problems:
        errors["remote_files"] = url_problems
    return server_files, exclude, remote_files
