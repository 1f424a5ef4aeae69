"""Videos and webcams through a recognizer: faces followed across frames, labels smoothed,
centers optionally adapted to the stream (what :meth:`Recognizer.analyze_video
<spherefer.runtime.recognizer.Recognizer.analyze_video>` runs)."""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from spherefer.bank.adapt import OnlineAdapter
from spherefer.bank.centers import CenterBank
from spherefer.bank.unknown import FaceDensity
from spherefer.core.labels import Classification
from spherefer.face import (
    DEFAULT_DETECTOR,
    DETECT_EVERY,
    DetectedFace,
    FaceDetector,
    FaceFollower,
    FaceRecord,
    QualityConfig,
)
from spherefer.runtime.tracking import FaceTracker, LabelSmoother, SmoothingConfig
from spherefer.runtime.video import FrameRecord, VideoSource


class FrameAnalyzer(Protocol):
    """What a stream needs of a recognizer (:class:`~spherefer.runtime.recognizer.Recognizer` has it all)."""

    bank: CenterBank
    density: FaceDensity | None

    def with_bank(self, bank: CenterBank) -> FrameAnalyzer: ...

    def analyze_faces(
        self, rgb: np.ndarray, faces: Sequence[DetectedFace], threshold: float | None, quality: QualityConfig | None
    ) -> list[FaceRecord]: ...

    def classify(self, embeddings: np.ndarray, threshold: float | None = None) -> Classification: ...

    def unknown_scores(self, embeddings: np.ndarray) -> np.ndarray: ...


__all__ = ["FrameAnalyzer", "analyze_video"]


def analyze_video(
    recognizer: FrameAnalyzer,
    source: str | os.PathLike[str] | int | VideoSource,
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    threshold: float | None = None,
    quality: QualityConfig | None = None,
    smoothing: bool | SmoothingConfig = True,
    every: int = 1,
    max_frames: int | None = None,
    tracker: FaceTracker | None = None,
    adapt: bool = False,
    detect_every: int = DETECT_EVERY,
) -> Iterator[FrameRecord]:
    """Every ``every``-th frame of a video file, a webcam (an integer index) or an open
    :class:`~spherefer.runtime.video.VideoSource`, analysed like a photo by
    :meth:`~spherefer.runtime.recognizer.Recognizer.analyze`:
    yields one :class:`~spherefer.runtime.video.FrameRecord` (frame index, time, faces, image)
    per analysed frame, at most ``max_frames`` of them.

    Faces are searched for on the first frame and every ``detect_every`` frames, and followed from
    frame to frame between searches (:class:`~spherefer.face.follow.FaceFollower`: a face entering the
    picture is found at most ``detect_every - 1`` frames late; ``detect_every=1`` searches every frame).
    They are tracked by ``tracker`` (default :class:`FaceTracker`;
    its ``max_age`` counts analysed frames): each
    :class:`~spherefer.face.FaceRecord` has a ``track`` id. With ``smoothing``
    (on by default; True means :class:`SmoothingConfig`'s defaults) each track's
    embedding is averaged over frames and its label changes only with hysteresis
    (:mod:`spherefer.runtime.tracking` gives the exact rule): ``prediction`` is then the
    smoothed result and ``raw_prediction`` the frame's own. Files that cannot be
    opened or decoded raise ``ValueError`` (on the first frame); a source opened
    here is closed when the generator ends.

    With ``adapt`` the centers adapt to the stream's faces as it runs
    (:class:`~spherefer.bank.adapt.OnlineAdapter`: every 100 accepted faces, on the last 600,
    always from the bank as it was when the stream began); this recognizer's bank is not
    changed.

    Each frame embeds only a few crops, for which one thread is fastest
    (``load_model(..., threads=1)``, as ``spherefer predict`` does).
    """
    config = SmoothingConfig() if smoothing is True else (smoothing or None)
    owned = not isinstance(source, VideoSource)
    video = source if isinstance(source, VideoSource) else VideoSource(source)
    tracker = tracker if tracker is not None else FaceTracker()
    follower = FaceFollower(detector, detect_every)
    worker = recognizer.with_bank(copy.deepcopy(recognizer.bank)) if adapt else recognizer
    adapter = OnlineAdapter(worker.bank, worker.density) if adapt else None
    smoother = (
        LabelSmoother.from_bank(worker.bank, threshold, config, _one_score(worker)) if config is not None else None
    )
    try:
        for frame in video.frames(every=every, max_frames=max_frames):
            records = worker.analyze_faces(frame.rgb, follower.faces(frame.rgb), threshold, quality)
            for record, track in zip(records, tracker.update([record.box for record in records])):
                record.track = track
            if adapter is not None:
                known = [
                    r.embedding
                    for r in records
                    if r.embedding is not None and r.prediction is not None and not r.prediction.is_unknown
                ]
                if known:
                    adapter.add(np.stack(known))  # may adapt the bank, or put it back to where the stream began
                    if smoother is not None:
                        smoother.follow(worker.bank)
            if smoother is not None:
                smoother.forget(*tracker.removed)
                for record in records:
                    if record.prediction is not None and record.embedding is not None and record.track is not None:
                        _smooth(worker, record, smoother.update(record.track, record.embedding), threshold)
            yield FrameRecord(frame.index, frame.time, records, frame.rgb)
    finally:
        if owned:
            video.close()


def _one_score(recognizer: FrameAnalyzer) -> Callable[[np.ndarray], float]:
    return lambda embedding: float(recognizer.unknown_scores(embedding[None])[0])


def _smooth(recognizer: FrameAnalyzer, record: FaceRecord, smoothed: Any, threshold: float | None) -> None:
    """Replace a record's prediction by the smoothed one (the held label, the smoothed
    embedding's scores and its cosine to the held class), keeping the frame's own as raw."""
    [prediction] = list(recognizer.classify(smoothed.embedding[None], threshold=threshold))
    cosine = prediction.cosines[smoothed.label] if smoothed.label in prediction.cosines else prediction.cosine
    record.raw_prediction = record.prediction
    record.prediction = dataclasses.replace(prediction, label=smoothed.label, cosine=float(cosine))
