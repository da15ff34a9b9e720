"""``cvat-aa interact``: call an interaction function once, on an image on this machine.

CVAT calls interaction functions when a user clicks on a frame (``cvat-aa serve``, ``cvat-aa
agent run``). Before putting one in front of annotators, its author or the person who installs
it wants to see what it does with a few clicks on a picture of theirs: this command makes that
one call, through the same :class:`~cvat_aa.interaction.Interactor` that serves CVAT (so the
prompts are checked against the spec and the result validated and fitted into the image the
same way), prints the shapes as the JSON CVAT receives, and with ``--preview`` draws them, with
the prompts, on a copy of the image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import PIL.Image
import PIL.ImageDraw
from cvat_sdk import models

from ..errors import BadRequestError, ImageInputError
from ..interaction import Interactor, Prompts, result_json
from ..interface import BadFunctionError, function_kind
from ..labels import LabelCatalog
from ..local.inputs import open_image
from ..preview import draw_annotations
from .errors import UsageError
from .options import add_parameter_option, load_from_args, use_function_source

__all__ = ["register"]

_RESULT_LABEL = "result"


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y (two numbers)") from None
    return x, y


def _box(text: str) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        x1, y1, x2, y2 = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not X1,Y1,X2,Y2 (four numbers)") from None
    if x2 <= x1 or y2 <= y1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the box's second corner must be right of and below the first"
        )
    return (x1, y1), (x2, y2)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "interact",
        help="call an interaction function (click-to-segment) once on an image on this"
        " machine and print the shapes it returns",
        description="Call an interaction function on an image with positive and negative"
        " points and an optional box, as CVAT does when a user clicks, and print the shapes it"
        " returns as JSON (what CVAT receives). The prompts are checked against the function's"
        " spec and the result validated, as when the function is served.",
    )
    parser.add_argument(
        "function",
        metavar="FUNCTION",
        help="an interaction function: an installed one (see 'functions list'), a module name"
        " or a .py path",
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="the image to click on")
    add_parameter_option(parser)
    parser.add_argument(
        "--pos",
        type=_point,
        action="append",
        default=[],
        metavar="X,Y",
        help="a point on the object (repeat for several)",
    )
    parser.add_argument(
        "--neg",
        type=_point,
        action="append",
        default=[],
        metavar="X,Y",
        help="a point that is not on the object (repeat for several)",
    )
    parser.add_argument("--box", type=_box, metavar="X1,Y1,X2,Y2", help="a box around the object")
    parser.add_argument(
        "--output", type=Path, metavar="FILE", help="write the JSON to FILE instead of printing it"
    )
    parser.add_argument(
        "--preview",
        type=Path,
        metavar="FILE",
        help="draw the shapes and the prompts on a copy of the image and save it (PNG or JPEG)",
    )
    parser.set_defaults(run=run_interact)


def _check_paths(args: argparse.Namespace) -> None:
    """Checked before the function is loaded: a bad path must not cost a model load."""
    if not args.image.is_file():
        raise UsageError(f"IMAGE: {args.image} is not a file")
    for flag, path in (("--output", args.output), ("--preview", args.preview)):
        if path is not None and not path.parent.resolve().is_dir():
            raise UsageError(f"{flag}: the folder {path.parent} does not exist")
    if args.preview is not None and args.preview.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError("--preview: give a .png or .jpg file name")


def run_interact(args: argparse.Namespace) -> int:
    _check_paths(args)
    try:
        image = open_image(args.image)
    except ImageInputError as ex:
        raise UsageError(f"IMAGE: {ex}") from None
    use_function_source(args)
    function, name, _ = load_from_args(args)
    kind = function_kind(function)
    if kind != "interaction":
        raise BadFunctionError(
            f"function {name!r} is a {kind} function; 'cvat-aa interact' calls interaction"
            " functions (the KIND column of 'cvat-aa functions list')"
        )
    interactor = Interactor(function)
    prompts = Prompts(pos_points=tuple(args.pos), neg_points=tuple(args.neg), bounding_box=args.box)
    try:
        shapes = interactor.interact(image, prompts)
    except BadRequestError as ex:
        raise UsageError(f"the prompts do not fit the function: {ex}") from None
    text = json.dumps(result_json(shapes), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    if args.preview is not None:
        _draw(image, shapes, prompts).save(args.preview)
    return 0


def _draw(image: PIL.Image.Image, shapes: list[Any], prompts: Prompts) -> PIL.Image.Image:
    catalog = LabelCatalog.from_spec([models.PatchedLabelRequest(name=_RESULT_LABEL, id=0)])
    drawn = draw_annotations(
        image,
        [],
        [
            models.LabeledShapeRequest(type=s.type, points=list(s.points), label_id=0, frame=0)
            for s in shapes
        ],
        catalog,
    )
    draw = PIL.ImageDraw.Draw(drawn)
    radius = max(3, round(min(image.size) / 150))
    for points, color in ((prompts.pos_points, (0, 200, 0)), (prompts.neg_points, (220, 0, 0))):
        for x, y in points:
            draw.ellipse(
                (x - radius, y - radius, x + radius, y + radius), fill=color, outline=(0, 0, 0)
            )
    if prompts.bounding_box is not None:
        (x1, y1), (x2, y2) = prompts.bounding_box
        draw.rectangle((x1, y1, x2, y2), outline=(255, 200, 0), width=max(1, radius // 2))
    return drawn.convert("RGB")
