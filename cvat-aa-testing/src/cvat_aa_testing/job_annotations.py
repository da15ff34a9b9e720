"""How CVAT splits a task's annotations into its jobs and merges them back.

CVAT 2.73 keeps annotations per job, never per task. Annotations sent to a task are sliced
into each job's frame range (a track crossing a job boundary becomes one track per job, cut
with interpolated shapes at the boundaries; a tag or shape in the overlap of two jobs is
stored in both), and a task's annotations are the jobs' merged in job order: objects in an
overlap are matched (tags by label, rectangles and polygons by IoU, tracks by their shapes
in the overlap) and kept once, and a track that ends at a job boundary unmatched gets an
``outside`` shape there. Clients see all of this: a task and its jobs show different ids and
different tracks, and what ``--clear-existing`` or a rollback on a job removes is exactly
what that job shows. This module follows CVAT's ``AnnotationIR.slice`` and
``AnnotationManager.merge`` (``cvat/apps/dataset_manager/annotation.py``, MIT licence)
step by step, including their quirks, for 2D tasks.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from typing import Any

import shapely.geometry

from .storage import Transaction

Data = dict[str, list[dict[str, Any]]]

KINDS = ("tags", "shapes", "tracks")


# Reading and writing a task's or a job's annotations


def job_annotations(tx: Transaction, job: dict[str, Any], labels: list[dict]) -> dict[str, Any]:
    """``GET /api/jobs/{id}/annotations``: the job's, with default attribute values."""
    data = tx.job_annotations(job["id"])
    _add_default_attributes(data, labels)
    return _labeled_data(data)


def task_annotations(tx: Transaction, task: dict[str, Any], labels: list[dict]) -> dict[str, Any]:
    """``GET /api/tasks/{id}/annotations``: its jobs' annotations, merged."""
    merged: Data = {kind: [] for kind in KINDS}
    for job in tx.jobs(task["id"]):
        merge_data(
            merged, job_annotations(tx, job, labels), job["start_frame"], task["overlap"] or 0
        )
    return _labeled_data(merged)


def change_job_annotations(
    tx: Transaction, job: dict[str, Any], action: str, data: Data | None
) -> dict[str, Any]:
    """PUT ("put"), PATCH ("create", "update", "delete") or DELETE ("clear") on one job.

    Returns what CVAT answers: the annotations sent, with their ids (no defaults added).
    Raises IdConflictError for an id (kept by "put" and "update") that is already taken.
    """
    had_annotations = action in ("put", "clear") and any(tx.job_annotations(job["id"]).values())
    if action in ("put", "clear"):
        tx.delete_job_annotations(job["id"])
    elif action in ("update", "delete"):
        for kind in KINDS:
            ids = [item["id"] for item in data[kind] if item.get("id") is not None]
            tx.delete_annotations_by_id(job["id"], kind, ids)
    if action in ("put", "create", "update"):
        keep_ids = action != "create"
        for track in data["tracks"]:
            _sync_track_frames(track)
        if keep_ids:
            tx.ensure_ids_unused(data)
        tx.insert_annotations(job["task_id"], job["id"], data, keep_ids=keep_ids)
        # CVAT's answer has no "elements" in elements, even where the request had them.
        for item in [*data["shapes"], *data["tracks"]]:
            for element in item.get("elements", []):
                if not element.get("elements"):
                    element.pop("elements", None)
    sent = data is not None and any(data[kind] for kind in KINDS)
    # CVAT dates a job (and its task) only when annotations were sent or removed: an empty
    # PATCH changes nothing, which makes it a harmless probe of the right to change them.
    if sent or had_annotations:
        tx.touch_job(job["id"])
        tx.touch_task(job["task_id"])
    return _labeled_data(data or {kind: [] for kind in KINDS})


def change_task_annotations(
    tx: Transaction, task: dict[str, Any], action: str, data: Data | None
) -> dict[str, Any]:
    """The same on a task: ``data`` sliced into every job, the answers merged."""
    merged: Data = {kind: [] for kind in KINDS}
    for job in tx.jobs(task["id"]):
        job_data = slice_data(data, job["start_frame"], job["stop_frame"]) if data else None
        answer = change_job_annotations(tx, job, action, job_data)
        merge_data(merged, answer, job["start_frame"], task["overlap"] or 0)
    return _labeled_data(merged)


def _sync_track_frames(track: dict[str, Any]) -> None:
    """CVAT's ``_sync_frames`` on saving: a track starts on its first shape's frame, a track
    that starts earlier gets an outside copy of that shape there, and a skeleton track starts
    no later than its elements."""

    def correct(track: dict[str, Any]) -> None:
        shapes = sorted(track["shapes"], key=lambda shape: shape["frame"])
        if shapes and track["frame"] < shapes[0]["frame"]:
            if shapes[0]["type"] == "skeleton":
                shapes[0]["frame"] = track["frame"]
            else:
                missing = {**copy.deepcopy(shapes[0]), "frame": track["frame"], "outside": True}
                missing.pop("id", None)
                track["shapes"].append(missing)
        elif shapes and shapes[0]["frame"] < track["frame"]:
            track["frame"] = shapes[0]["frame"]

    correct(track)
    elements = track.get("elements", [])
    if not elements:
        return
    for element in elements:
        element["frame"] = min(element["frame"], track["frame"])
        correct(element)
    min_frame = min(element["frame"] for element in elements)
    if min_frame < track["frame"]:
        track["frame"] = track["shapes"][0]["frame"] = min_frame
        for element in elements:
            if track["frame"] < element["frame"]:
                element["frame"] = track["frame"]
                correct(element)


def _labeled_data(data: Data) -> dict[str, Any]:
    # Track shapes that merging compared keep the "keyframe" mark it gave them, as on CVAT.
    return {"version": 0, **{kind: data[kind] for kind in KINDS}, "intervals": []}


def _add_default_attributes(data: Data, labels: list[dict[str, Any]]) -> None:
    """Adds every attribute of its label that an annotation lacks, as CVAT does on reading.

    Tags and shapes get all the label's attributes, tracks its immutable ones; the first
    shape of a track gets the mutable ones' defaults, and each later one the values of the
    shape before it.
    """
    specs: dict[int, list[dict[str, Any]]] = {}
    for label in labels:
        for sublabel in [label, *label.get("sublabels", [])]:
            specs[sublabel["id"]] = sublabel["attributes"]

    def defaults(label_id: int, mutable: bool | None) -> list[dict[str, Any]]:
        return [
            {"spec_id": attr["id"], "value": attr["default_value"]}
            for attr in specs.get(label_id, [])
            if mutable is None or bool(attr["mutable"]) == mutable
        ]

    def extend(attributes: list[dict[str, Any]], extra: list[dict[str, Any]]) -> None:
        given = {attr["spec_id"] for attr in attributes}
        attributes.extend(dict(attr) for attr in extra if attr["spec_id"] not in given)

    for item in [*data["tags"], *data["shapes"]]:
        for annotation in [item, *item.get("elements", [])]:
            extend(annotation["attributes"], defaults(annotation["label_id"], None))
    for track in data["tracks"]:
        for annotation in [track, *track.get("elements", [])]:
            extend(annotation["attributes"], defaults(annotation["label_id"], False))
            previous = defaults(annotation["label_id"], True)
            for shape in annotation["shapes"]:
                extend(shape["attributes"], previous)
                previous = shape["attributes"]


# Slicing (AnnotationIR.slice)


def slice_data(data: Data, start: int, stop: int) -> Data:
    """The part of ``data`` that CVAT stores in the job of frames ``start``..``stop``."""
    tracks = []
    for track in data.get("tracks", []):
        if _is_track_inside(track, start, stop):
            sliced = _slice_track(track, start, stop)
            if sliced["shapes"]:
                tracks.append(sliced)
    return {
        "tags": [copy.deepcopy(t) for t in data.get("tags", []) if start <= t["frame"] <= stop],
        "shapes": [copy.deepcopy(s) for s in data.get("shapes", []) if start <= s["frame"] <= stop],
        "tracks": tracks,
    }


def _is_track_inside(track: dict[str, Any], start: int, stop: int) -> bool:
    def has_overlap(a: int, b: int) -> bool:
        return 0 <= min(b, stop) - max(a, start)

    elements = track.get("elements", [])
    if elements:
        # A skeleton track is in range if one of its elements is.
        return any(_is_track_inside(element, start, stop) for element in elements)

    prev_shape = None
    for shape in track["shapes"]:
        if shape["frame"] == start and shape["outside"]:
            prev_shape = shape
            continue
        if (
            prev_shape
            and not prev_shape["outside"]
            and has_overlap(prev_shape["frame"], shape["frame"])
        ):
            return True
        prev_shape = shape
    return prev_shape is not None and not prev_shape["outside"] and prev_shape["frame"] <= stop


def _slice_track(track_: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    def filter_track_shapes(shapes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        shapes = [s for s in shapes if start <= s["frame"] <= stop]
        # Leading outside shapes are dropped.
        drop_count = 0
        for s in shapes:
            if s["outside"]:
                drop_count += 1
            else:
                break
        return shapes[drop_count:]

    track = copy.deepcopy(track_)
    segment_shapes = filter_track_shapes(copy.deepcopy(track["shapes"]))
    track["elements"] = [
        _slice_track(element, start, stop) for element in track.get("elements", [])
    ]

    if len(segment_shapes) < len(track["shapes"]):
        interpolated_shapes = interpolated_track_shapes(track, start, stop + 1)
        scoped_shapes = filter_track_shapes(interpolated_shapes)
        if scoped_shapes:
            last_key = max(shape["frame"] for shape in track["shapes"])
            if not scoped_shapes[0]["keyframe"]:
                segment_shapes.insert(0, scoped_shapes[0])
            last_differs = (
                bool(segment_shapes) and scoped_shapes[-1]["points"] != segment_shapes[-1]["points"]
            )
            ends_outside = (
                scoped_shapes[-1]["keyframe"]
                and scoped_shapes[-1]["outside"]
                and (not segment_shapes or scoped_shapes[-1]["frame"] > segment_shapes[-1]["frame"])
            )
            if (last_key >= stop and last_differs) or ends_outside:
                segment_shapes.append(scoped_shapes[-1])
            # CVAT indexes the list of shapes by frame number here.
            elif stop + 1 < len(interpolated_shapes) and interpolated_shapes[stop + 1]["outside"]:
                segment_shapes.append(interpolated_shapes[stop + 1])
        for shape in segment_shapes:
            shape.pop("keyframe", None)

    track["shapes"] = segment_shapes
    if segment_shapes:
        track["frame"] = segment_shapes[0]["frame"]
    return track


# Interpolation (TrackManager.get_interpolated_shapes), 2D only


def interpolated_track_shapes(
    track: dict[str, Any], start_frame: int, end_frame: int
) -> list[dict[str, Any]]:
    """The track's shapes on frames ``start_frame``..``end_frame - 1``, keyframes marked.

    As in CVAT, the track's own shapes are changed: they get ``keyframe`` and the attributes
    of the keyframe before them.
    """
    del start_frame  # CVAT ignores it too: shapes before it are kept.

    def copy_shape(
        source: dict[str, Any],
        frame: int,
        points: list | None = None,
        rotation: float | None = None,
    ) -> dict[str, Any]:
        copied = dict(source)
        copied["attributes"] = copy.deepcopy(source["attributes"])
        copied["keyframe"] = False
        copied["frame"] = frame
        if rotation is not None:
            copied["rotation"] = rotation
        copied["points"] = list(copied["points"] if points is None else points)
        return copied

    def find_angle_diff(right_angle: float, left_angle: float) -> float:
        angle_diff = right_angle - left_angle
        angle_diff = ((angle_diff + 180) % 360) - 180
        if abs(angle_diff) >= 180:
            angle_diff = 360 - abs(angle_diff) * -1 if angle_diff > 0 else 1
        return angle_diff

    def simple_interpolation(shape0: dict, shape1: dict) -> Iterator[dict]:
        distance = shape1["frame"] - shape0["frame"]
        diff = [float(b) - float(a) for a, b in zip(shape0["points"], shape1["points"])]
        for frame in range(shape0["frame"] + 1, shape1["frame"]):
            offset = (frame - shape0["frame"]) / distance
            rotation = (
                shape0["rotation"]
                + find_angle_diff(shape1["rotation"], shape0["rotation"]) * offset
                + 360
            ) % 360
            points = [float(p) + d * offset for p, d in zip(shape0["points"], diff)]
            yield copy_shape(shape0, frame, points, rotation)

    def points_interpolation(shape0: dict, shape1: dict) -> Iterator[dict]:
        if len(shape0["points"]) == 2 and len(shape1["points"]) == 2:
            yield from simple_interpolation(shape0, shape1)
        else:
            for frame in range(shape0["frame"] + 1, shape1["frame"]):
                yield copy_shape(shape0, frame)

    def polyshape_interpolation(shape0: dict, shape1: dict) -> Iterator[dict]:
        is_polygon = shape0["type"] == "polygon"
        if is_polygon:
            # Closed for the computation.
            shape0 = {**shape0, "points": shape0["points"] + shape0["points"][:2]}
            shape1 = {**shape1, "points": shape1["points"] + shape1["points"][:2]}
        distance = shape1["frame"] - shape0["frame"]
        for frame in range(shape0["frame"] + 1, shape1["frame"]):
            offset = (frame - shape0["frame"]) / distance
            shape = copy_shape(shape0, frame, _interpolate_position(shape0, shape1, offset))
            if is_polygon:
                shape["points"] = shape["points"][:-2]
            yield shape

    def interpolate(shape0: dict, shape1: dict) -> Iterator[dict]:
        if shape0["type"] != shape1["type"]:
            raise NotImplementedError()
        if shape0["type"] in ("rectangle", "cuboid", "ellipse", "skeleton"):
            yield from simple_interpolation(shape0, shape1)
        elif shape0["type"] == "points":
            yield from points_interpolation(shape0, shape1)
        elif shape0["type"] in ("polygon", "polyline"):
            yield from polyshape_interpolation(shape0, shape1)
        else:
            raise NotImplementedError()

    def generate_shapes() -> Iterator[dict]:
        prev_shape: dict | None = None
        for shape in sorted(track["shapes"], key=lambda shape: shape["frame"]):
            curr_frame = shape["frame"]
            if prev_shape and end_frame <= curr_frame:
                # Interpolated up to the next keyframe, kept up to end_frame.
                last = shape
                for last in itertools.chain(interpolate(prev_shape, shape), [shape]):
                    if last["frame"] < end_frame:
                        yield last
                    else:
                        break
                # CVAT marks the last shape its loop reached (its loop variable is reused),
                # which is the keyframe only when no interpolated shape reaches end_frame.
                last["keyframe"] = True
                prev_shape = last
                break
            if prev_shape:
                if curr_frame == prev_shape["frame"] and dict(
                    shape, id=None, keyframe=None
                ) == dict(prev_shape, id=None, keyframe=None):
                    continue
                for attr in prev_shape["attributes"]:
                    if attr["spec_id"] not in (el["spec_id"] for el in shape["attributes"]):
                        shape["attributes"].append(copy.deepcopy(attr))
                if not prev_shape["outside"]:
                    yield from interpolate(prev_shape, shape)
            shape["keyframe"] = True
            yield shape
            prev_shape = shape
        if prev_shape and not prev_shape["outside"]:
            for frame in range(prev_shape["frame"] + 1, end_frame):
                yield copy_shape(prev_shape, frame)

    return [
        shape
        for shape in generate_shapes()
        if track["frame"] <= shape["frame"] < end_frame
        and (shape["keyframe"] or not shape["outside"])
    ]


def _interpolate_position(left_position: dict, right_position: dict, offset: float) -> list:
    """CVAT's interpolation of polygons and polylines with different numbers of points."""

    def to_points(flat: list) -> list[dict[str, float]]:
        return [{"x": float(x), "y": float(y)} for x, y in zip(flat[::2], flat[1::2])]

    def curve_length(points: list[dict]) -> float:
        length = 0.0
        for i in range(1, len(points)):
            dx = points[i]["x"] - points[i - 1]["x"]
            dy = points[i]["y"] - points[i - 1]["y"]
            length += math.sqrt(dx**2 + dy**2)
        return length

    def curve_to_offset_vec(points: list[dict], length: float) -> list[float]:
        offset_vector = [0.0]
        accumulated_length = 0.0
        for i in range(1, len(points)):
            dx = points[i]["x"] - points[i - 1]["x"]
            dy = points[i]["y"] - points[i - 1]["y"]
            accumulated_length += math.sqrt(dx**2 + dy**2)
            offset_vector.append(accumulated_length / length)
        return offset_vector

    def find_nearest_pair(value: float, curve: list[float]) -> int:
        minimum = [0, abs(value - curve[0])]
        for i in range(1, len(curve)):
            distance = abs(value - curve[i])
            if distance < minimum[1]:
                minimum = [i, distance]
        return minimum[0]

    def average_point(points: list[dict]) -> dict[str, float]:
        return {
            "x": sum(p["x"] for p in points) / len(points),
            "y": sum(p["y"] for p in points) / len(points),
        }

    def compute_distance(point1: dict, point2: dict) -> float:
        return math.sqrt((point1["x"] - point2["x"]) ** 2 + (point1["y"] - point2["y"]) ** 2)

    left_points = to_points(left_position["points"])
    right_points = to_points(right_position["points"])
    left_curve = curve_to_offset_vec(left_points, curve_length(left_points))
    right_curve = curve_to_offset_vec(right_points, curve_length(right_points))

    matching = {i: [find_nearest_pair(value, right_curve)] for i, value in enumerate(left_curve)}
    matched_right = list(itertools.chain.from_iterable(matching.values()))
    for right_point in [i for i in range(len(right_curve)) if i not in matched_right]:
        matching[find_nearest_pair(right_curve[right_point], left_curve)].append(right_point)
    matching = {key: sorted(value) for key, value in matching.items()}

    interpolated_points = []
    for left_index, left_point in enumerate(left_points):
        for right_index in matching[left_index]:
            right_point = right_points[right_index]
            interpolated_points.append(
                {
                    "x": left_point["x"] + (right_point["x"] - left_point["x"]) * offset,
                    "y": left_point["y"] + (right_point["y"] - left_point["y"]) * offset,
                }
            )

    def minimize_segment(base_length: float, n: int, start: int, stop: int) -> list[dict]:
        threshold = base_length / (2 * n)
        minimized = [interpolated_points[start]]
        latest_pushed = start
        for i in range(start + 1, stop):
            if compute_distance(interpolated_points[latest_pushed], interpolated_points[i]) >= (
                threshold
            ):
                minimized.append(interpolated_points[i])
                latest_pushed = i
        minimized.append(interpolated_points[stop])
        if (
            len(minimized) == 2
            and compute_distance(interpolated_points[start], interpolated_points[stop]) < threshold
        ):
            return [average_point(minimized)]
        return minimized

    reduced: list[dict] = []
    interpolated_indexes: dict[int, list[int]] = {}
    accumulated = 0
    for i in range(len(left_points)):
        interpolated_indexes[i] = []
        for _ in range(len(matching[i])):
            interpolated_indexes[i].append(accumulated)
            accumulated += 1

    def left_segment(start: int, stop: int) -> None:
        start_interpolated = interpolated_indexes[start][0]
        stop_interpolated = interpolated_indexes[stop][0]
        if start_interpolated == stop_interpolated:
            reduced.append(interpolated_points[start_interpolated])
            return
        base_length = curve_length(left_points[start : stop + 1])
        reduced.extend(
            minimize_segment(base_length, stop - start + 1, start_interpolated, stop_interpolated)
        )

    def right_segment(left_point: int) -> None:
        start, stop = matching[left_point][0], matching[left_point][-1]
        base_length = curve_length(right_points[start : stop + 1])
        reduced.extend(
            minimize_segment(
                base_length,
                stop - start + 1,
                interpolated_indexes[left_point][0],
                interpolated_indexes[left_point][-1],
            )
        )

    previous_opened = None
    for i in range(len(left_points)):
        if len(matching[i]) == 1:
            if previous_opened is not None:
                if matching[i][0] == matching[previous_opened][0]:
                    continue
                left_segment(previous_opened, i - 1)
                previous_opened = i
            else:
                previous_opened = i
        else:
            if previous_opened is not None:
                left_segment(previous_opened, i - 1)
                previous_opened = None
            right_segment(i)
    if previous_opened is not None:
        left_segment(previous_opened, len(left_points) - 1)

    return [coordinate for point in reduced for coordinate in (point["x"], point["y"])]


# Merging (AnnotationManager.merge)


def merge_data(merged: Data, data: Data, start_frame: int, overlap: int) -> None:
    """Merges one job's annotations into ``merged``, the task's so far, as CVAT does."""
    _TagMerger().merge(merged["tags"], data["tags"], start_frame, overlap)
    _ShapeMerger().merge(merged["shapes"], data["shapes"], start_frame, overlap)
    _TrackMerger().merge(merged["tracks"], data["tracks"], start_frame, overlap)


class _Merger:
    cost_threshold = 0.25

    def objects_by_frame(self, objects: list[dict], start_frame: int) -> dict[int, list[dict]]:
        by_frame: dict[int, list[dict]] = {}
        for obj in objects:
            if obj["frame"] >= start_frame:
                by_frame.setdefault(obj["frame"], []).append(obj)
        return by_frame

    def similarity(self, obj0: dict, obj1: dict, start_frame: int, overlap: int) -> float:
        raise NotImplementedError

    def unite(self, obj0: dict, obj1: dict) -> dict:
        return obj0 if obj0["frame"] < obj1["frame"] else obj1

    def modify_unmatched(self, obj: dict, end_frame: int) -> None:
        pass

    def merge(self, objects: list[dict], new: list[dict], start_frame: int, overlap: int) -> None:
        new_objects = [obj for obj in new if obj["frame"] >= start_frame + overlap]
        int_objects = [obj for obj in new if obj["frame"] < start_frame + overlap]
        int_by_frame = self.objects_by_frame(int_objects, start_frame)
        old_by_frame = self.objects_by_frame(objects, start_frame)
        objects.extend(new_objects)
        if not old_by_frame or not int_by_frame:
            for frame_objects in old_by_frame.values():
                for old_obj in frame_objects:
                    self.modify_unmatched(old_obj, start_frame + overlap)
            objects.extend(int_objects)
            return
        for frame, frame_int_objects in int_by_frame.items():
            if frame in old_by_frame:
                objects.extend(
                    self._merge_on_one_frame(
                        frame_int_objects, old_by_frame[frame], start_frame, overlap
                    )
                )
            else:
                objects.extend(frame_int_objects)

    def _merge_on_one_frame(
        self, int_objects: list[dict], old_objects: list[dict], start_frame: int, overlap: int
    ) -> list[dict]:
        cost = [
            [1 - self.similarity(int_obj, old_obj, start_frame, overlap) for old_obj in old_objects]
            for int_obj in int_objects
        ]
        int_matched = [False] * len(int_objects)
        old_matched = [False] * len(old_objects)
        for i, j in _min_cost_assignment(cost):
            if cost[i][j] <= self.cost_threshold:
                old_objects[j] = self.unite(int_objects[i], old_objects[j])
                int_matched[i] = old_matched[j] = True
        for j, matched in enumerate(old_matched):
            if not matched:
                self.modify_unmatched(old_objects[j], start_frame + overlap)
        return [obj for obj, matched in zip(int_objects, int_matched) if not matched]


class _TagMerger(_Merger):
    def similarity(self, obj0: dict, obj1: dict, start_frame: int, overlap: int) -> float:
        return 1 if obj0["label_id"] == obj1["label_id"] else 0


class _ShapeMerger(_Merger):
    def similarity(self, obj0: dict, obj1: dict, start_frame: int, overlap: int) -> float:
        return shape_similarity(obj0, obj1)


def shape_similarity(obj0: dict, obj1: dict) -> float:
    """CVAT's: IoU of rectangles (unrotated) and polygons of one label, else 0."""
    if obj0["type"] != obj1["type"] or obj0.get("label_id") != obj1.get("label_id"):
        return 0
    if obj0["type"] == "rectangle":
        p0 = shapely.geometry.box(*obj0["points"])
        p1 = shapely.geometry.box(*obj1["points"])
    elif obj0["type"] == "polygon":
        p0 = shapely.geometry.Polygon(zip(obj0["points"][::2], obj0["points"][1::2]))
        p1 = shapely.geometry.Polygon(zip(obj1["points"][::2], obj1["points"][1::2]))
    else:
        return 0
    if not (p0.is_valid and p1.is_valid) or p0.area == 0 or p1.area == 0:
        return 0
    overlap_area = p0.intersection(p1).area
    return overlap_area / (p0.area + p1.area - overlap_area)


class _TrackMerger(_Merger):
    cost_threshold = 0.5

    def objects_by_frame(self, objects: list[dict], start_frame: int) -> dict[int, list[dict]]:
        # All tracks are compared as if on one frame.
        candidates = [
            obj
            for obj in objects
            if obj["shapes"]
            and (obj["shapes"][-1]["frame"] >= start_frame or not obj["shapes"][-1]["outside"])
        ]
        return {0: candidates} if candidates else {}

    def similarity(self, obj0: dict, obj1: dict, start_frame: int, overlap: int) -> float:
        if obj0["label_id"] != obj1["label_id"]:
            return 0
        end_frame = start_frame + overlap
        obj0_shapes = interpolated_track_shapes(obj0, start_frame, end_frame)
        obj1_shapes = interpolated_track_shapes(obj1, start_frame, end_frame)
        if not obj0_shapes or not obj1_shapes:
            return 0
        obj0_by_frame = {shape["frame"]: shape for shape in obj0_shapes}
        obj1_by_frame = {shape["frame"]: shape for shape in obj1_shapes}
        count, error = 0, 0.0
        for frame in range(start_frame, end_frame):
            shape0, shape1 = obj0_by_frame.get(frame), obj1_by_frame.get(frame)
            if shape0 and shape1:
                if shape0["outside"] != shape1["outside"]:
                    error += 1
                else:
                    error += 1 - shape_similarity(shape0, shape1)
                count += 1
            elif shape0 or shape1:
                error += 1
                count += 1
        return 1 - error / (count or 1)

    def unite(self, obj0: dict, obj1: dict) -> dict:
        track = obj0 if obj0["frame"] < obj1["frame"] else obj1
        shapes = {shape["frame"]: shape for shape in obj0["shapes"]}
        for shape in obj1["shapes"]:
            frame = shape["frame"]
            shapes[frame] = _Merger().unite(shapes[frame], shape) if frame in shapes else shape
        track["frame"] = min(obj0["frame"], obj1["frame"])
        track["shapes"] = sorted(shapes.values(), key=lambda shape: shape["frame"])
        return track

    def modify_unmatched(self, obj: dict, end_frame: int) -> None:
        if not obj["shapes"]:
            return
        shape = obj["shapes"][-1]
        if not shape["outside"]:
            shape = copy.deepcopy(shape)
            shape["frame"] = end_frame
            shape["outside"] = True
            obj["shapes"].append(shape)
            for element in obj.get("elements", []):
                self.modify_unmatched(element, end_frame)


def _min_cost_assignment(cost: list[list[float]]) -> list[tuple[int, int]]:
    """Pairs (row, column) of least total cost, one per row or column (Hungarian method)."""
    if not cost or not cost[0]:
        return []
    transposed = len(cost) > len(cost[0])
    matrix = [list(row) for row in zip(*cost)] if transposed else cost
    n, m = len(matrix), len(matrix[0])
    # Shortest augmenting paths with potentials; rows 1..n, columns 1..m (0 is a sentinel).
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    match_of_column, way = [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        match_of_column[0] = i
        j0 = 0
        min_v = [math.inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = match_of_column[j0], math.inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    current = matrix[i0 - 1][j - 1] - u[i0] - v[j]
                    if current < min_v[j]:
                        min_v[j], way[j] = current, j0
                    if min_v[j] < delta:
                        delta, j1 = min_v[j], j
            for j in range(m + 1):
                if used[j]:
                    u[match_of_column[j]] += delta
                    v[j] -= delta
                else:
                    min_v[j] -= delta
            j0 = j1
            if match_of_column[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match_of_column[j0] = match_of_column[j1]
            j0 = j1
    pairs = [(match_of_column[j] - 1, j - 1) for j in range(1, m + 1) if match_of_column[j]]
    if transposed:
        pairs = [(j, i) for i, j in pairs]
    return sorted(pairs)
