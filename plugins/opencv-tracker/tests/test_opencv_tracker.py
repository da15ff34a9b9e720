"""The OpenCV tracker on synthetic sequences: a textured square moving over a blurred background."""

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import PIL.Image
import pytest
from cvat_aa import TrackableShape
from cvat_aa.errors import BadRequestError
from cvat_aa.plugins import load_function
from cvat_aa.tracking import Tracker
from cvat_aa_opencv_tracker import ALGORITHMS, OpenCvTrackerFunction, available_algorithms

WIDTH, HEIGHT, SIDE = 320, 240, 40
#: Where the square's top left corner is on each frame: right and down, 5-7 pixels a frame.
PATH = [(40 + 7 * i, 50 + 5 * i) for i in range(20)]
#: How far (pixels) a tracked corner may be from the square's.
TOLERANCE = 4


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(
        rng.integers(60, 200, (HEIGHT, WIDTH, 3), dtype=np.uint8), (0, 0), 4
    )
    # Blurred a little, as real objects are: white noise has no shape to follow.
    texture = cv2.GaussianBlur(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8), (0, 0), 1.5)
    return background, texture


def frame(scene, corner=None):
    """An RGB image of the background, with the square's top left corner at ``corner``."""
    background, texture = scene
    pixels = background.copy()
    if corner is not None:
        x, y = corner
        pixels[y : y + SIDE, x : x + SIDE] = texture
    return PIL.Image.fromarray(pixels)


def square(corner):
    x, y = corner
    return TrackableShape(type="rectangle", points=[x, y, x + SIDE, y + SIDE])


def assert_near(shape, corner):
    assert shape is not None and shape.type == "rectangle"
    x, y = corner
    assert shape.points == pytest.approx([x, y, x + SIDE, y + SIDE], abs=TOLERANCE)


@pytest.fixture
def tracker():
    return Tracker(OpenCvTrackerFunction())


def test_the_function_is_found_by_its_name():
    function = load_function("opencv-tracker", algorithm="mil")
    assert function.algorithm == "mil"
    assert isinstance(function, OpenCvTrackerFunction)
    assert function.spec.supported_shape_types == {"rectangle"}


def test_a_moving_square_is_followed_along_its_path(scene, tracker):
    (state,) = tracker.init_tracking(frame(scene, PATH[0]), [square(PATH[0])])
    for corner in PATH[1:]:
        (shape,) = tracker.track(frame(scene, corner), [state])
        assert_near(shape, corner)


def test_several_squares_are_tracked_each_by_its_own_state(scene, tracker):
    # The same scene, cropped: a second object elsewhere would need a second texture.
    first, second = PATH[0], (200, 150)
    states = tracker.init_tracking(frame(scene, first), [square(first), square(second)])
    assert len(set(states)) == 2
    shapes = tracker.track(frame(scene, PATH[1]), states)
    assert_near(shapes[0], PATH[1])


def test_a_square_that_leaves_the_picture_is_lost(scene, tracker):
    (state,) = tracker.init_tracking(frame(scene, PATH[0]), [square(PATH[0])])
    (shape,) = tracker.track(frame(scene, PATH[1]), [state])
    assert_near(shape, PATH[1])
    assert tracker.track(frame(scene, None), [state]) == [None]


def test_template_matching_gives_the_same_boxes_every_time(scene):
    runs = []
    for _ in range(2):
        tracker = Tracker(OpenCvTrackerFunction())
        (state,) = tracker.init_tracking(frame(scene, PATH[0]), [square(PATH[0])])
        runs.append([tracker.track(frame(scene, corner), [state])[0] for corner in PATH[1:]])
    assert runs[0] == runs[1]


def test_a_lost_square_is_found_again_when_it_comes_back_nearby(scene, tracker):
    (state,) = tracker.init_tracking(frame(scene, PATH[0]), [square(PATH[0])])
    assert tracker.track(frame(scene, None), [state]) == [None]
    (shape,) = tracker.track(frame(scene, PATH[1]), [state])
    assert_near(shape, PATH[1])


def test_mil_loses_a_square_that_leaves_the_picture(scene):
    tracker = Tracker(OpenCvTrackerFunction(algorithm="mil"))
    (state,) = tracker.init_tracking(frame(scene, PATH[0]), [square(PATH[0])])
    for corner in PATH[1:4]:
        # MIL may drift off the square (see the module's docstring): then its box is refused.
        (shape,) = tracker.track(frame(scene, corner), [state])
        assert shape is None or shape.points == pytest.approx(square(corner).points, abs=8)
    assert tracker.track(frame(scene, None), [state]) == [None]


def test_with_min_similarity_0_mil_never_loses_the_object(scene):
    tracker = Tracker(OpenCvTrackerFunction(algorithm="mil", min_similarity=0))
    (state,) = tracker.init_tracking(frame(scene, PATH[0]), [square(PATH[0])])
    (shape,) = tracker.track(frame(scene, None), [state])
    assert shape is not None


def test_fractional_coordinates_keep_their_offset_and_size(scene):
    function = OpenCvTrackerFunction()
    first = function.preprocess_image(None, frame(scene, PATH[0]))
    x, y = PATH[0]
    shape = TrackableShape(
        type="rectangle", points=[x + 0.25, y + 0.5, x + SIDE + 0.25, y + SIDE + 0.5]
    )
    state = function.init_tracking_state(None, first, shape)
    moved = function.track(None, function.preprocess_image(None, frame(scene, PATH[1])), state)
    x1, y1, x2, y2 = moved.points
    assert (x2 - x1, y2 - y1) == pytest.approx((SIDE, SIDE))
    assert (x1 % 1, y1 % 1) == pytest.approx((0.25, 0.5))


def test_shapes_stay_inside_the_frame(scene, tracker):
    corner = (WIDTH - SIDE, HEIGHT - SIDE)
    (state,) = tracker.init_tracking(frame(scene, corner), [square(corner)])
    (shape,) = tracker.track(frame(scene, corner), [state])
    x1, y1, x2, y2 = shape.points
    assert 0 <= x1 < x2 <= WIDTH and 0 <= y1 < y2 <= HEIGHT


def test_a_rectangle_outside_the_frame_is_never_found(scene, tracker):
    outside = TrackableShape(type="rectangle", points=[WIDTH + 10, 10, WIDTH + 50, 50])
    (state,) = tracker.init_tracking(frame(scene, PATH[0]), [outside])
    assert tracker.track(frame(scene, PATH[1]), [state]) == [None]


@pytest.mark.parametrize(
    ("shape_type", "points"),
    [("polygon", [10, 10, 50, 10, 30, 40]), ("points", [10, 10]), ("ellipse", [30, 30, 50, 40])],
)
def test_shapes_other_than_rectangles_are_refused(scene, tracker, shape_type, points):
    with pytest.raises(BadRequestError, match=f"Unsupported shape type '{shape_type}'"):
        tracker.init_tracking(
            frame(scene, PATH[0]), [TrackableShape(type=shape_type, points=points)]
        )


@pytest.mark.parametrize("algorithm", ["template", "mil"])
def test_a_state_made_on_one_thread_tracks_on_another(scene, algorithm):
    # cvat-aa serve runs functions on a worker thread; CVAT's next call may come to another.
    tracker = Tracker(OpenCvTrackerFunction(algorithm=algorithm))

    def init():
        return threading.get_ident(), tracker.init_tracking(
            frame(scene, PATH[0]), [square(PATH[0])]
        )

    def track(state):
        return threading.get_ident(), [
            tracker.track(frame(scene, c), [state])[0] for c in PATH[1:4]
        ]

    with ThreadPoolExecutor(1) as maker, ThreadPoolExecutor(1) as user:
        made_on, (state,) = maker.submit(init).result()
        used_on, shapes = user.submit(track, state).result()
    assert made_on != used_on
    for shape, corner in zip(shapes, PATH[1:4], strict=True):
        if algorithm == "template":
            assert_near(shape, corner)
        else:  # MIL may drift off the square (see the module's docstring).
            assert shape is None or shape.points == pytest.approx(square(corner).points, abs=8)


def test_unknown_algorithms_are_refused_with_the_valid_ones():
    with pytest.raises(
        ValueError, match="algorithm must be one of 'template', 'mil', 'csrt', not 'tld'"
    ):
        OpenCvTrackerFunction(algorithm="tld")


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.5", True])
def test_min_similarity_must_be_a_number_from_0_to_1(value):
    with pytest.raises(ValueError, match="min_similarity must be a number from 0 to 1"):
        OpenCvTrackerFunction(min_similarity=value)


@pytest.mark.parametrize("algorithm", [name for name, (_, main) in ALGORITHMS.items() if not main])
def test_contrib_algorithms_say_what_to_install_when_opencv_lacks_them(algorithm):
    if algorithm in available_algorithms():
        pytest.skip(f"this OpenCV has {algorithm}")
    with pytest.raises(ValueError, match="opencv-contrib-python-headless"):
        OpenCvTrackerFunction(algorithm=algorithm)


# Not MIL, which drifts now and then (see the module's docstring).
@pytest.mark.parametrize("algorithm", ["template", "csrt"])
def test_every_steady_algorithm_that_opencv_has_follows_the_square(scene, algorithm):
    if algorithm not in available_algorithms():
        pytest.skip(f"this OpenCV lacks {algorithm} (it is in opencv-contrib)")
    tracker = Tracker(OpenCvTrackerFunction(algorithm=algorithm))
    (state,) = tracker.init_tracking(frame(scene, PATH[0]), [square(PATH[0])])
    for corner in PATH[1:8]:
        (shape,) = tracker.track(frame(scene, corner), [state])
        assert_near(shape, corner)
