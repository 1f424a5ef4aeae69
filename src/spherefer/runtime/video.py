"""Video files and webcams through OpenCV: reading frames, writing annotated videos.

Reading uses ``cv2.VideoCapture`` (FFmpeg inside ``opencv-python-headless``): it decodes
the common containers and codecs (MP4/MOV/MKV with MPEG-4 or H.264, AVI with MJPEG,
XVID or FFV1, WebM with VP8/VP9). Writing uses ``cv2.VideoWriter``, whose FFmpeg build
has no H.264 *encoder*: annotated videos are written with the codec of
:data:`WRITE_CODECS` for their suffix (MPEG-4 Part 2 ``mp4v`` for .mp4/.mov/.mkv/.m4v,
MJPEG for .avi, VP8 for .webm); any other suffix becomes .mp4.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from spherefer.core.errors import InvalidInput
from spherefer.core.native import quiet_native_stderr
from spherefer.face import FaceRecord

__all__ = [
    "VIDEO_EXTENSIONS",
    "WRITE_CODECS",
    "DEFAULT_FPS",
    "is_video",
    "VideoFrame",
    "FrameRecord",
    "VideoSource",
    "VideoWriter",
]

VIDEO_EXTENSIONS = (
    ".mp4",
    ".m4v",
    ".mov",
    ".avi",
    ".mkv",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".3gp",
    ".ts",
    ".mts",
)
"""Suffixes ``spherefer predict`` treats as videos."""

WRITE_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
"""FourCC used to write a video of each suffix (all checked to write and read back with
opencv-python-headless 4.12; its FFmpeg cannot encode H.264)."""

DEFAULT_FPS = 25.0
"""Frame rate assumed when a file or camera reports none."""


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video suffix (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class VideoFrame:
    """One decoded frame: its index in the stream, its time in seconds and its pixels (H, W, 3) RGB."""

    index: int
    time: float
    rgb: np.ndarray


@dataclass
class FrameRecord:
    """Every face of one video frame (:meth:`~spherefer.runtime.recognizer.Recognizer.analyze_video`).

    ``frame`` is the frame's index in the stream (0-based, counting skipped frames),
    ``time`` its time in seconds (frame / fps for files, seconds since the first frame
    for webcams), ``faces`` its :class:`~spherefer.face.FaceRecord` list (largest first,
    each with a ``track`` id) and ``image`` the frame itself, (H, W, 3) uint8 RGB.
    """

    frame: int
    time: float
    faces: list[FaceRecord]
    image: np.ndarray


class VideoSource:
    """A video file or a webcam (an integer index), read frame by frame.

    Raises ``ValueError`` when OpenCV cannot open it. Use it as a context manager or
    call :meth:`close`. :attr:`fps` falls back to :data:`DEFAULT_FPS`,
    :attr:`frame_count` is None when unknown (webcams, some containers).
    """

    def __init__(self, source: str | os.PathLike[str] | int) -> None:
        self.is_camera = isinstance(source, (int, np.integer)) and not isinstance(source, bool)
        if isinstance(source, (int, np.integer)) and self.is_camera:
            self.name = f"webcam:{int(source)}"
            target: str | int = int(source)
        else:
            assert not isinstance(source, int)
            path = Path(source).expanduser()
            self.name = str(source)
            if not path.is_file():
                raise FileNotFoundError(f"no such video file: {path}")
            target = str(path)
        with quiet_native_stderr():  # FFmpeg's own complaints; ours follows
            self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            self._capture.release()
            what = f"webcam {target}" if self.is_camera else f"video {self.name}"
            raise InvalidInput(
                f"cannot open {what}: OpenCV cannot decode it (damaged file or unsupported format)"
                if not self.is_camera
                else f"cannot open {what}: no such camera, or it is busy"
            )
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0.0 < fps < 1000.0 else DEFAULT_FPS
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: int | None = count if count > 0 and not self.is_camera else None
        self.size = (
            int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._capture.release()

    def frames(self, every: int = 1, max_frames: int | None = None) -> Iterator[VideoFrame]:
        """Every ``every``-th frame (the others are skipped without decoding), at most
        ``max_frames`` of them. Raises ``ValueError`` when not even the first frame
        can be decoded; a stream that breaks off later simply ends."""
        if every < 1:
            raise InvalidInput(f"every must be at least 1, got {every}")
        index, produced, start = 0, 0, None
        while max_frames is None or produced < max_frames:
            if index % every:
                with quiet_native_stderr():
                    grabbed = self._capture.grab()
                if not grabbed:
                    return
                index += 1
                continue
            with quiet_native_stderr():
                ok, bgr = self._capture.read()
            if not ok or bgr is None:
                if index == 0:
                    raise InvalidInput(f"cannot read {self.name}: no frame could be decoded")
                return
            now = time.monotonic()
            if start is None:
                start = now
            stamp = now - start if self.is_camera else index / self.fps
            if bgr.ndim == 2:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
            else:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
            yield VideoFrame(index, stamp, rgb)
            produced += 1
            index += 1


class VideoWriter:
    """Write RGB frames of one size to ``path`` with the codec :data:`WRITE_CODECS` gives
    its suffix; ``ValueError`` when the suffix has no codec or OpenCV cannot open the writer."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        codec = WRITE_CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise InvalidInput(f"cannot write video {self.path}: use one of {', '.join(WRITE_CODECS)}")
        self.size = (int(size[0]), int(size[1]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*codec)  # type: ignore[attr-defined]
        with quiet_native_stderr():
            self._writer = cv2.VideoWriter(str(self.path), fourcc, float(fps), self.size)
        if not self._writer.isOpened():
            raise InvalidInput(f"cannot write video {self.path}: OpenCV could not open a {codec} writer")
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        rgb = np.asarray(rgb)
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise InvalidInput(f"frame is {rgb.shape[1]}x{rgb.shape[0]}, the video {self.size[0]}x{self.size[1]}")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
