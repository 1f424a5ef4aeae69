"""``spherefer predict``: faces in photos, videos, cameras and aligned crops, as JSON lines or CSV."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click
import torch

from ..batch import VideoOptions, analyze_sources, predict_crops, source_name
from ..face import DETECTORS, LANDMARK_NAMES, FaceRecord, QualityConfig, get_detector
from ..images import IMAGE_EXTENSIONS, collect_image_files, example_photo
from ..labels import counted, frame_records
from ..recognizer import Recognizer, load_editable_model
from ..video import VIDEO_EXTENSIONS
from .common import BANK_OPTION, MODEL_OPTION

__all__ = ["PHOTO_COLUMNS", "predict", "csv_row"]

PHOTO_COLUMNS = ["source", "frame", "time", "face", "track", "x0", "y0", "x1", "y1", "detector_score",
                 *(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"),
                 "label", "raw_label", "reason", "cosine", "size", "sharpness", "yaw"]
"""CSV columns of whole-photo and video predictions, followed by one probability column per class."""


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@MODEL_OPTION
@BANK_OPTION
@click.option("--aligned", is_flag=True, help="PATHS are aligned face crops: classify each whole image, no face detection.")
@click.option("--detector", type=click.Choice(sorted(DETECTORS)), default="blazeface", show_default=True,
              help="Face detector (haar: OpenCV fallback, misses turned or covered faces).")
@click.option("--threshold", type=float, default=None, help="Cosine below which a face is unknown (default: the bank's).")
@click.option("--min-face", type=float, default=QualityConfig.min_face, show_default=True, help="Faces whose box is smaller (px) are rejected.")
@click.option("--format", "output_format", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--annotate", "annotate_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write a copy of each photo or video with boxes, landmarks and labels drawn to DIR/<file name>.")
@click.option("--example", is_flag=True, help="Also analyse the bundled example photo (a public-domain NASA portrait).")
@click.option("--webcam", type=click.IntRange(min=0), default=None, metavar="INDEX",
              help="Also analyse camera INDEX (0: the first) until Ctrl-C or --max-frames.")
@click.option("--no-smoothing", is_flag=True, help="Videos: report each frame's own label (no embedding averaging, no label hysteresis).")
@click.option("--every", type=click.IntRange(min=1), default=1, show_default=True, help="Videos: analyse every N-th frame only.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Videos: stop after this many analysed frames.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars (shown for folders and videos).")
def predict(
    paths: tuple[Path, ...], model_name: str, bank_option: Path | None, aligned: bool, detector: str, threshold: float | None,
    min_face: float, output_format: str, annotate_dir: Path | None, example: bool, webcam: int | None, no_smoothing: bool,
    every: int, max_frames: int | None, no_progress: bool,
) -> None:
    """Find, align and classify the faces in photos and videos (files or folders, searched
    recursively; videos are told by their suffix: .mp4, .avi, .mov, .mkv, .webm, ...).

    Writes one record per face (largest first): source, frame and time (null for
    images), face index, track id (videos), box, landmarks, label -- a class, `unknown`
    (below the threshold) or `rejected` (a failed quality check, with the reason) --
    raw_label, cosine and probabilities. A photo or video frame without a face gives one
    `no_face` record. In videos faces are tracked across frames and, unless
    --no-smoothing, each track's label is smoothed over time (raw_label is the frame's
    own). Unreadable files (and a camera that cannot be opened) are reported on stderr
    and skipped; the exit status is 1 when nothing could be read at all. With
    --aligned, PATHS are face crops, one record per image. Photos and videos are
    analysed with one PyTorch thread (fastest for the few crops of each frame).
    """
    if not paths and not example and webcam is None:
        raise click.UsageError("give image or video files or folders (or --example, --webcam)")
    if aligned and webcam is not None:
        raise click.UsageError("--webcam detects faces; it cannot be combined with --aligned")
    recognizer, _ = load_editable_model(model_name, bank_option)
    files = collect_image_files(paths, IMAGE_EXTENSIONS if aligned else IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
    if example:
        files.append(example_photo())
    if not files and webcam is None:
        click.echo(f"no image or video files in {', '.join(map(str, paths))}", err=True)
        sys.exit(1)
    if aligned:
        if annotate_dir is not None:
            raise click.UsageError("--annotate draws detected faces; it cannot be combined with --aligned")
        _write_crops(recognizer, files, threshold, output_format)
        return
    # One or a few crops per photo or frame: one thread is fastest, and idle OpenMP threads
    # spinning between frames made video ~20x slower on a busy 2-core machine.
    torch.set_num_threads(1)
    get_detector(detector)  # fail now, before any output, if the detector's files are missing
    names = recognizer.bank.names
    writer = csv.writer(sys.stdout) if output_format == "csv" else None
    if writer:
        writer.writerow([*PHOTO_COLUMNS, *names])

    def emit(source: str, faces: list[FaceRecord], frame: int | None, time: float | None) -> None:
        for row in frame_records(source, [face.to_dict() for face in faces], frame, time):
            if writer:
                writer.writerow(csv_row(row, names))
            else:
                click.echo(json.dumps(row))

    video = VideoOptions(smoothing=not no_smoothing, every=every, max_frames=max_frames, progress=not no_progress)
    sources: list[Path | int] = [*files, *([webcam] if webcam is not None else [])]
    failed = analyze_sources(recognizer, sources, emit, detector, threshold, QualityConfig(min_face=min_face), annotate_dir,
                             progress=not no_progress and any(path.is_dir() for path in paths), video=video)
    _report_failures(failed, sources)


def _write_crops(recognizer: Recognizer, files: list[Path], threshold: float | None, output_format: str) -> None:
    """One record per aligned face crop: source, label, cosine, probabilities."""
    writer = csv.writer(sys.stdout) if output_format == "csv" else None
    if writer:
        writer.writerow(["source", "label", "cosine", *recognizer.bank.names])
    failed: list[Path | int] = []
    for path, prediction in predict_crops(recognizer, files, threshold):
        if isinstance(prediction, Exception):
            failed.append(path)
            click.echo(f"skipped {path}: {prediction}", err=True)
        elif writer:
            writer.writerow([str(path), prediction.label, f"{prediction.score:.4f}", *(f"{p:.4f}" for p in prediction.probabilities.values())])
        else:
            click.echo(json.dumps({"source": str(path), **prediction.to_dict()}))
    _report_failures(failed, list(files))


def _report_failures(failed: list[Path | int], sources: list[Path | int]) -> None:
    """Say on stderr how many files (and which camera) could not be read; exit 1 when none of ``sources`` could."""
    files = [source for source in sources if not isinstance(source, int)]
    failed_files = [source for source in failed if not isinstance(source, int)]
    if failed_files:
        click.echo(f"{len(failed_files)} of {counted(len(files), 'file')} could not be read", err=True)
    for camera in (source for source in failed if isinstance(source, int)):
        click.echo(f"{source_name(camera)} could not be opened", err=True)
    if sources and len(failed) == len(sources):
        sys.exit(1)


def csv_row(row: dict[str, Any], names: list[str]) -> list[object]:
    """A photo or frame record (:func:`spherefer.labels.frame_records`) as a row of :data:`PHOTO_COLUMNS` + one probability per class."""
    def blank(value: object) -> object:
        return "" if value is None else value

    box = row["box"] or [None] * 4
    landmarks = row["landmarks"] or {}
    quality = row["quality"] or {}
    probabilities = row["probabilities"] or {}
    points = [blank((landmarks.get(name) or [None, None])[axis]) for name in LANDMARK_NAMES for axis in (0, 1)]
    return [row["source"], blank(row["frame"]), blank(row["time"]), blank(row["face"]), blank(row["track"]), *map(blank, box),
            blank(row["detector_score"]), *points, row["label"], row["raw_label"], blank(row["reason"]), blank(row["cosine"]),
            *(blank(quality.get(key)) for key in ("size", "sharpness", "yaw")), *(blank(probabilities.get(name)) for name in names)]
