"""Offline tracking on a task or job: ``track_task`` / ``track_job`` follow the user's shapes
with a tracking function over the frames and upload one CVAT track per shape.

The scene (tests/track_scene.py) is coloured squares on known paths and a tracker that finds
each square by its colour, so every keyframe can be checked against the truth.
"""

from __future__ import annotations

import cvat_aa
import numpy as np
import PIL.Image
import pytest
from cvat_aa.driver.journal import Journal, list_journals
from cvat_aa.driver.retry import RetryPolicy
from cvat_aa.driver.run_lock import RunInProgressError, RunLock
from cvat_aa.driver.server_url import normalize_server_url
from cvat_aa.driver.upload import AnnotationTarget, RollbackReport, Uploader
from cvat_aa_testing import TestServer
from cvat_sdk.api_client.exceptions import ApiException
from track_scene import SIZE, ColourTracker, box, frames, keyframes, off_by, write_video

LABELS = [
    {
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {
                "name": "colour",
                "mutable": False,
                "input_type": "select",
                "default_value": "red",
                "values": ["red", "green"],
            },
            {
                "name": "parked",
                "mutable": True,
                "input_type": "checkbox",
                "default_value": "false",
                "values": ["false"],
            },
        ],
    },
    {"name": "person", "type": "rectangle"},
]

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02)


def make_task(server: TestServer, count: int, squares: int = 1, path=None, **layout) -> int:
    images = frames(count, squares) if path is None else frames(count, squares, path)
    return server.create_task("tracking", images=images, labels=LABELS, chunk_size=4, **layout)


def seed(server: TestServer, task: int, *starts: tuple[int, int, str], path=None) -> list[dict]:
    """Give the task the user's boxes: (square, frame, label) each, on the square's true box."""
    shapes = [
        {
            "type": "rectangle",
            "frame": n,
            "label_id": server.label_id(task, label),
            "points": box(k, n) if path is None else box(k, n, path),
            "source": "manual",
        }
        for k, n, label in starts
    ]
    server.set_annotations(task, {"shapes": shapes})
    return server.annotations(task)["shapes"]


def tracks(server: TestServer, task: int) -> list[dict]:
    return sorted(server.annotations(task)["tracks"], key=lambda t: (t["frame"], t["id"]))


def follows(track: dict, k: int, path=None, tolerance: float = 1.0) -> bool:
    """Whether the track's visible keyframes lie on square ``k``'s true boxes."""
    return all(
        off_by(s["points"], box(k, s["frame"]) if path is None else box(k, s["frame"], path))
        <= tolerance
        for s in track["shapes"]
        if not s["outside"]
    )


def leaves_at(frame: int):
    """Square 0's default path, gone from ``frame`` on."""

    def path(k: int, n: int):
        if k == 0 and n >= frame:
            return None
        return (4 + 3 * n, 6 + 2 * n) if k == 0 else (80 - 2 * n, 40)

    return path


# --- what a track is -------------------------------------------------------------------------


def test_a_track_follows_the_square_from_the_users_box_to_the_end_of_the_task(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 10)
    users = seed(cvat_server, task, (0, 0, "car"))

    summary = cvat_aa.track_task(cvat_client, task, ColourTracker())

    [track] = tracks(cvat_server, task)
    assert (track["frame"], track["source"]) == (0, "auto")
    assert track["label_id"] == cvat_server.label_id(task, "car")
    # One keyframe a frame; the task ends with frame 9, so no outside keyframe after it.
    assert keyframes(track) == [(n, False) for n in range(10)]
    assert follows(track, 0)
    assert cvat_server.annotations(task)["shapes"] == users, "the user's box is unchanged"
    assert (summary.tracks, summary.frames, summary.keyframes, summary.lost) == (1, 10, 10, 0)
    assert summary.per_label == {"car": 1}


def test_every_object_is_followed_and_each_frame_is_preprocessed_once_for_all(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 6, squares=2)
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"))
    tracker = ColourTracker()

    cvat_aa.track_task(cvat_client, task, tracker)

    car, person = sorted(tracks(cvat_server, task), key=lambda t: t["label_id"])
    assert follows(car, 0) and follows(person, 1)
    assert len(car["shapes"]) == len(person["shapes"]) == 6
    # Frame 0 once to start both objects, then frames 1-5 once each for both.
    assert tracker.preprocessed == 6


def test_an_object_that_leaves_the_frame_gets_an_outside_keyframe_and_its_track_ends(
    cvat_server, cvat_client
):
    path = leaves_at(4)
    task = make_task(cvat_server, 8, squares=2, path=path)
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"), path=path)

    summary = cvat_aa.track_task(cvat_client, task, ColourTracker())

    car, person = sorted(tracks(cvat_server, task), key=lambda t: t["label_id"])
    assert keyframes(car) == [(0, False), (1, False), (2, False), (3, False), (4, True)]
    # The outside keyframe keeps the last box seen.
    assert car["shapes"][-1]["points"] == car["shapes"][-2]["points"]
    assert keyframes(person) == [(n, False) for n in range(8)]
    assert summary.lost == 1


def test_a_range_that_ends_before_the_task_closes_each_track_on_the_next_frame(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 10)
    seed(cvat_server, task, (0, 2, "car"))

    cvat_aa.track_task(cvat_client, task, ColourTracker(), frames="2-5")

    [track] = tracks(cvat_server, task)
    assert track["frame"] == 2
    assert keyframes(track) == [(2, False), (3, False), (4, False), (5, False), (6, True)]
    assert follows(track, 0)


def test_by_default_tracks_start_from_the_first_frame_and_with_all_from_every_frame(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 8, squares=2)
    seed(cvat_server, task, (0, 1, "car"), (1, 4, "person"))

    first = cvat_aa.track_task(cvat_client, task, ColourTracker(), frames="1-7", dry_run=True)
    assert first.tracks == 1

    cvat_aa.track_task(cvat_client, task, ColourTracker(), frames="1-7", start_frames="all")
    car, person = tracks(cvat_server, task)
    assert (car["frame"], person["frame"]) == (1, 4)
    assert keyframes(person) == [(n, False) for n in range(4, 8)]
    assert follows(car, 0) and follows(person, 1)


def test_labels_choose_which_shapes_are_tracked(cvat_server, cvat_client):
    task = make_task(cvat_server, 4, squares=2)
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"))

    cvat_aa.track_task(cvat_client, task, ColourTracker(), labels=["person"])

    [track] = tracks(cvat_server, task)
    assert track["label_id"] == cvat_server.label_id(task, "person")
    with pytest.raises(ValueError, match="no label named 'bus'"):
        cvat_aa.track_task(cvat_client, task, ColourTracker(), labels=["bus"])


def test_the_start_shapes_attributes_go_to_the_track_and_its_first_keyframe(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 3)
    specs = {a["name"]: a["id"] for a in cvat_server.labels(task)[0]["attributes"]}
    cvat_server.set_annotations(
        task,
        {
            "shapes": [
                {
                    "type": "rectangle",
                    "frame": 0,
                    "label_id": cvat_server.label_id(task, "car"),
                    "points": box(0, 0),
                    "group": 3,
                    "attributes": [
                        {"spec_id": specs["colour"], "value": "green"},
                        {"spec_id": specs["parked"], "value": "true"},
                    ],
                }
            ]
        },
    )

    cvat_aa.track_task(cvat_client, task, ColourTracker())

    [track] = tracks(cvat_server, task)
    assert track["group"] == 3
    assert [(a["spec_id"], a["value"]) for a in track["attributes"]] == [(specs["colour"], "green")]
    first = track["shapes"][0]
    assert (specs["parked"], "true") in [(a["spec_id"], a["value"]) for a in first["attributes"]]


def test_start_shapes_can_be_given_with_label_names(cvat_server, cvat_client):
    task = make_task(cvat_server, 6)
    given = [{"label": "person", "frame": 2, "type": "rectangle", "points": box(0, 2)}]

    cvat_aa.track_task(cvat_client, task, ColourTracker(), start_shapes=given)

    [track] = tracks(cvat_server, task)
    assert track["label_id"] == cvat_server.label_id(task, "person")
    assert keyframes(track) == [(n, False) for n in range(2, 6)]
    assert follows(track, 0)
    with pytest.raises(ValueError, match="no label named 'bus'"):
        cvat_aa.track_task(
            cvat_client, task, ColourTracker(), start_shapes=[{**given[0], "label": "bus"}]
        )
    with pytest.raises(ValueError, match="polygon, which the function cannot track"):
        cvat_aa.track_task(
            cvat_client,
            task,
            ColourTracker(),
            start_shapes=[{**given[0], "type": "polygon", "points": [1, 1, 5, 1, 5, 5]}],
        )


def test_a_task_without_shapes_to_start_from_says_what_to_do(cvat_server, cvat_client):
    task = make_task(cvat_server, 3)
    seed(cvat_server, task, (0, 1, "car"))
    with pytest.raises(ValueError, match="no shape to start tracking from.*on frame 0"):
        cvat_aa.track_task(cvat_client, task, ColourTracker())


def test_a_detection_function_is_refused_with_what_to_use_instead(cvat_server, cvat_client):
    task = make_task(cvat_server, 2)
    seed(cvat_server, task, (0, 0, "car"))

    class Boxes:
        spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])

        def detect(self, context, image):
            return []

    with pytest.raises(cvat_aa.BadFunctionError, match="not a tracking function.*annotate"):
        cvat_aa.track_task(cvat_client, task, Boxes())
    assert tracks(cvat_server, task) == []


def test_a_dry_run_tracks_uploads_nothing_and_needs_no_lock(cvat_server, cvat_client):
    task = make_task(cvat_server, 5)
    seed(cvat_server, task, (0, 0, "car"))
    server = normalize_server_url(cvat_server.url)
    with RunLock.acquire(server, task, what=f"task {task}", function="other"):
        summary = cvat_aa.track_task(cvat_client, task, ColourTracker(), dry_run=True)
    assert (summary.tracks, summary.keyframes, summary.dry_run) == (1, 5, True)
    assert "dry run, nothing uploaded" in summary.format()
    assert tracks(cvat_server, task) == []


def test_a_job_run_tracks_over_the_jobs_frames_into_the_job(cvat_server, cvat_client):
    task = make_task(cvat_server, 8, segment_size=4)
    seed(cvat_server, task, (0, 4, "car"))
    second = cvat_server.jobs(task)[1]["id"]

    cvat_aa.track_job(cvat_client, second, ColourTracker())

    [track] = tracks(cvat_server, task)
    assert keyframes(track) == [(n, False) for n in range(4, 8)]
    assert follows(track, 0)


# --- data safety -----------------------------------------------------------------------------


def test_a_run_on_a_task_another_run_holds_is_refused(cvat_server, cvat_client):
    task = make_task(cvat_server, 3)
    seed(cvat_server, task, (0, 0, "car"))
    server = normalize_server_url(cvat_server.url)
    with (
        RunLock.acquire(server, task, what=f"task {task}", function="other_function"),
        pytest.raises(RunInProgressError, match="other_function"),
    ):
        cvat_aa.track_task(cvat_client, task, ColourTracker())
    assert tracks(cvat_server, task) == []


def failing_at(frame: int, path):
    """Frames of ``path`` whose frame ``frame`` has a white top-left pixel: ColourTracker
    fails there."""

    def images(count: int, squares: int = 2) -> list[PIL.Image.Image]:
        result = frames(count, squares, path)
        pixels = np.asarray(result[frame]).copy()
        pixels[0, 0] = (255, 255, 255)
        result[frame] = PIL.Image.fromarray(pixels)
        return result

    return images


def test_a_failed_run_removes_the_tracks_it_uploaded_and_nothing_else(cvat_server, cvat_client):
    # Square 0 is lost on frame 5, so its track is uploaded (one track a piece) before the
    # function fails on frame 7. It crosses into the second job: CVAT keeps it as two tracks.
    path = leaves_at(5)
    images = failing_at(7, path)(8)
    task = cvat_server.create_task(
        "tracking", images=images, labels=LABELS, chunk_size=4, segment_size=4
    )
    users = seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"), path=path)
    cvat_server.set_annotations(
        task,
        {
            "shapes": users,
            "tracks": [
                {
                    "frame": 1,
                    "label_id": cvat_server.label_id(task, "car"),
                    "source": "manual",
                    "shapes": [{"type": "rectangle", "frame": 1, "points": [1, 1, 5, 5]}],
                }
            ],
        },
    )
    before = cvat_server.annotations(task)
    uploads = []
    create = Uploader._send

    def counting(self, piece):
        create(self, piece)
        uploads.append(len(piece.tracks))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Uploader, "_send", counting)
        with pytest.raises(RuntimeError, match="ran out of memory") as caught:
            cvat_aa.track_task(cvat_client, task, ColourTracker(), upload_tracks=1)

    assert uploads == [1], "square 0's track was uploaded before the failure"
    assert caught.value.cvat_aa_stopped.removed == 2, "both parts of the track"
    assert cvat_server.annotations(task) == before


def test_a_lost_reply_to_an_upload_of_tracks_does_not_duplicate_them(cvat_server, cvat_client):
    task = make_task(cvat_server, 8, squares=2, segment_size=4)
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"))
    # The first PATCH may be the check that the user may annotate; the next is an upload.
    cvat_server.faults.close_connection_next(2, when="after", method="PATCH")

    cvat_aa.track_task(cvat_client, task, ColourTracker(), retry=FAST_RETRY)

    assert any(
        "action=create" in e.query and e.status is None
        for e in cvat_server.request_log.entries(method="PATCH")
    ), "no upload of tracks lost its reply"
    # Each track crosses into the second job: two parts each, no more.
    parts = tracks(cvat_server, task)
    assert sorted((t["frame"], t["label_id"]) for t in parts) == sorted(
        (f, cvat_server.label_id(task, name)) for f in (0, 4) for name in ("car", "person")
    )


@pytest.mark.parametrize("status", [500, 503])
def test_failed_uploads_of_tracks_are_retried_without_duplicates(cvat_server, cvat_client, status):
    task = make_task(cvat_server, 6, squares=2)
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"))
    cvat_server.faults.fail_next(2, status=status, method="PATCH")

    cvat_aa.track_task(cvat_client, task, ColourTracker(), retry=FAST_RETRY, upload_tracks=1)

    assert len(tracks(cvat_server, task)) == 2


def shape_of(server: TestServer, task: int) -> list[tuple]:
    """What the task's tracks hold, without their ids."""
    names = {label["id"]: label["name"] for label in server.labels(task)}
    return sorted(
        (
            t["frame"],
            names[t["label_id"]],
            tuple((s["frame"], s["outside"], tuple(s["points"])) for s in t["shapes"]),
        )
        for t in tracks(server, task)
    )


closed = Journal.close


def test_a_killed_run_resumes_to_the_tracks_an_uninterrupted_run_leaves(
    cvat_server, cvat_client, tmp_path, monkeypatch
):
    path = leaves_at(3)
    uninterrupted = make_task(cvat_server, 8, squares=2, path=path)
    seed(cvat_server, uninterrupted, (0, 0, "car"), (1, 0, "person"), path=path)
    cvat_aa.track_task(cvat_client, uninterrupted, ColourTracker())

    task = make_task(cvat_server, 8, squares=2, path=path)
    users = seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"), path=path)
    options = {"journal_dir": tmp_path / "journals", "journal_key": "k", "upload_tracks": 1}

    class Killed(BaseException):
        pass

    # What a SIGKILL between the server's reply and the journal's record leaves: the first
    # piece (square 0's track) is on the server, the journal says it was being sent.
    def piece_uploaded(self, piece, keys):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Journal, "piece_uploaded", piece_uploaded)
        # A killed run neither rolls back nor drops its journal.
        patch.setattr(Uploader, "rollback", lambda self: RollbackReport("task", 0, 0))
        patch.setattr(Journal, "close", lambda self, delete=False: closed(self))
        with pytest.raises(Killed):
            cvat_aa.track_task(cvat_client, task, ColourTracker(), **options)
    assert len(tracks(cvat_server, task)) == 1
    [info] = list_journals(tmp_path / "journals")
    assert info.pieces_in_doubt == 1

    tracker = ColourTracker()
    summary = cvat_aa.track_task(cvat_client, task, tracker, **options)

    assert summary.resumed and summary.tracks_resumed == 1 and summary.tracks == 2
    assert shape_of(cvat_server, task) == shape_of(cvat_server, uninterrupted)
    assert cvat_server.annotations(task)["shapes"] == users
    assert list_journals(tmp_path / "journals") == []


def test_a_resumed_run_tracks_only_the_objects_it_had_not_uploaded(
    cvat_server, cvat_client, tmp_path, monkeypatch
):
    path = leaves_at(3)
    task = make_task(cvat_server, 8, squares=2, path=path)
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"), path=path)
    options = {"journal_dir": tmp_path / "journals", "journal_key": "k", "upload_tracks": 1}

    class Killed(BaseException):
        pass

    recorded = Journal.piece_uploaded

    def killed_after_the_first(self, piece, keys):
        recorded(self, piece, keys)
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Journal, "piece_uploaded", killed_after_the_first)
        # A killed run neither rolls back nor drops its journal.
        patch.setattr(Uploader, "rollback", lambda self: RollbackReport("task", 0, 0))
        patch.setattr(Journal, "close", lambda self, delete=False: closed(self))
        with pytest.raises(Killed):
            cvat_aa.track_task(cvat_client, task, ColourTracker(), **options)

    tracker = ColourTracker()
    summary = cvat_aa.track_task(cvat_client, task, tracker, **options)
    assert (summary.tracks_resumed, summary.per_label) == (1, {"person": 1})
    assert len(tracks(cvat_server, task)) == 2


def test_the_keyframes_of_a_track_match_the_true_boxes_within_a_pixel(cvat_server, cvat_client):
    task = make_task(cvat_server, 12)
    seed(cvat_server, task, (0, 0, "car"))
    cvat_aa.track_task(cvat_client, task, ColourTracker())
    [track] = tracks(cvat_server, task)
    worst = max(off_by(s["points"], box(0, s["frame"])) for s in track["shapes"])
    assert worst <= 1.0, f"a keyframe is {worst} px off (squares are {SIZE} px)"


def test_the_opencv_tracker_plugin_follows_a_textured_square_through_a_task(
    cvat_server, cvat_client
):
    pytest.importorskip("cvat_aa_opencv_tracker")
    import cv2

    # The plugin's own kind of scene: a blurred texture over a blurred background.
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (240, 320, 3), dtype=np.uint8), (0, 0), 4)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (0, 0), 1.5)
    corners = [(40 + 7 * n, 50 + 5 * n) for n in range(12)]
    images = []
    for x, y in corners:
        pixels = background.copy()
        pixels[y : y + 40, x : x + 40] = texture
        images.append(PIL.Image.fromarray(pixels))
    task = cvat_server.create_task("opencv", images=images, labels=LABELS, chunk_size=4)
    x, y = corners[0]
    cvat_server.set_annotations(
        task,
        {
            "shapes": [
                {
                    "type": "rectangle",
                    "frame": 0,
                    "label_id": cvat_server.label_id(task, "car"),
                    "points": [x, y, x + 40, y + 40],
                }
            ]
        },
    )

    cvat_aa.track_task(cvat_client, task, "opencv-tracker", frames="0-9")

    [track] = tracks(cvat_server, task)
    assert keyframes(track) == [*((n, False) for n in range(10)), (10, True)]
    for shape in track["shapes"][:10]:
        x, y = corners[shape["frame"]]
        assert off_by(shape["points"], [x, y, x + 40, y + 40]) <= 4


# --- replacing the start shapes --------------------------------------------------------------


def test_replacing_removes_exactly_the_start_shapes_once_the_tracks_are_uploaded(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 6, squares=2)
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"), (0, 3, "car"))
    later = [s for s in cvat_server.annotations(task)["shapes"] if s["frame"] == 3]

    summary = cvat_aa.track_task(cvat_client, task, ColourTracker(), replace_start_shapes=True)

    assert summary.replaced == 2 and "2 start shapes replaced" in summary.format()
    assert len(tracks(cvat_server, task)) == 2
    # The shape on frame 3 started no track, so it stays.
    assert cvat_server.annotations(task)["shapes"] == later


def test_replacing_is_refused_for_shapes_given_in_a_file(cvat_server, cvat_client):
    task = make_task(cvat_server, 3)
    given = [{"label": "car", "type": "rectangle", "points": box(0, 0)}]
    with pytest.raises(ValueError, match="nothing to replace"):
        cvat_aa.track_task(
            cvat_client, task, ColourTracker(), start_shapes=given, replace_start_shapes=True
        )


def test_a_dry_run_replaces_nothing(cvat_server, cvat_client):
    task = make_task(cvat_server, 3)
    users = seed(cvat_server, task, (0, 0, "car"))
    summary = cvat_aa.track_task(
        cvat_client, task, ColourTracker(), replace_start_shapes=True, dry_run=True
    )
    assert summary.replaced == 0
    assert cvat_server.annotations(task)["shapes"] == users


def test_a_failure_while_replacing_keeps_the_tracks_and_the_shapes_and_a_rerun_finishes(
    cvat_server, cvat_client, tmp_path, monkeypatch
):
    task = make_task(cvat_server, 5, squares=2)
    users = seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"))
    options = {
        "journal_dir": tmp_path / "journals",
        "journal_key": "k",
        "replace_start_shapes": True,
    }
    delete = AnnotationTarget.delete
    calls = []

    def server_refuses_once(self, keys):
        calls.append(keys)
        if len(calls) == 1:
            raise ApiException(status=400, reason="Bad Request")
        return delete(self, keys)

    with monkeypatch.context() as patch:
        patch.setattr(AnnotationTarget, "delete", server_refuses_once)
        with pytest.raises(ApiException) as caught:
            cvat_aa.track_task(cvat_client, task, ColourTracker(), **options)

    stopped = caught.value.cvat_aa_stopped
    assert stopped.clearing and stopped.removed == 0
    assert len(tracks(cvat_server, task)) == 2, "the tracks stay"
    assert cvat_server.annotations(task)["shapes"] == users, "and so do the shapes"

    summary = cvat_aa.track_task(cvat_client, task, ColourTracker(), **options)
    assert summary.resumed and summary.tracks_resumed == 2 and summary.replaced == 2
    assert len(tracks(cvat_server, task)) == 2, "no track twice"
    assert cvat_server.annotations(task)["shapes"] == []
    assert list_journals(tmp_path / "journals") == []


def test_a_rerun_after_the_start_shapes_were_replaced_finishes_without_tracking_again(
    cvat_server, cvat_client, tmp_path, monkeypatch
):
    task = make_task(cvat_server, 5)
    seed(cvat_server, task, (0, 0, "car"))
    options = {
        "journal_dir": tmp_path / "journals",
        "journal_key": "k",
        "replace_start_shapes": True,
    }

    class Killed(BaseException):
        pass

    # Killed after the start shapes were removed, before the journal was dropped.
    with monkeypatch.context() as patch:
        patch.setattr(Journal, "close", lambda self, delete=False: (_ for _ in ()).throw(Killed))
        with pytest.raises(Killed):
            cvat_aa.track_task(cvat_client, task, ColourTracker(), **options)
    assert cvat_server.annotations(task)["shapes"] == []

    summary = cvat_aa.track_task(cvat_client, task, ColourTracker(), **options)
    assert (summary.tracks, summary.tracks_resumed, summary.frames, summary.replaced) == (
        1,
        1,
        0,
        0,
    )
    assert len(tracks(cvat_server, task)) == 1
    assert list_journals(tmp_path / "journals") == []


def test_a_failed_run_drops_its_journal_and_says_a_rerun_starts_over(
    cvat_server, cvat_client, tmp_path
):
    path = leaves_at(5)
    task = cvat_server.create_task(
        "tracking", images=failing_at(7, path)(8), labels=LABELS, chunk_size=4
    )
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"), path=path)
    with pytest.raises(RuntimeError, match="ran out of memory") as caught:
        cvat_aa.track_task(
            cvat_client, task, ColourTracker(), journal_dir=tmp_path, journal_key="k"
        )
    assert caught.value.cvat_aa_stopped.journal is None
    assert list_journals(tmp_path) == []


def test_a_video_task_is_tracked_past_its_deleted_frames(cvat_server, cvat_client, tmp_path):
    pytest.importorskip("av")
    video = tmp_path / "clip.mkv"
    write_video(video, frames(8))
    task = cvat_server.create_video_task(
        "video", video=video, labels=LABELS, chunk_size=4, deleted_frames=[3]
    )
    seed(cvat_server, task, (0, 0, "car"))

    cvat_aa.track_task(cvat_client, task, ColourTracker(), frames="0-6")

    [track] = tracks(cvat_server, task)
    assert keyframes(track) == [(0, False), (1, False), (2, False), (4, False), (5, False),
                                (6, False), (7, True)]  # fmt: skip
    # Video frames are served as JPEG: the square's edges blur by a pixel or two.
    assert follows(track, 0, tolerance=2)


def test_rollback_finds_and_removes_tracks_whose_reply_a_killed_run_never_got(
    cvat_server, cvat_client, tmp_path, monkeypatch, capsys
):
    from cvat_aa.cli import main

    task = make_task(cvat_server, 8, squares=2, segment_size=4)
    users = seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"))
    before = cvat_server.annotations(task)

    class Killed(BaseException):
        pass

    def piece_uploaded(self, piece, keys):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Journal, "piece_uploaded", piece_uploaded)
        patch.setattr(Uploader, "rollback", lambda self: RollbackReport("task", 0, 0))
        patch.setattr(Journal, "close", lambda self, delete=False: closed(self))
        with pytest.raises(Killed):
            cvat_aa.track_task(
                cvat_client, task, ColourTracker(), journal_dir=tmp_path, journal_key="k"
            )
    # Both tracks, each cut in two at the job boundary, are on the server; the journal
    # only says that they were being sent.
    assert len(tracks(cvat_server, task)) == 4
    [info] = list_journals(tmp_path)
    assert info.pieces_in_doubt == 1 and not info.uploaded

    code = main(
        ["runs", "rollback", info.id, "--journal-dir", str(tmp_path), *cvat_server.cli_args()]
    )
    assert code == 0, capsys.readouterr().err
    assert "Removed the 4 annotations" in capsys.readouterr().out
    assert cvat_server.annotations(task) == before
    assert cvat_server.annotations(task)["shapes"] == users


def kill_a_tracking_run_while_it_sends(
    server: TestServer, client, task: int, journal_dir, *, applied: bool
) -> set[int]:
    """Track the task (both tracks in one piece) and kill the run as a SIGKILL does while the
    piece is being sent: the journal says so, and the server has the tracks (``applied``) or
    never got them. Return the ids of the tracks it left."""

    class Killed(BaseException):
        pass

    with pytest.MonkeyPatch.context() as patch:
        if applied:

            def piece_uploaded(self, piece, keys):
                raise Killed

            patch.setattr(Journal, "piece_uploaded", piece_uploaded)
        else:
            sending = Journal.tracks_sending

            def tracks_sending(self, *args, **kwargs):
                sending(self, *args, **kwargs)
                raise Killed

            patch.setattr(Journal, "tracks_sending", tracks_sending)
        patch.setattr(Uploader, "rollback", lambda self: RollbackReport("task", 0, 0))
        patch.setattr(Journal, "close", lambda self, delete=False: closed(self))
        with pytest.raises(Killed):
            cvat_aa.track_task(
                client, task, ColourTracker(), journal_dir=journal_dir, journal_key="k"
            )
    [info] = list_journals(journal_dir)
    assert info.pieces_in_doubt == 1 and not info.uploaded
    return {t["id"] for t in tracks(server, task)}


@pytest.fixture
def two_tracks_task(cvat_server):
    """Two squares, each with the user's box on frame 0, in a task of two jobs: each track is
    kept as two (one a job)."""
    task = make_task(cvat_server, 8, squares=2, segment_size=4)
    seed(cvat_server, task, (0, 0, "car"), (1, 0, "person"))
    return task


def roll_back(server: TestServer, journal_dir, capsys) -> str:
    from cvat_aa.cli import main

    [info] = list_journals(journal_dir)
    code = main(["runs", "rollback", info.id, "--journal-dir", str(journal_dir),
                 *server.cli_args()])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_rolling_back_a_killed_run_removes_its_tracks_not_a_later_runs_identical_ones(
    cvat_server, cvat_client, two_tracks_task, tmp_path, capsys
):
    task = two_tracks_task
    users = cvat_server.annotations(task)["shapes"]
    killed = kill_a_tracking_run_while_it_sends(
        cvat_server, cvat_client, task, tmp_path, applied=True
    )
    assert len(killed) == 4
    # Another run, from the same boxes with the same function: the same tracks again.
    cvat_aa.track_task(cvat_client, task, ColourTracker())
    later = [t for t in tracks(cvat_server, task) if t["id"] not in killed]
    assert len(later) == 4
    assert len(set(shape_of(cvat_server, task))) == 4, "two copies of each"

    out = roll_back(cvat_server, tmp_path, capsys)

    assert "Removed the 4 annotations" in out
    assert tracks(cvat_server, task) == later
    assert cvat_server.annotations(task)["shapes"] == users


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "never-arrived"])
def test_rolling_back_a_killed_run_keeps_a_later_runs_other_tracks_from_the_same_boxes(
    cvat_server, cvat_client, two_tracks_task, tmp_path, capsys, applied
):
    task = two_tracks_task
    killed = kill_a_tracking_run_while_it_sends(
        cvat_server, cvat_client, task, tmp_path, applied=applied
    )
    # From the same boxes, over fewer frames: tracks that begin alike and end on frame 3.
    cvat_aa.track_task(cvat_client, task, ColourTracker(), frames="0-2")
    later = [t for t in tracks(cvat_server, task) if t["id"] not in killed]
    assert len(later) == 2

    out = roll_back(cvat_server, tmp_path, capsys)

    assert f"Removed the {len(killed)} annotations" in out
    assert tracks(cvat_server, task) == later


def test_a_resumed_run_records_its_tracks_in_doubt_not_a_later_runs_identical_ones(
    cvat_server, cvat_client, two_tracks_task, tmp_path, monkeypatch
):
    task = two_tracks_task
    killed = kill_a_tracking_run_while_it_sends(
        cvat_server, cvat_client, task, tmp_path, applied=True
    )
    cvat_aa.track_task(cvat_client, task, ColourTracker())
    recorded = []
    record = Journal.piece_uploaded

    def piece_uploaded(self, piece, keys):
        recorded.extend(keys)
        record(self, piece, keys)

    monkeypatch.setattr(Journal, "piece_uploaded", piece_uploaded)
    summary = cvat_aa.track_task(
        cvat_client, task, ColourTracker(), journal_dir=tmp_path, journal_key="k"
    )

    assert summary.resumed and summary.tracks_resumed == 2
    assert sorted(recorded) == sorted(("track", i) for i in killed)
    assert len(tracks(cvat_server, task)) == 8


def test_rolling_back_refuses_when_a_later_run_left_tracks_that_are_only_partly_the_killed_runs(
    cvat_server, cvat_client, two_tracks_task, tmp_path, capsys
):
    from cvat_aa.cli import main

    task = two_tracks_task
    kill_a_tracking_run_while_it_sends(cvat_server, cvat_client, task, tmp_path, applied=False)
    # Tracks like the killed run's up to the job boundary, which end on frame 6: all of the
    # piece or none of it would be there had it arrived, never a part.
    cvat_aa.track_task(cvat_client, task, ColourTracker(), frames="0-5")
    before = cvat_server.annotations(task)

    [info] = list_journals(tmp_path)
    code = main(["runs", "rollback", info.id, "--journal-dir", str(tmp_path),
                 *cvat_server.cli_args()])  # fmt: skip

    assert code != 0
    err = capsys.readouterr().err
    assert "2 of the 4 tracks this run was sending" in err and "'cvat-aa runs forget'" in err
    assert cvat_server.annotations(task) == before, "nothing removed"


def test_a_given_start_shape_on_a_frame_not_tracked_is_refused(cvat_server, cvat_client):
    task = make_task(cvat_server, 6)
    given = [{"label": "car", "frame": 5, "type": "rectangle", "points": box(0, 5)}]
    with pytest.raises(ValueError, match="on frame 5 .* is not on a frame tracked .*frames 0-3"):
        cvat_aa.track_task(cvat_client, task, ColourTracker(), start_shapes=given, frames="0-3")
