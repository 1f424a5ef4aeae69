"""``spherefer predict``: faces in photos, videos, cameras and aligned crops, as JSON lines or CSV."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from spherefer.cli.common import BANK_OPTION, DETECTOR_OPTION, MODEL_OPTION
from spherefer.cli.records import PHOTO_COLUMNS, csv_row
from spherefer.core.errors import InvalidInput
from spherefer.core.images import IMAGE_EXTENSIONS, collect_image_files, example_photo
from spherefer.core.labels import counted, frame_records
from spherefer.engines.batch import VideoOptions, analyze_sources, predict_crops, source_name
from spherefer.face import DETECT_EVERY, FaceRecord, QualityConfig, get_detector
from spherefer.runtime.loading import load_editable_model
from spherefer.runtime.recognizer import Recognizer
from spherefer.runtime.video import VIDEO_EXTENSIONS, is_video

__all__ = ["predict", "read_path_list"]


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@MODEL_OPTION
@BANK_OPTION
@click.option(
    "--aligned", is_flag=True, help="PATHS are aligned face crops: classify each whole image, no face detection."
)
@DETECTOR_OPTION
@click.option(
    "--threshold",
    type=float,
    default=None,
    callback=lambda _ctx, _param, value: _finite(value),
    help="Unknown score below which a face is unknown (default: the bank's; `spherefer info` says which score).",
)
@click.option(
    "--min-face",
    type=float,
    default=QualityConfig.min_face,
    show_default=True,
    help="Faces whose box is smaller (px) are rejected.",
)
@click.option("--format", "output_format", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option(
    "--annotate",
    "annotate_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write a copy of each photo or video with boxes, landmarks and labels drawn to DIR/<file name>.",
)
@click.option("--example", is_flag=True, help="Also analyse the bundled example photo (a public-domain NASA portrait).")
@click.option(
    "--webcam",
    type=click.IntRange(min=0),
    default=None,
    metavar="INDEX",
    help="Also analyse camera INDEX (0: the first) until Ctrl-C or --max-frames.",
)
@click.option(
    "--no-smoothing",
    is_flag=True,
    help="Videos: report each frame's own label (no embedding averaging, no label hysteresis).",
)
@click.option(
    "--every", type=click.IntRange(min=1), default=1, show_default=True, help="Videos: analyse every N-th frame only."
)
@click.option(
    "--detect-every",
    type=click.IntRange(min=1),
    default=DETECT_EVERY,
    show_default=True,
    help="Videos and webcams: search the whole frame for faces every N frames and follow the faces found between "
    "searches (a new face is found at most N-1 frames late; 1 searches every frame).",
)
@click.option(
    "--adapt",
    "adapt_online",
    is_flag=True,
    help="Videos and webcams: adapt the centers to the stream's faces as it runs (see `spherefer adapt`; the bank is "
    "not saved).",
)
@click.option(
    "--max-frames", type=click.IntRange(min=1), default=None, help="Videos: stop after this many analysed frames."
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bars (shown for folders, lists and videos).")
@click.option(
    "--list",
    "list_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also analyse the files in the `path` column of this .csv or .parquet file (relative to its folder).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: one photo after the other in this process; ray: photos spread over Ray workers (photos only).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="--engine ray: worker processes, one CPU each (default: one per CPU of the Ray cluster).",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="--engine ray: use this Ray cluster (auto, ray://HOST:10001) instead of starting a local one.",
)
def predict(
    paths: tuple[Path, ...],
    model_name: str,
    bank_option: Path | None,
    aligned: bool,
    detector: str,
    threshold: float | None,
    min_face: float,
    output_format: str,
    annotate_dir: Path | None,
    example: bool,
    webcam: int | None,
    no_smoothing: bool,
    adapt_online: bool,
    every: int,
    detect_every: int,
    max_frames: int | None,
    no_progress: bool,
    list_file: Path | None,
    engine: str,
    workers: int | None,
    ray_address: str | None,
) -> None:
    """Find, align and classify the faces in photos and videos (files or folders, searched
    recursively; videos are told by their suffix: .mp4, .avi, .mov, .mkv, .webm, ...).

    Writes one record per face (largest first): source, frame and time (null for
    images), face index, track id (videos), box, landmarks, label -- a class, `unknown`
    (below the threshold) or `rejected` (a failed quality check, with the reason) --
    raw_label, nearest (the class the face is nearest to, also when it is unknown), cosine (to that class's center),
    score (the unknown score the threshold is compared with) and probabilities. A photo or video frame without a face
    gives one
    `no_face` record. In videos faces are tracked across frames and, unless
    --no-smoothing, each track's label is smoothed over time (raw_label is the frame's
    own). Unreadable files (and a camera that cannot be opened) are reported on stderr
    and skipped; the exit status is 1 when nothing could be read at all. With
    --aligned, PATHS are face crops, one record per image. Photos and videos are
    analysed with one thread (fastest for the few crops of each frame).

    With --engine ray, photos (not videos or cameras) are analysed by --workers Ray
    worker processes, each with its own copy of the model, on a local Ray instance
    started for the run or on the cluster at --ray-address; the output is the same, in
    the same order (needs spherefer[ray]). --list FILE adds the files named in the
    `path` column of a CSV or Parquet (needs pyarrow) file to PATHS.
    """
    if not paths and not example and webcam is None and list_file is None:
        raise click.UsageError("give image or video files or folders (or --list, --example, --webcam)")
    if aligned and webcam is not None:
        raise click.UsageError("--webcam detects faces; it cannot be combined with --aligned")
    if engine != "ray" and (workers is not None or ray_address is not None):
        raise click.UsageError("--workers and --ray-address go with --engine ray")
    if engine == "ray":
        for flag, used in (
            ("--aligned", aligned),
            ("--webcam", webcam is not None),
            ("--annotate", annotate_dir is not None),
        ):
            if used:
                raise click.UsageError(f"--engine ray analyses photos only; it cannot be combined with {flag}")
        # without ray: the install hint now, before any work or output
        from spherefer.engines import ray as ray_engine  # noqa: F401
    # One or a few crops per photo or frame: one thread is fastest, and idle threads spinning
    # between frames made video ~20x slower on a busy 2-core machine.
    recognizer, bank_file = load_editable_model(model_name, bank_option, threads=None if aligned else 1)
    files = collect_image_files(paths, IMAGE_EXTENSIONS if aligned else IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
    if list_file is not None:
        files += read_path_list(list_file)
    if example:
        files.append(example_photo())
    if not files and webcam is None:
        click.echo(
            f"no image or video files in {', '.join(map(str, [*paths, *([list_file] if list_file else [])]))}", err=True
        )
        sys.exit(1)
    videos = [path for path in files if is_video(path)] if engine == "ray" else []
    if videos:
        more = f" (and {counted(len(videos) - 1, 'other')})" if len(videos) > 1 else ""
        raise click.UsageError(f"--engine ray analyses photos only; {videos[0]} is a video{more}")
    if aligned:
        if annotate_dir is not None:
            raise click.UsageError("--annotate draws detected faces; it cannot be combined with --aligned")
        _write_crops(recognizer, files, threshold, output_format)
        return
    get_detector(detector)  # fail now, before any output, if the detector's files are missing
    names = recognizer.bank.names
    writer = csv.writer(sys.stdout) if output_format == "csv" else None
    if writer:
        writer.writerow([*PHOTO_COLUMNS, *names])

    def write(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if writer:
                writer.writerow(csv_row(row, names))
            else:
                click.echo(json.dumps(row))

    def emit(source: str, faces: list[FaceRecord], frame: int | None, time: float | None) -> None:
        write(frame_records(source, [face.to_dict() for face in faces], frame, time))

    progress = not no_progress and (list_file is not None or any(path.is_dir() for path in paths))
    quality = QualityConfig(min_face=min_face)
    if engine == "ray":
        bank = bank_file if bank_file.is_file() else None  # the bank load_editable_model used
        _predict_on_ray(model_name, bank, files, write, detector, threshold, quality, workers, ray_address, progress)
        return
    video = VideoOptions(
        smoothing=not no_smoothing,
        every=every,
        max_frames=max_frames,
        progress=not no_progress,
        adapt=adapt_online,
        detect_every=detect_every,
    )
    sources: list[Path | int] = [*files, *([webcam] if webcam is not None else [])]
    failed = analyze_sources(
        recognizer, sources, emit, detector, threshold, quality, annotate_dir, progress=progress, video=video
    )
    _report_failures(failed, sources)


def _predict_on_ray(
    model_name: str,
    bank: Path | None,
    files: list[Path],
    write: Callable[[list[dict[str, Any]]], None],
    detector: str,
    threshold: float | None,
    quality: QualityConfig,
    workers: int | None,
    address: str | None,
    progress: bool,
) -> None:
    """``--engine ray``: the photos' records from :func:`spherefer.engines.ray.predict_with_ray`
    to ``write``, in input order; unreadable photos reported and counted as the local engine does."""
    from tqdm import tqdm

    from spherefer.engines.ray import predict_with_ray

    results = predict_with_ray(model_name, bank, files, detector, threshold, quality, workers, address=address)
    failed: list[Path | int] = []
    try:
        bar = tqdm(
            results,
            total=len(files),
            unit="file",
            file=sys.stderr,
            disable=True if not progress else None,
            dynamic_ncols=True,
        )
        with bar:
            for result in bar:
                if result.error is not None:
                    failed.append(result.path)
                    bar.write(f"skipped {result.path}: {result.error}", file=sys.stderr)
                else:
                    write(result.records)
    except BrokenPipeError:
        raise
    except ConnectionError as err:  # no Ray cluster at --ray-address (or it went away)
        raise click.ClickException(f"Ray: {err}") from err
    _report_failures(failed, list(files))


def read_path_list(file: Path) -> list[Path]:
    """The files named in the ``path`` column of a ``.csv`` file (read with :mod:`csv`) or a
    ``.parquet`` file (needs pyarrow), in order; relative paths are taken from the list's folder."""
    suffix = file.suffix.lower()
    if suffix == ".csv":
        with open(file, newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            if "path" not in (reader.fieldnames or []):
                raise InvalidInput(f"{file} has no `path` column")
            values = [row["path"] for row in reader]
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        if "path" not in pq.read_schema(file).names:
            raise InvalidInput(f"{file} has no `path` column")
        values = pq.read_table(file, columns=["path"]).column("path").to_pylist()
    else:
        raise InvalidInput(f"{file}: a list of files is a .csv or .parquet file with a `path` column")
    empty = [number for number, value in enumerate(values, 1) if not isinstance(value, str) or not value.strip()]
    if empty:
        raise InvalidInput(f"{file}: entry {empty[0]} has no path")
    return [file.parent / Path(value).expanduser() for value in values]


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"a threshold must be a finite number, got {value}")
    return value


def _write_crops(recognizer: Recognizer, files: list[Path], threshold: float | None, output_format: str) -> None:
    """One record per aligned face crop: source, label, nearest class, cosine, unknown score, probabilities."""
    writer = csv.writer(sys.stdout) if output_format == "csv" else None
    if writer:
        writer.writerow(["source", "label", "nearest", "cosine", "score", *recognizer.bank.names])
    failed: list[Path | int] = []
    for path, prediction in predict_crops(recognizer, files, threshold):
        if isinstance(prediction, Exception):
            failed.append(path)
            click.echo(f"skipped {path}: {prediction}", err=True)
        elif writer:
            writer.writerow(
                [
                    str(path),
                    prediction.label,
                    prediction.nearest,
                    f"{prediction.cosine:.4f}",
                    f"{prediction.score:.4f}",
                    *(f"{p:.4f}" for p in prediction.probabilities.values()),
                ]
            )
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
