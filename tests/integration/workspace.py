"""The suite's throw-away projects and tasks on the server under test, and their cleanup.

Everything is named with the session's prefix (``cvat-aa-it-<random>``) and deleted when the
session ends, whether the tests passed or not. A session that crashed leaves things behind:
the next one deletes every project and task whose name starts with ``cvat-aa-it-`` first.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import PIL.Image
from cvat_aa_it_frame_code import draw_frame_code
from cvat_sdk import Client, models
from cvat_sdk.api_client import exceptions

logger = logging.getLogger(__name__)

NAME_PREFIX = "cvat-aa-it-"
FRAME_SIZE = (64, 48)

#: Every label type, with attributes of every input type and a skeleton: the labels of
#: cvat_aa_it_functions' spec, in CVAT's form.
LABELS: list[dict[str, Any]] = [
    {
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {
                "name": "color",
                "input_type": "select",
                "mutable": False,
                "values": ["red", "green", "blue"],
                "default_value": "red",
            },
            {
                "name": "parked",
                "input_type": "checkbox",
                "mutable": True,
                "values": ["false"],
                "default_value": "false",
            },
            {
                "name": "doors",
                "input_type": "number",
                "mutable": False,
                "values": ["2", "5", "1"],
                "default_value": "2",
            },
            {
                "name": "plate",
                "input_type": "text",
                "mutable": False,
                "values": [""],
                "default_value": "",
            },
            {
                "name": "make",
                "input_type": "radio",
                "mutable": False,
                "values": ["acme", "zenith"],
                "default_value": "acme",
            },
        ],
    },
    {"name": "roof", "type": "polygon"},
    {"name": "lane", "type": "polyline"},
    {"name": "spot", "type": "points"},
    {"name": "wheel", "type": "ellipse"},
    {"name": "stain", "type": "mask"},
    {
        "name": "person",
        "type": "skeleton",
        "sublabels": [{"name": "head", "type": "points"}, {"name": "foot", "type": "points"}],
        "svg": '<line x1="40" y1="5" x2="42" y2="20" data-type="edge"'
        ' data-node-from="1" data-node-to="2"></line>'
        '<circle r="0.75" cx="40" cy="5" data-type="element node" data-element-id="1"'
        ' data-node-id="1" data-label-name="head"></circle>'
        '<circle r="0.75" cx="42" cy="20" data-type="element node" data-element-id="2"'
        ' data-node-id="2" data-label-name="foot"></circle>',
    },
    {
        "name": "night",
        "type": "tag",
        "attributes": [
            {
                "name": "cloudy",
                "input_type": "checkbox",
                "mutable": False,
                "values": ["false"],
                "default_value": "false",
            },
        ],
    },
]


def label_requests(labels: list[dict[str, Any]]) -> list[models.PatchedLabelRequest]:
    result = []
    for label in labels:
        fields = dict(label)
        if "attributes" in fields:
            fields["attributes"] = [models.AttributeRequest(**a) for a in fields["attributes"]]
        if "sublabels" in fields:
            fields["sublabels"] = [models.SublabelRequest(**s) for s in fields["sublabels"]]
        result.append(models.PatchedLabelRequest(**fields))
    return result


def write_images(folder: Path, count: int, size: tuple[int, int] = FRAME_SIZE) -> list[Path]:
    """``frame_000000.png`` ...: the names ``it_every_shape`` reads the frame number from; the
    number is also painted into the pixels, for ``it_frame_code`` (cvat_aa_it_frame_code)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"frame_{i:06d}.png"
        image = PIL.Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, 128))
        draw_frame_code(image, i).save(path)
        paths.append(path)
    return paths


def write_video(path: Path, count: int, size: tuple[int, int] = FRAME_SIZE) -> Path:
    """An MPEG-4 clip of ``count`` frames (the suite never depends on its exact pixels)."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(count):
            image = PIL.Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, 128))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class Workspace:
    """Creates the session's projects and tasks, remembers them, and deletes them."""

    def __init__(self, client: Client, media_dir: Path) -> None:
        self.client = client
        self.prefix = f"{NAME_PREFIX}{secrets.token_hex(3)}-"
        self.media_dir = media_dir
        self.projects: list[int] = []
        self.tasks: list[int] = []

    def name(self, what: str) -> str:
        return f"{self.prefix}{what}"

    def create_project(self, what: str, labels: list[dict[str, Any]] = LABELS) -> int:
        project = self.client.projects.create(
            models.ProjectWriteRequest(name=self.name(what), labels=label_requests(labels))
        )
        self.projects.append(project.id)
        return project.id

    def create_task(
        self,
        what: str,
        *,
        frames: int = 6,
        video: bool = False,
        labels: list[dict[str, Any]] = LABELS,
        project_id: int | None = None,
        segment_size: int | None = None,
        overlap: int | None = None,
        chunk_size: int | None = None,
        images: Sequence[PIL.Image.Image] | None = None,
    ) -> int:
        """A task of ``frames`` 64x48 images (or a video of that many frames), or of
        ``images`` (lossless PNG files, for scenes whose pixels the tests rely on)."""
        folder = self.media_dir / secrets.token_hex(4)
        if images is not None:
            folder.mkdir(parents=True)
            resources = []
            for i, image in enumerate(images):
                image.save(folder / f"frame_{i:06d}.png")
                resources.append(folder / f"frame_{i:06d}.png")
        elif video:
            folder.mkdir(parents=True)
            resources = [write_video(folder / "clip.mp4", frames)]
        else:
            resources = write_images(folder, frames)
        spec: dict[str, Any] = {"name": self.name(what)}
        if project_id is not None:
            spec["project_id"] = project_id
        else:
            spec["labels"] = label_requests(labels)
        if segment_size is not None:
            spec["segment_size"] = segment_size
        if overlap is not None:
            spec["overlap"] = overlap
        task = self.client.tasks.create_from_data(
            spec=models.TaskWriteRequest(**spec),
            resources=[str(p) for p in resources],
            data_params={
                "image_quality": 95,
                "sorting_method": "natural",
                **({"chunk_size": chunk_size} if chunk_size is not None else {}),
            },
        )
        self.tasks.append(task.id)
        return task.id

    def delete_everything(self) -> None:
        for task_id in reversed(self.tasks):
            self._delete(self.client.api_client.tasks_api.destroy, task_id)
        for project_id in reversed(self.projects):
            self._delete(self.client.api_client.projects_api.destroy, project_id)
        self.tasks.clear()
        self.projects.clear()

    @staticmethod
    def _delete(destroy: Any, resource_id: int) -> None:
        try:
            destroy(resource_id)
        except exceptions.NotFoundException:
            pass


#: Things of another session younger than this may belong to a run still going on.
LEFTOVER_AGE = datetime.timedelta(minutes=30)


def _is_leftover(name: str, created: datetime.datetime | None) -> bool:
    if not name.startswith(NAME_PREFIX) or created is None:
        return False
    return datetime.datetime.now(datetime.UTC) - created > LEFTOVER_AGE


def delete_leftovers(client: Client) -> int:
    """Deletes projects and tasks (named ``cvat-aa-it-...``) that earlier sessions left
    behind more than half an hour ago; returns how many."""
    removed = 0
    tasks_api = client.api_client.tasks_api
    projects_api = client.api_client.projects_api
    for task in client.tasks.list(search=NAME_PREFIX):
        if _is_leftover(task.name, task.created_date):
            Workspace._delete(tasks_api.destroy, task.id)
            removed += 1
    for project in client.projects.list(search=NAME_PREFIX):
        if _is_leftover(project.name, project.created_date):
            Workspace._delete(projects_api.destroy, project.id)
            removed += 1
    if removed:
        logger.warning("deleted %d projects and tasks left by an earlier integration run", removed)
    return removed
