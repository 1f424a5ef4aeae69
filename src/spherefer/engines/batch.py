"""Many inputs in one go: what ``spherefer predict`` runs over its files, folders and cameras.

:func:`predict_crops` classifies aligned face crops one file at a time;
:func:`analyze_sources` finds, aligns, checks and classifies every face of photos,
video files and webcams, hands each photo's or frame's faces to a callback and writes
annotated copies. An input that cannot be read (missing, corrupt, too large to decode,
a camera that cannot be opened) is reported on stderr and skipped, and the others go
on; :func:`predict_crops` yields its error, :func:`analyze_sources` returns the inputs
that were skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spherefer.core.labels import Prediction, counted
from spherefer.face import (
    DEFAULT_DETECTOR,
    DETECT_EVERY,
    FaceRecord,
    QualityConfig,
    draw_faces,
    get_detector,
    image_to_rgb,
)
from spherefer.runtime.recognizer import Recognizer
from spherefer.runtime.samples import UNREADABLE
from spherefer.runtime.video import WRITE_CODECS, VideoSource, VideoWriter, is_video

__all__ = [
    "ANNOTATION_SUFFIXES",
    "VideoOptions",
    "FacesCallback",
    "annotation_path",
    "source_name",
    "predict_crops",
    "analyze_sources",
]

ANNOTATION_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""Suffixes an annotated photo keeps; any other becomes .png."""

FacesCallback = Callable[[str, list[FaceRecord], "int | None", "float | None"], None]
"""Called with (source name, faces, frame index, time in seconds) for each photo (frame and time None) and analysed
frame."""


@dataclass(frozen=True)
class VideoOptions:
    """How videos and webcams are analysed: temporal ``smoothing``, every ``every``-th frame,
    at most ``max_frames`` frames, with a progress bar per video (``progress``), centers
    adapting to the stream's faces (``adapt``), a full face search every ``detect_every`` frames
    and the faces followed between searches."""

    smoothing: bool = True
    adapt: bool = False
    every: int = 1
    max_frames: int | None = None
    progress: bool = True
    detect_every: int = DETECT_EVERY


def annotation_path(
    folder: Path, source: Path, taken: set[str], suffixes: tuple[str, ...] = ANNOTATION_SUFFIXES, default: str = ".png"
) -> Path:
    """``folder/<source's file name>``: only the base name of the input is used; a suffix
    not in ``suffixes`` becomes ``default``; a name already written in this run, or the
    source itself, gets a -1, -2, ... suffix."""
    name = source.name if source.name not in ("", ".", "..") else f"image{default}"
    stem, suffix = Path(name).stem, Path(name).suffix
    if suffix.lower() not in suffixes:
        suffix = default
    candidate, number = f"{stem}{suffix}", 0
    while candidate in taken or (folder / candidate).resolve() == source.resolve():
        number += 1
        candidate = f"{stem}-{number}{suffix}"
    taken.add(candidate)
    return folder / candidate


def source_name(source: Path | int) -> str:
    """How an input is named in messages: its path, or ``camera N``."""
    return f"camera {source}" if isinstance(source, int) else str(source)


def predict_crops(
    recognizer: Recognizer, files: Iterable[Path], threshold: float | None = None
) -> Iterator[tuple[Path, Prediction | Exception]]:
    """Each aligned face crop with its prediction, or with the error that kept it from being read."""
    for path in files:
        try:
            [prediction] = recognizer.predict(path, threshold=threshold)
        except UNREADABLE as err:
            yield path, err
            continue
        yield path, prediction


def analyze_sources(
    recognizer: Recognizer,
    sources: list[Path | int],
    on_faces: FacesCallback,
    detector: str = DEFAULT_DETECTOR,
    threshold: float | None = None,
    quality: QualityConfig | None = None,
    annotate_dir: Path | None = None,
    progress: bool = False,
    video: VideoOptions = VideoOptions(),
) -> list[Path | int]:
    """Detect, align, check and classify every face of every photo, video file and webcam
    (an int) in ``sources``, calling ``on_faces`` once per photo and analysed frame; with
    ``annotate_dir``, write a copy of each with its faces drawn there
    (:func:`annotation_path`). Returns the sources that could not be read (each reported
    on stderr as it was skipped)."""
    from tqdm import tqdm

    get_detector(detector)  # fail now, once, if the detector's files are missing
    if annotate_dir is not None:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    failures: list[Path | int] = []
    bar = tqdm(sources, unit="file", file=sys.stderr, disable=True if not progress else None, dynamic_ncols=True)
    for source in bar:
        if isinstance(source, int) or is_video(source):
            target = None
            if annotate_dir is not None:
                named = Path(f"webcam{source}.mp4") if isinstance(source, int) else source
                target = annotation_path(annotate_dir, named, taken, tuple(WRITE_CODECS), ".mp4")
            try:
                _analyze_video(recognizer, source, detector, threshold, quality, video, target, on_faces, bar)
            except BrokenPipeError:
                raise
            except UNREADABLE as err:
                failures.append(source)
                bar.write(f"skipped {source_name(source)}: {err}", file=sys.stderr)
            continue
        try:
            rgb = image_to_rgb(source)
            records = recognizer.analyze(rgb, detector=detector, threshold=threshold, quality=quality)
        except UNREADABLE as err:
            failures.append(source)
            bar.write(f"skipped {source}: {err}", file=sys.stderr)
            continue
        on_faces(str(source), records, None, None)
        if annotate_dir is not None:
            target = annotation_path(annotate_dir, source, taken)
            options: dict[str, Any] = {"quality": 92} if target.suffix.lower() in (".jpg", ".jpeg") else {}
            draw_faces(rgb, records).save(target, **options)
    bar.close()
    return failures


def _analyze_video(
    recognizer: Recognizer,
    source: Path | int,
    detector: str,
    threshold: float | None,
    quality: QualityConfig | None,
    options: VideoOptions,
    annotate: Path | None,
    on_faces: FacesCallback,
    outer: Any,
) -> None:
    """One video file or webcam: every analysed frame to ``on_faces``, an annotated copy
    (same size; same frame rate when every frame is analysed), a progress bar over frames.
    Ctrl-C ends a webcam normally and a file after writing what was analysed."""
    from tqdm import tqdm

    with VideoSource(source) as stream:
        total = None
        if stream.frame_count is not None:
            total = -(-stream.frame_count // options.every)
        if options.max_frames is not None:
            total = options.max_frames if total is None else min(total, options.max_frames)
        out = VideoWriter(annotate, stream.fps / options.every, stream.size) if annotate is not None else None
        bar = tqdm(
            total=total,
            unit="frame",
            desc=Path(stream.name).name,
            file=sys.stderr,
            leave=False,
            disable=True if not options.progress else None,
            dynamic_ncols=True,
        )
        frames = 0
        try:
            for record in recognizer.analyze_video(
                stream,
                detector=detector,
                threshold=threshold,
                quality=quality,
                smoothing=options.smoothing,
                every=options.every,
                max_frames=options.max_frames,
                adapt=options.adapt,
                detect_every=options.detect_every,
            ):
                on_faces(stream.name, record.faces, record.frame, record.time)
                if out is not None:
                    out.write(np.asarray(draw_faces(record.image, record.faces)))
                frames += 1
                bar.update(1)
        except KeyboardInterrupt:
            outer.write(f"stopped {stream.name} after {counted(frames, 'frame')}", file=sys.stderr)
            if not stream.is_camera:
                raise
        finally:
            bar.close()
            if out is not None:
                out.close()
                if out.frames == 0:
                    out.path.unlink(missing_ok=True)
        if out is not None:
            outer.write(f"wrote {annotate} ({counted(frames, 'frame')})", file=sys.stderr)
