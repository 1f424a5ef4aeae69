"""Faces across the frames of a video, for the price of a look per face instead of a full search.

A full search (:func:`~spherefer.face.detect.detect_faces`: YuNet over the enlarged frame, then
BlazeFace to confirm each candidate and place its landmarks) costs several times what embedding a
face does. In a video a face is almost where it was one frame before, so :class:`FaceFollower`
runs the full search only

- on the first frame, and every ``detect_every`` frames after the last full search, so that a face
  entering the picture is found at most ``detect_every - 1`` frames after it could have been;
- on a frame where no face is being followed;
- on a frame where a followed face is lost (turned away, covered, left the picture) or two
  followed faces end up on one (faces crossing), so that the faces still there are found anew;

and in every frame finds each followed face again with the detector's
:meth:`~spherefer.face.interface.FollowingDetector.follow`: one BlazeFace look in a view centred
where the face should be now (where it was, moved as it moved the frame before), which also
refreshes its landmarks. A full search then only confirms the followed faces (one it does not find
is dropped) and adds the new ones: a face's landmarks come from the same kind of look in every frame,
so its label does not jump when a search comes round. A detector without ``follow`` (``haar``)
searches every frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.face.blazeface import overlaps_any
from spherefer.face.detect import DEFAULT_DETECTOR, detect_faces, get_detector
from spherefer.face.interface import FaceDetector
from spherefer.face.results import DetectedFace

__all__ = ["DETECT_EVERY", "FaceFollower", "FollowStats"]

DETECT_EVERY = 5
"""Frames between full searches while faces are followed: a new face is found at most 4 frames late."""


@dataclass
class FollowStats:
    """What a follower did so far: frames with a full search, and faces found by following."""

    frames: int = 0
    searches: int = 0
    followed: int = 0


class FaceFollower:
    """The faces of each frame of one stream, largest first (see the module docstring).

    ``detect_every=1`` searches every frame (as a photo is searched). One follower serves one
    stream: it remembers the faces of the frame before.
    """

    def __init__(self, detector: str | FaceDetector = DEFAULT_DETECTOR, detect_every: int = DETECT_EVERY) -> None:
        if int(detect_every) < 1:
            raise InvalidInput(f"detect_every must be at least 1 (a full search every frame), got {detect_every}")
        self.detector = get_detector(detector)
        self.detect_every = int(detect_every)
        self.stats = FollowStats()
        self._faces: list[DetectedFace] = []
        self._motion: list[np.ndarray] = []  # each followed face's move over the frame before, (dx, dy)
        self._since_search = 0

    def faces(self, rgb: np.ndarray) -> list[DetectedFace]:
        """The faces in this frame (an (H, W, 3) uint8 RGB image), largest first."""
        self.stats.frames += 1
        previous = self._faces
        if self.detect_every == 1 or not hasattr(self.detector, "follow"):
            found = detect_faces(rgb, self.detector)
            self.stats.searches += 1
        else:
            followed = self._follow(rgb)
            present = [face for face in followed if face is not None]
            if (
                not followed
                or len(present) < len(followed)
                or _merged(present)
                or self._since_search >= self.detect_every
            ):
                found = self._search(rgb, present)
            else:
                found = present
                self._since_search += 1
                self.stats.followed += len(found)
        self._faces = sorted(found, key=lambda face: -face.area)
        self._motion = [_move_of(face, previous) for face in self._faces]
        return list(self._faces)

    def _follow(self, rgb: np.ndarray) -> list[DetectedFace | None]:
        """Each followed face found again (None where it is lost)."""
        found: list[DetectedFace | None] = []
        for face, move in zip(self._faces, self._motion):
            expected = face.shifted(float(move[0]), float(move[1]))
            again = self.detector.follow(rgb, expected)  # type: ignore[attr-defined]
            found.append(None if again is None else replace(again, detector=face.detector))
        return found

    def _search(self, rgb: np.ndarray, followed: list[DetectedFace]) -> list[DetectedFace]:
        """A full search: the followed faces it sees again, as followed (so that a face's landmarks come
        from one kind of look all along the stream; one it does not see is dropped), and the new faces."""
        kept: list[DetectedFace] = []
        for face in followed:
            if not overlaps_any(face, kept):
                kept.append(face)
        seen, new = self.detector.search(rgb, kept)  # type: ignore[attr-defined]
        self._since_search = 1
        self.stats.searches += 1
        return [*seen, *(face for face in new if not overlaps_any(face, seen))]  # a box of another shape


def _merged(faces: list[DetectedFace]) -> bool:
    """Two followed faces ended up on one (faces crossing)."""
    return any(overlaps_any(face, faces[:i]) for i, face in enumerate(faces))


def _move_of(face: DetectedFace, previous: list[DetectedFace]) -> np.ndarray:
    """How far ``face`` moved since the frame before, where it was one of ``previous`` (else nothing)."""
    for before in previous:
        if overlaps_any(face, [before], iou=0.3):
            return _centre(face) - _centre(before)
    return np.zeros(2)


def _centre(face: DetectedFace) -> np.ndarray:
    return np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])
