"""A function file for the benchmarks: reads every pixel (mean colour), returns one box.

A file rather than a class inside a benchmark, so that ``cvat-aa serve -f`` and
``cvat_aa.load_function`` load the very same function. It takes about half a millisecond a
640x480 frame, so what a run around it takes is the run's own cost.
"""

import cvat_aa
import PIL.ImageStat

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("object", 0, type="rectangle")])


def detect(context, image):
    r, g, b = PIL.ImageStat.Stat(image).mean
    side = 10 + (r + g + b) / 30
    return [cvat_aa.rectangle(0, [0.0, 0.0, side, side])]
