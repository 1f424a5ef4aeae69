"""Following faces across video frames (spherefer.face.follow) on frames made of a real photo: a face
that moves, one that enters while another is followed, one that leaves, and two that cross."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import spherefer
from spherefer.core.errors import InvalidInput
from spherefer.core.images import example_photo
from spherefer.face import DETECT_EVERY, FaceFollower, detect_faces, get_detector
from spherefer.face.blazeface import box_iou
from spherefer.runtime.video import VideoWriter

SIDE = 180


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """The example photo's face with a margin, SIDE x SIDE, and its mirror image."""
    photo = np.asarray(Image.open(example_photo()).convert("RGB"))
    x0, y0, x1, y1 = detect_faces(photo)[0].box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    crop = photo[int(cy - half) : int(cy + half), int(cx - half) : int(cx + half)]
    return cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def frame(*faces: tuple[int, int, np.ndarray]) -> np.ndarray:
    """A 640x480 grey frame with each face's SIDE x SIDE image at (x, y)."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    for x, y, image in faces:
        canvas[y : y + SIDE, x : x + SIDE] = image
    return canvas


def boxes_match(a, b, iou: float = 0.5) -> bool:
    """Every face of ``a`` has one of ``b`` over ``iou``, and the other way round."""
    if len(a) != len(b):
        return False
    return all(box_iou(f.box, np.stack([g.box for g in b])).max() > iou for f in a)


def test_a_moving_face_is_followed_in_every_frame_with_few_searches(portrait: np.ndarray) -> None:
    follower, searcher = FaceFollower(detect_every=5), FaceFollower(detect_every=1)
    for t in range(30):
        rgb = frame((20 + 12 * t, 60 + 2 * t, portrait))
        followed, searched = follower.faces(rgb), searcher.faces(rgb)
        assert len(followed) == 1 and boxes_match(followed, searched, iou=0.7), t
        assert set(followed[0].landmark_names) == set(searched[0].landmark_names)  # landmarks refreshed
    assert follower.stats.searches == 6 and follower.stats.followed == 24  # frames 0, 5, 10, ...
    assert searcher.stats.searches == 30


def test_a_face_entering_while_another_is_followed_is_found_within_the_bound(portrait: np.ndarray) -> None:
    follower = FaceFollower(detect_every=DETECT_EVERY)
    mirror = portrait[:, ::-1].copy()
    entered, found_at = 7, None
    for t in range(20):
        faces = [(40, 60, portrait)] + ([(400, 200, mirror)] if t >= entered else [])
        found = follower.faces(frame(*faces))
        if len(found) == 2 and found_at is None:
            found_at = t
        if found_at is not None:
            assert len(found) == 2, t  # once found, both are followed
    assert found_at is not None and entered <= found_at <= entered + DETECT_EVERY - 1


def test_a_face_that_leaves_is_not_reported_after_it_is_gone(portrait: np.ndarray) -> None:
    follower = FaceFollower(detect_every=10)
    counts = []
    for t in range(16):
        x = 300 + 40 * t  # slides off the right edge: fully out from t = 9
        visible = portrait[:, : max(0, 640 - x)]
        canvas = frame()
        if visible.shape[1]:
            canvas[100 : 100 + SIDE, x : x + visible.shape[1]] = visible
        counts.append(len(follower.faces(canvas)))
    assert counts[:4] == [1, 1, 1, 1]
    assert counts[9:] == [0] * 7  # the lost face made the follower search again: nothing stale is reported


def test_two_faces_crossing_keep_their_tracks(portrait: np.ndarray) -> None:
    mirror = portrait[:, ::-1].copy()
    recognizer = spherefer.load_model("default", threads=1)
    frames = [frame((20 + 20 * t, 20, portrait), (440 - 20 * t, 270, mirror)) for t in range(23)]
    tracks = {"top": set(), "bottom": set()}
    with_follower = run_video(recognizer, frames, detect_every=5)
    with_search = run_video(recognizer, frames, detect_every=1)
    for followed, searched in zip(with_follower, with_search):
        assert len(followed.faces) == 2 and boxes_match(followed.faces, searched.faces)
        for face in followed.faces:
            tracks["top" if face.box[1] < 200 else "bottom"].add(face.track)
    assert len(tracks["top"]) == 1 and len(tracks["bottom"]) == 1 and tracks["top"] != tracks["bottom"]


def run_video(recognizer, frames, detect_every: int):
    """analyze_video over ``frames`` written as an MJPG clip (a real decode, as from a file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.avi"
        with VideoWriter(path, 25.0, (640, 480)) as video:
            for rgb in frames:
                video.write(rgb)
        return list(recognizer.analyze_video(path, detect_every=detect_every))


def test_a_detector_that_cannot_follow_searches_every_frame(portrait: np.ndarray) -> None:
    follower = FaceFollower("haar", detect_every=5)
    for t in range(6):
        follower.faces(frame((100 + 5 * t, 100, portrait)))
    assert not hasattr(get_detector("haar"), "follow") and follower.stats.searches == 6


def test_detect_every_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="detect_every must be at least 1"):
        FaceFollower(detect_every=0)


SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED_PHOTOS.is_dir(), reason="../shared/photos is absent")
def test_followed_faces_are_the_searched_faces_on_real_portraits() -> None:
    """Real portraits moving across the frame: the follower reports the faces a search of every frame
    finds, frame by frame (a search must not add a followed face again under a box of another shape)."""
    for path in sorted(SHARED_PHOTOS.glob("*.jpg")):
        photo = np.asarray(Image.open(path).convert("RGB"))
        found = detect_faces(photo)
        if not found:
            continue
        x0, y0, x1, y1 = found[0].box
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
        crop = photo[max(0, int(cy - half)) : int(cy + half), max(0, int(cx - half)) : int(cx + half)]
        face = cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        follower, searcher = FaceFollower(detect_every=5), FaceFollower(detect_every=1)
        for t in range(60):
            rgb = frame(((20 + 12 * t) % (640 - SIDE), 60 + (2 * t) % 200, face))
            assert boxes_match(follower.faces(rgb), searcher.faces(rgb)), (path.name, t)
