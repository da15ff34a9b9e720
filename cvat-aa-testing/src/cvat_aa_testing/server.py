"""The test server: an HTTP server thread around :class:`app.CvatApi`, and a Python API.

::

    from cvat_aa_testing import TestServer

    with TestServer() as server:
        task_id = server.create_task("cats", labels=[{"name": "cat"}], images=[...])
        with server.make_client() as client:
            client.tasks.retrieve(task_id)

The server listens on loopback (an ephemeral port by default) and keeps its SQLite database
and media files in a data directory: a temporary one, removed on stop, unless you pass
``data_dir``. Start and stop take a few milliseconds, so every test can have its own server.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import PIL.Image
from werkzeug.serving import (
    LISTEN_QUEUE,
    BaseWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    make_server,
    select_address_family,
)

from . import auth, native_functions, permissions, representations, task_data
from .app import CvatApi
from .endpoints.functions import parse_ar_params, submit_request
from .faults import FaultInjector, RequestLog
from .job_annotations import change_task_annotations, task_annotations
from .nuclio import NuclioSettings
from .storage import Storage
from .validation import check_annotations, parse_label_specs, parse_labeled_data

if TYPE_CHECKING:
    import cvat_sdk

logger = logging.getLogger(__name__)

#: A file, a PIL image, or a (frame name, file) pair: a name may keep folders (``a/cat.jpg``).
ImageSource = str | Path | PIL.Image.Image | tuple[str, str | Path]
_STOP_GRACE_SECONDS = 5.0


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``.

    Bound here rather than by werkzeug, which answers a port in use by printing to stderr and
    calling ``sys.exit``: a caller gets the ``OSError`` (``errno.EADDRINUSE``) instead.
    """
    family = select_address_family(host, port)
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(get_sockaddr(host, port, family))
        listening.listen(LISTEN_QUEUE)
    except BaseException:
        listening.close()
        raise
    return listening


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's handler, logging through ``logging`` at debug level instead of stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), message % args)


class _TrackingApp:
    """Counts requests in flight, so stop() can let them finish."""

    def __init__(self, app: CvatApi) -> None:
        self.app = app
        self._lock = threading.Condition()
        self._in_flight = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            self._in_flight += 1
        try:
            # A generator, so the count also covers sending the body (slow under a bandwidth cap).
            yield from self.app(environ, start_response)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)


class TestServer:
    """A CVAT-compatible HTTP server for tests, on loopback.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). A superuser
    ``username``/``password`` exists from the start; ``password`` is random unless given.
    ``version`` is the CVAT version ``/api/server/about`` claims: by default one the installed
    cvat-sdk supports; an older one (``"2.73.0"``) makes cvat-sdk warn as it does with such a
    server. ``share_dir`` is the server's file share, the folder that tasks' ``server_files``
    are relative to (CVAT's ``SHARE_ROOT``); by default ``share/`` in the data directory.

    The ``nuclio_*`` options are CVAT's ``NUCLIO`` settings for its lambda manager
    (``/api/lambda/...``, see :mod:`cvat_aa_testing.nuclio`): ``nuclio_url`` is the Nuclio
    dashboard (``http://127.0.0.1:8070``; without one, the lambda endpoints answer 503 as CVAT
    does when it cannot reach Nuclio), ``nuclio_invoke_method`` is ``"dashboard"`` (through
    the dashboard's ``/api/function_invocations``) or ``"direct"`` (to each function's port on
    localhost), ``nuclio_namespace`` the function namespace and ``nuclio_timeout`` the
    timeout of every call to Nuclio, in seconds.

    Native functions and the queue their agents serve (``/api/functions/...``, see
    :mod:`cvat_aa_testing.native_functions`) need no options: ``agent_lease_seconds`` is how
    long an agent holds an annotation request without an update before it goes back to the
    queue, ``agent_interactive_timeout`` how long ``POST /api/functions/{id}/run`` waits for
    an agent's result. The lease may also be changed while the server runs.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | Path | None = None,
        username: str = "admin",
        password: str | None = None,
        version: str = representations.SERVER_VERSION,
        share_dir: str | Path | None = None,
        nuclio_url: str | None = None,
        nuclio_invoke_method: str = "dashboard",
        nuclio_namespace: str = "nuclio",
        nuclio_timeout: float = 120,
        agent_lease_seconds: float = native_functions.DEFAULT_LEASE_SECONDS,
        agent_interactive_timeout: float = native_functions.DEFAULT_INTERACTIVE_TIMEOUT,
    ) -> None:
        self.nuclio = NuclioSettings(
            url=nuclio_url,
            invoke_method=nuclio_invoke_method,
            namespace=nuclio_namespace,
            timeout=nuclio_timeout,
            cvat_version=version,
        )
        self._agent_lease_seconds = agent_lease_seconds
        self.agent_interactive_timeout = agent_interactive_timeout
        self.username = username
        self.version = version
        self.password = password if password is not None else secrets.token_urlsafe(12)
        self.faults = FaultInjector()
        self.request_log = RequestLog()
        self._requested_host = host
        self._requested_port = port
        self._owns_data_dir = data_dir is None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._share_dir = Path(share_dir) if share_dir is not None else None
        self._http: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._app: _TrackingApp | None = None
        self._storage: Storage | None = None

    # lifecycle

    def start(self) -> Self:
        if self._http is not None:
            raise RuntimeError("The test server is already running.")
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="cvat-aa-server-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._storage = Storage(self._data_dir / "cvat.sqlite3")
        self._ensure_user(self.username, self.password, is_superuser=True)
        self.share_dir.mkdir(parents=True, exist_ok=True)
        api = CvatApi(
            self._storage,
            self.media_root,
            self.faults,
            self.request_log,
            self.version,
            self.share_dir.resolve(),
            self.nuclio,
            native_functions.FunctionQueues(
                self._agent_lease_seconds, self.agent_interactive_timeout
            ),
        )
        self._app = _TrackingApp(api)
        listening = _listen(self._requested_host, self._requested_port)
        try:
            self._http = make_server(
                self._requested_host,
                self._requested_port,
                self._app,
                threaded=True,
                request_handler=_RequestHandler,
                fd=listening.fileno(),
            )
        finally:
            listening.close()  # werkzeug serves on a duplicate of it
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"cvat-aa test server :{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("test server listening at %s", self.url)
        return self

    def stop(self) -> None:
        """Stops serving, lets requests in flight finish, and removes a temporary data dir."""
        if self._http is None:
            return
        self._app.app.context.lambda_queue.shutdown()
        self._app.app.context.functions.shutdown()
        self._http.shutdown()
        self._thread.join()
        if not self._app.wait_idle(_STOP_GRACE_SECONDS):
            logger.warning("test server stopped with requests still running")
        self._http.server_close()
        self._http = None
        self._thread = None
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def agent_lease_seconds(self) -> float:
        """How long an agent holds an AR without an update; leases given from now on last
        this long."""
        return self._agent_lease_seconds

    @agent_lease_seconds.setter
    def agent_lease_seconds(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("agent_lease_seconds must be a positive number of seconds")
        self._agent_lease_seconds = seconds
        if self._app is not None:
            self._app.app.context.functions.lease_seconds = seconds

    # where it is

    @property
    def running(self) -> bool:
        return self._http is not None

    def _require_running(self) -> BaseWSGIServer:
        if self._http is None:
            raise RuntimeError("The test server is not running; start it first (or use `with`).")
        return self._http

    @property
    def host(self) -> str:
        """The server's URL without the port, as ``cvat-cli --server-host`` takes it."""
        return f"http://{self._require_running().server_address[0]}"

    @property
    def port(self) -> int:
        return self._require_running().server_address[1]

    @property
    def url(self) -> str:
        """``http://host:port``, as ``cvat_sdk.make_client`` takes it."""
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise RuntimeError("The test server has no data directory before it starts.")
        return self._data_dir

    @property
    def media_root(self) -> Path:
        return self.data_dir / "media"

    @property
    def share_dir(self) -> Path:
        """The file share: put files here to make tasks of them with ``server_files``."""
        return self._share_dir if self._share_dir is not None else self.data_dir / "share"

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise RuntimeError("The test server is not running; start it first (or use `with`).")
        return self._storage

    def cli_args(self) -> list[str]:
        """cvat-cli's connection arguments for this server and its superuser."""
        return [
            "--server-host",
            self.host,
            "--server-port",
            str(self.port),
            "--auth",
            f"{self.username}:{self.password}",
        ]

    # users and tokens

    def _ensure_user(self, username: str, password: str, *, is_superuser: bool) -> int:
        with self.storage.write() as tx:
            user = tx.user_by_name(username)
            if user is None:
                return tx.create_user(
                    username, auth.hash_password(password), is_superuser=is_superuser
                )
            tx.set_password_hash(user["id"], auth.hash_password(password))
            return user["id"]

    def create_user(
        self,
        username: str,
        password: str,
        *,
        is_superuser: bool = False,
        privilege: str | None = "user",
        email: str = "",
    ) -> int:
        """Adds a user who can log in with ``password``; returns the user's id.

        ``privilege`` is the user's CVAT group: "user" (the default for new users), "worker"
        (may change only what they are assigned, may create nothing) or None (may only look
        at what they are assigned). See :mod:`cvat_aa_testing.permissions`.
        """
        if privilege not in permissions.PRIVILEGES:
            raise ValueError(f"privilege must be one of {permissions.PRIVILEGES}.")
        with self.storage.write() as tx:
            if tx.user_by_name(username) is not None:
                raise ValueError(f"A user named {username!r} already exists.")
            return tx.create_user(
                username,
                auth.hash_password(password),
                is_superuser=is_superuser,
                privilege=privilege,
                email=email,
            )

    # organizations and assignments

    def create_organization(self, slug: str, *, owner: str | None = None, name: str = "") -> int:
        """Creates an organization owned by ``owner`` (the superuser by default); its id."""
        with self.storage.write() as tx:
            if tx.organization_by_slug(slug) is not None:
                raise ValueError(f"An organization {slug!r} already exists.")
            return tx.create_organization(slug, self._user_id(tx, owner), name)

    def add_member(self, organization: str, username: str, role: str = "worker") -> None:
        """Makes a user a member of an organization with a role: worker, supervisor,
        maintainer or owner."""
        if role not in permissions.ROLES:
            raise ValueError(f"role must be one of {permissions.ROLES}.")
        with self.storage.write() as tx:
            org = self._organization(tx, organization)
            user_id = self._user_id(tx, username)
            membership = tx.membership_of(org["id"], user_id)
            if membership is None:
                tx.add_membership(org["id"], user_id, role)
            else:
                tx.set_role(membership["id"], role)

    def assign(
        self,
        *,
        username: str | None,
        task_id: int | None = None,
        job_id: int | None = None,
        project_id: int | None = None,
    ) -> None:
        """Assigns a task, a job or a project to a user (None: to nobody)."""
        targets = [
            (t, i)
            for t, i in (("tasks", task_id), ("jobs", job_id), ("projects", project_id))
            if i is not None
        ]
        if len(targets) != 1:
            raise ValueError("Give exactly one of task_id, job_id and project_id.")
        ((table, row_id),) = targets
        with self.storage.write() as tx:
            user_id = None if username is None else self._user_id(tx, username)
            tx.set_assignee(table, row_id, user_id)

    def _organization(self, tx: Any, slug: str | None) -> dict[str, Any] | None:
        if slug is None:
            return None
        org = tx.organization_by_slug(slug)
        if org is None:
            raise ValueError(f"There is no organization {slug!r}.")
        return org

    def create_access_token(self, username: str | None = None, *, name: str = "test") -> str:
        """A new personal access token of ``username`` (the superuser by default).

        Clients send it as ``Authorization: Bearer <token>``: ``cvat_sdk.make_client(...,
        access_token=token)``, or cvat-cli with the ``CVAT_ACCESS_TOKEN`` environment variable.
        """
        username = username or self.username
        token = auth.new_access_token()
        with self.storage.write() as tx:
            user = tx.user_by_name(username)
            if user is None:
                raise ValueError(f"There is no user named {username!r}.")
            tx.add_credential(auth.digest(token), "pat", user["id"], name=name)
        return token

    def _user_id(self, tx: Any, username: str | None) -> int:
        user = tx.user_by_name(username or self.username)
        if user is None:
            raise ValueError(f"There is no user named {username!r}.")
        return user["id"]

    # clients

    def make_client(
        self,
        *,
        access_token: str | None = None,
        credentials: tuple[str, str] | None = None,
        cache_dir: str | Path | None = None,
        status_check_period: float = 0.1,
    ) -> cvat_sdk.Client:
        """A cvat-sdk client logged in as the superuser (or with ``access_token``, or as the
        user of ``credentials``, a ``(username, password)`` pair).

        ``cache_dir`` sets ``Config.cache_dir``; pass a temporary directory so that datasets
        and auto-annotation do not write to the user's cache. Close the client when done.
        """
        from cvat_sdk import Client, Config

        config = Config(status_check_period=status_check_period)
        if cache_dir is not None:
            config.cache_dir = Path(cache_dir)
        client = Client(self.url, config=config)
        if access_token is not None:
            from cvat_sdk.core.client import AccessTokenCredentials

            client.login(AccessTokenCredentials(access_token))
        else:
            client.login(credentials or (self.username, self.password))
        return client

    # projects and tasks, without HTTP

    def create_project(
        self,
        name: str,
        *,
        labels: Sequence[dict[str, Any]] = (),
        organization: str | None = None,
        owner: str | None = None,
        assignee: str | None = None,
    ) -> int:
        """Creates a project with labels given as in CVAT's API (``{"name": ..., "type": ...}``).

        It belongs to ``organization`` (a slug; none by default) and ``owner`` (the superuser
        by default), and is assigned to ``assignee``.
        """
        specs = parse_label_specs(list(labels))
        with self.storage.write() as tx:
            org = self._organization(tx, organization)
            project_id = tx.create_project(
                name, self._user_id(tx, owner), organization_id=org["id"] if org else None
            )
            if assignee is not None:
                tx.set_assignee("projects", project_id, self._user_id(tx, assignee))
            task_data.create_labels(tx, specs, project_id=project_id)
        return project_id

    def create_task(
        self,
        name: str,
        *,
        images: Iterable[ImageSource],
        labels: Sequence[dict[str, Any]] = (),
        project_id: int | None = None,
        chunk_size: int | None = None,
        segment_size: int | None = None,
        overlap: int | None = None,
        image_quality: int = 70,
        sorting_method: str = "predefined",
        deleted_frames: Iterable[int] = (),
        organization: str | None = None,
        owner: str | None = None,
        assignee: str | None = None,
    ) -> int:
        """Creates an image task in one call and returns its id.

        ``images`` are file paths, ``(frame name, path)`` pairs or PIL images (saved as PNG
        named ``frame_000000.png``...); a path's frame name is its file name. Frames keep the
        given order unless ``sorting_method`` says otherwise. ``labels`` take
        CVAT's TaskWriteRequest form, e.g. ``[{"name": "cat", "type": "rectangle"}]``.
        The task belongs to ``organization`` (a slug; the project's if it is in a project) and
        ``owner`` (the superuser by default), and is assigned to ``assignee``.
        """
        with tempfile.TemporaryDirectory(prefix="cvat-aa-images-") as staging:
            files = []
            for index, image in enumerate(images):
                if isinstance(image, PIL.Image.Image):
                    path = Path(staging) / f"frame_{index:06d}.png"
                    image.save(path)
                    files.append((path.name, path))
                elif isinstance(image, tuple):
                    frame_name, path = image
                    files.append((frame_name, Path(path)))
                else:
                    path = Path(image)
                    files.append((path.name, path))
            params = task_data.DataParams(
                image_quality=image_quality,
                chunk_size=chunk_size,
                sorting_method=sorting_method,
                upload_file_order=tuple(name for name, _ in files),
            )
            return self._create_task_with_data(
                name,
                files,
                params,
                labels,
                project_id,
                segment_size,
                overlap,
                deleted_frames,
                ownership=(organization, owner, assignee),
            )

    def create_video_task(
        self,
        name: str,
        *,
        video: str | Path,
        labels: Sequence[dict[str, Any]] = (),
        project_id: int | None = None,
        chunk_size: int | None = None,
        segment_size: int | None = None,
        overlap: int | None = None,
        image_quality: int = 70,
        start_frame: int = 0,
        stop_frame: int | None = None,
        frame_step: int = 1,
        use_zip_chunks: bool = False,
        deleted_frames: Iterable[int] = (),
        organization: str | None = None,
        owner: str | None = None,
        assignee: str | None = None,
    ) -> int:
        """Creates a task from a video file (decoded with PyAV) and returns its id.

        ``organization``, ``owner`` and ``assignee`` are as in :meth:`create_task`.
        """
        video = Path(video)
        params = task_data.DataParams(
            image_quality=image_quality,
            chunk_size=chunk_size,
            start_frame=start_frame,
            stop_frame=stop_frame,
            frame_step=frame_step,
            use_zip_chunks=use_zip_chunks,
        )
        return self._create_task_with_data(
            name,
            [(video.name, video)],
            params,
            labels,
            project_id,
            segment_size,
            overlap,
            deleted_frames,
            ownership=(organization, owner, assignee),
        )

    def _create_task_with_data(
        self,
        name: str,
        files: list[tuple[str, Path]],
        params: task_data.DataParams,
        labels: Sequence[dict[str, Any]],
        project_id: int | None,
        segment_size: int | None,
        overlap: int | None,
        deleted_frames: Iterable[int],
        *,
        ownership: tuple[str | None, str | None, str | None],
    ) -> int:
        organization, owner, assignee = ownership
        if project_id is not None and labels:
            raise ValueError("A task inside a project uses the project's labels; pass no labels.")
        specs = parse_label_specs(list(labels))
        task_id = None
        try:
            with self.storage.write() as tx:
                org = self._organization(tx, organization)
                if org is None and project_id is not None:
                    org = tx.organization(tx.project(project_id)["organization_id"] or 0)
                task_id = tx.create_task(
                    {
                        "name": name,
                        "project_id": project_id,
                        "organization_id": org["id"] if org else None,
                        "owner_id": self._user_id(tx, owner),
                        "segment_size": segment_size or 0,
                        "overlap": overlap,
                    }
                )
                if assignee is not None:
                    tx.set_assignee("tasks", task_id, self._user_id(tx, assignee))
                task_data.create_labels(tx, specs, task_id=task_id)
                task_data.attach_data(tx, self.media_root, task_id, files, params)
                deleted = sorted(set(deleted_frames))
                size = tx.task(task_id)["size"]
                if any(not 0 <= frame < size for frame in deleted):
                    raise ValueError(f"deleted_frames must be frame numbers from 0 to {size - 1}.")
                tx.set_deleted_frames(task_id, deleted)
        except BaseException:
            if task_id is not None:
                shutil.rmtree(
                    task_data.task_media_dir(self.media_root, task_id), ignore_errors=True
                )
            raise
        return task_id

    # inspection

    def task(self, task_id: int) -> dict[str, Any]:
        """The task as ``GET /api/tasks/{id}`` returns it."""
        with self.storage.read() as tx:
            task = tx.task(task_id)
            if task is None:
                raise KeyError(f"There is no task {task_id}.")
            return representations.task(tx, task, f"{self.url}/")

    def task_ids(self) -> list[int]:
        with self.storage.read() as tx:
            return sorted(task["id"] for task in tx.tasks())

    def labels(self, task_id: int) -> list[dict[str, Any]]:
        """The task's labels as ``GET /api/labels?task_id=`` returns them."""
        with self.storage.read() as tx:
            task = tx.task(task_id)
            if task is None:
                raise KeyError(f"There is no task {task_id}.")
            return [representations.label(label) for label in tx.task_labels(task)]

    def label_id(self, task_id: int, name: str) -> int:
        """The id of the task's label called ``name``."""
        for label in self.labels(task_id):
            if label["name"] == name:
                return label["id"]
        raise KeyError(f"Task {task_id} has no label named {name!r}.")

    def jobs(self, task_id: int) -> list[dict[str, Any]]:
        """The task's jobs in frame order (``GET /api/jobs`` lists them newest first)."""
        with self.storage.read() as tx:
            task = tx.task(task_id)
            if task is None:
                raise KeyError(f"There is no task {task_id}.")
            return [representations.job(tx, job, task, f"{self.url}/") for job in tx.jobs(task_id)]

    def annotations(self, task_id: int) -> dict[str, Any]:
        """The task's annotations as ``GET /api/tasks/{id}/annotations/`` returns them."""
        with self.storage.read() as tx:
            task = tx.task(task_id)
            if task is None:
                raise KeyError(f"There is no task {task_id}.")
            return task_annotations(tx, task, tx.task_labels(task))

    def set_annotations(self, task_id: int, data: dict[str, Any]) -> None:
        """Replaces the task's annotations, with the checks of ``PUT .../annotations/``."""
        parsed = parse_labeled_data(data)
        with self.storage.write() as tx:
            task = tx.task(task_id)
            if task is None:
                raise KeyError(f"There is no task {task_id}.")
            check_annotations(parsed, tx.task_labels(task), range(task["size"]))
            # New ids for all, as a PATCH create gives them.
            change_task_annotations(tx, task, "clear", None)
            change_task_annotations(tx, task, "create", parsed)

    # native functions and their annotation requests, as CVAT's UI makes them

    def submit_function_request(
        self,
        function_id: int,
        task_id: int,
        *,
        type: str = "annotate_task",
        username: str | None = None,
        **params: Any,
    ) -> str:
        """Queues an annotation request (AR) for a native function's agents; returns its id.

        It is checked and queued as ``POST /api/functions/requests/`` (``type``
        "annotate_task", a batch AR) or ``POST /api/functions/{id}/run`` (the interactive
        types: "annotate_frame", "interact", "init_tracking", "track") would, on behalf of
        ``username`` (the superuser by default), but without waiting for the result. ``params``
        are the rest of the body: ``job``, ``frame``, ``threshold``, ``mapping``, ``cleanup``,
        ``conv_mask_to_poly``, ``roi``, ``pos_points``... Wait with
        :meth:`wait_function_request`.
        """
        self._require_running()
        category = (
            native_functions.BATCH
            if type in native_functions.BATCH_TYPES
            else native_functions.INTERACTIVE
        )
        parsed = parse_ar_params({"task": task_id, "type": type, **params}, with_function=False)
        with self.storage.read() as tx:
            user = tx.user(self._user_id(tx, username))
        identity = auth.Identity(user, "basic")
        return submit_request(self._app.app.context, identity, function_id, parsed, category).id

    def function_request(self, request_id: str) -> dict[str, Any]:
        """An AR as ``GET /api/functions/requests/{id}`` shows it, with its ``category``, the
        agent's ``result``, the agents it was handed to (``assignments``) and ``completed_by``."""
        snapshot = self._require_functions().snapshot(request_id)
        if snapshot is None:
            raise KeyError(f"There is no annotation request {request_id}.")
        return snapshot

    def function_requests(self) -> list[dict[str, Any]]:
        """Every AR, batch and interactive, oldest first (as :meth:`function_request`)."""
        functions = self._require_functions()
        return [
            snapshot
            for request in functions.requests()
            if (snapshot := functions.snapshot(request.id)) is not None
        ]

    def wait_function_request(self, request_id: str, timeout: float = 30) -> dict[str, Any]:
        """The AR (as :meth:`function_request`) once it has finished or failed.

        Raises TimeoutError if it has not ended in ``timeout`` seconds.
        """
        ended = self._require_functions().wait(request_id, timeout)
        if ended is None:
            raise TimeoutError(
                f"The annotation request {request_id} did not end in {timeout} s:"
                f" {self.function_request(request_id)}"
            )
        return self.function_request(request_id)

    def _require_functions(self) -> native_functions.FunctionQueues:
        self._require_running()
        return self._app.app.context.functions
