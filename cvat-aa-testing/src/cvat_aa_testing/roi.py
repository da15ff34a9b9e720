"""Regions of interest: CVAT 2.73's ``ROIHelper`` (``cvat/apps/lambda_manager/utils.py``).

A call may name a region ``[xtl, ytl, xbr, ybr]`` of the frame: the function then gets the
region cropped out of the frame (saved again in the frame's format), and what it returns is
moved back into the frame's coordinates. Prompts of interactors are moved into the region's.
Every refusal is DRF's ValidationError, with CVAT's message.
"""

from __future__ import annotations

import io
from typing import Any

import PIL.Image

from .lambda_errors import RefusedError

_FOUR_INTEGERS = "ROI must contain four integer coordinates: [xtl, ytl, xbr, ybr]"


def parse_roi(roi: Any) -> dict[str, int]:
    """The region as ``{"xtl", "ytl", "xbr", "ybr"}``, or CVAT's refusal."""
    if not isinstance(roi, list) or len(roi) != 4:
        raise RefusedError([_FOUR_INTEGERS], code=400)
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in roi):
        raise RefusedError([_FOUR_INTEGERS], code=400)
    xtl, ytl, xbr, ybr = roi
    if min(roi) < 0:
        raise RefusedError(["ROI coordinates must be non-negative"], code=400)
    if xbr <= xtl or ybr <= ytl:
        raise RefusedError(["ROI size must be positive"], code=400)
    return {"xtl": xtl, "ytl": ytl, "xbr": xbr, "ybr": ybr}


def check_task_roi(roi: Any, frame_sizes: list[tuple[int, int]]) -> None:
    """CVAT's check of a request's region against the sizes of the task's frames that are not
    deleted: they must all be one size, which holds the region."""
    parsed = parse_roi(roi)
    sizes = set(frame_sizes)
    if not sizes:
        return
    if len(sizes) != 1:
        raise RefusedError(
            [
                (
                    "ROI can be used for task annotation only when all processed frames have the"
                    " same resolution"
                )
            ],
            code=400,
        )
    ((width, height),) = sizes
    if parsed["xbr"] > width or parsed["ybr"] > height:
        raise RefusedError(["ROI is outside the image"], code=400)


def crop(image_bytes: bytes, roi: Any) -> tuple[bytes, dict[str, int]]:
    """The region of a frame, encoded as the frame was, and the region with the frame's size."""
    with PIL.Image.open(io.BytesIO(image_bytes)) as image:
        parsed: dict[str, int] = {
            **parse_roi(roi),
            "image_width": image.width,
            "image_height": image.height,
        }
        if parsed["xbr"] > image.width or parsed["ybr"] > image.height:
            raise RefusedError(["ROI is outside the image"], code=400)
        cropped = image.crop((parsed["xtl"], parsed["ytl"], parsed["xbr"], parsed["ybr"]))
        output = io.BytesIO()
        cropped.save(output, format=image.format or "PNG")
    return output.getvalue(), parsed


def _translate(points: list[Any], dx: int, dy: int) -> list[Any]:
    return [value + (dx if index % 2 == 0 else dy) for index, value in enumerate(points)]


def translate_prompt_points(points: Any, dx: int, dy: int) -> list[list[Any]] | None:
    """Interactor prompts (``[[x, y], ...]``) moved by ``dx``, ``dy``; None stays None."""
    if points is None:
        return None
    try:
        return [[x + dx, y + dy] for x, y in points]
    except (TypeError, ValueError) as e:
        raise RefusedError(["Interactor prompt points must contain point pairs"]) from e


def translate_shapes(shapes: list[dict[str, Any]], dx: int, dy: int) -> list[dict[str, Any]]:
    """Detector results moved back into the frame, in place: a mask's bounding box alone."""
    for shape in shapes:
        shape_type = shape.get("type")
        if shape_type == "tag":
            continue
        if "points" in shape:
            if shape_type == "mask":
                shape["points"] = [*shape["points"][:-4], *_translate(shape["points"][-4:], dx, dy)]
            else:
                shape["points"] = _translate(shape["points"], dx, dy)
        translate_shapes(shape.get("elements", []), dx, dy)
    return shapes


def translate_interactor_response(response: Any, roi: dict[str, int]) -> Any:
    """An interactor's answer about the region moved back into the frame: its ``mask`` placed
    in a frame-sized one, its ``shapes`` moved."""
    if "mask" in response:
        mask = response["mask"]
        rows, columns = roi["ybr"] - roi["ytl"], roi["xbr"] - roi["xtl"]
        if len(mask) != rows or any(len(row) != columns for row in mask):
            # CVAT's numpy assignment fails (a 500).
            raise ValueError(
                f"could not broadcast the interactor's mask into shape ({rows},{columns})"
            )
        # The frame-sized mask is of the mask's type: zeros, 0.0 or False.
        zero = type(mask[0][0])(0) if rows and columns else 0
        full = [[zero] * roi["image_width"] for _ in range(roi["image_height"])]
        for row_index, row in enumerate(mask):
            full[roi["ytl"] + row_index][roi["xtl"] : roi["xbr"]] = row
        response["mask"] = full
    if isinstance(response.get("shapes"), list):
        translate_shapes(response["shapes"], roi["xtl"], roi["ytl"])
    return response
