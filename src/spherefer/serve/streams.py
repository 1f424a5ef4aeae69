"""Frames of one client's stream (a webcam in the browser app), sent one request at a time: the faces
of one frame are followed into the next (:class:`~spherefer.face.follow.FaceFollower`) instead of
searched for anew, so that a webcam costs the service about what embedding its faces costs.

A client names its stream (``/v1/predict?stream=ID``); the service keeps the followers of the
``capacity`` streams used last, per profile, and forgets the others (a forgotten stream's next frame is
simply searched in full).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from spherefer.face import DETECT_EVERY, FaceFollower

__all__ = ["STREAM_PATTERN", "FollowedStreams"]

STREAM_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""What a stream id may be: 1-64 letters, digits, _ or -."""


class FollowedStreams:
    """The face followers of the clients' streams, by profile, stream id and detector."""

    def __init__(self, capacity: int = 64, detect_every: int = DETECT_EVERY) -> None:
        self.capacity = capacity
        self.detect_every = detect_every
        self._followers: OrderedDict[tuple[str, str, str], tuple[FaceFollower, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def follower(self, profile: str, stream: str, detector: str) -> Iterator[FaceFollower]:
        """The stream's follower, held for the ``with`` block (one frame of a stream at a time)."""
        key = (profile, stream, detector)
        with self._lock:
            if key not in self._followers:
                self._followers[key] = (FaceFollower(detector, self.detect_every), threading.Lock())
                while len(self._followers) > self.capacity:
                    self._followers.popitem(last=False)
            self._followers.move_to_end(key)
            follower, lock = self._followers[key]
        with lock:
            yield follower

    def __len__(self) -> int:
        return len(self._followers)
