"""The ``spherefer`` command line."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np
import torch
from PIL import Image

from . import __version__
from .centers import NO_FACE
from .face import DETECTORS, LANDMARK_NAMES, DetectorUnavailable, FaceRecord, QualityConfig, draw_faces, get_detector, image_to_rgb
from .images import IMAGE_EXTENSIONS, collect_image_files, example_photo
from .recognizer import Recognizer, editable_bank_path, load_model, resolve_model_path, shipped_models
from .video import VIDEO_EXTENSIONS, WRITE_CODECS, VideoSource, VideoWriter, is_video

MODEL_OPTION = click.option("--model", "model_name", default="default", show_default=True, help="Shipped model name or model folder.")
BANK_OPTION = click.option(
    "--bank", "bank_option", default=None, type=click.Path(path_type=Path),
    help="Center-bank file to use and edit (default: ~/.spherefer/banks/<model>.safetensors for shipped models, the folder's bank otherwise).",
)


def open_model(model_name: str, bank_option: Path | None) -> tuple[Recognizer, Path]:
    """The model with its editable bank (if one was saved) and that bank's path."""
    bank_file = bank_option or editable_bank_path(model_name)
    return load_model(model_name, bank=bank_file if bank_file.is_file() else None), bank_file


class _CleanErrors(click.Group):
    """Turn the library's errors about bad input into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (ValueError, FileNotFoundError, KeyError, DetectorUnavailable) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            click.echo(f"error: {message}", err=True)
            sys.exit(2)


@click.group(cls=_CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spherefer")
def main() -> None:
    """Open-vocabulary facial expression recognition on the hypersphere (LMCL class centers)."""


@main.command()
@MODEL_OPTION
@BANK_OPTION
def info(model_name: str, bank_option: Path | None) -> None:
    """Print the version, the model card and the class list of a model."""
    recognizer, bank_file = open_model(model_name, bank_option)
    folder = resolve_model_path(model_name)
    cfg = recognizer.config
    click.echo(f"spherefer {__version__}")
    click.echo(f"model: {model_name} ({folder})")
    click.echo("status: " + ("trained" if recognizer.trained else "UNTRAINED - random weights, predictions are meaningless"))
    click.echo(
        f"network: {cfg.arch}, input {cfg.input_size}x{cfg.input_size}x{cfg.in_channels}, "
        f"{cfg.embedding_size}-d embedding, head {cfg.head} (s={cfg.scale}, m={cfg.margin})"
    )
    bank = recognizer.bank
    click.echo(f"center bank: {bank_file if bank_file.is_file() else folder / 'bank.safetensors'}")
    click.echo(f"classes ({len(bank)}), unknown below cosine {bank.threshold}:")
    for row in bank.summary():
        threshold = "" if row["threshold"] is None else f", threshold {row['threshold']:.3f}"
        click.echo(f"  {row['name']:<16} {row['origin']}{threshold}")
    card = folder / "MODEL_CARD.md"
    if card.is_file():
        click.echo("")
        click.echo(card.read_text().rstrip())
    others = sorted(set(shipped_models()) - {model_name})
    if others:
        click.echo(f"\nother shipped models: {', '.join(others)}")


@main.command()
@click.option("--config", "config_path", default=None, help="YAML config file or shipped config name (default, paper).")
@click.argument("overrides", nargs=-1)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--plots", is_flag=True, help="Afterwards write the best model's validation faces on the sphere "
              "(plots/val_sphere.png, .html) and its center geometry (plots/geometry.md, angles.png) into the run folder.")
def train(config_path: str | None, overrides: tuple[str, ...], no_progress: bool, plots: bool) -> None:
    """Train a model; OVERRIDES are key=value pairs such as epochs=5 model.margin=0.4.

    Re-running the same command resumes from the run's last checkpoint.
    """
    from .config import load_train_config
    from .train import train as run_training

    config = load_train_config(config_path, overrides)
    run_dir = run_training(config, progress=not no_progress)
    click.echo(f"run folder: {run_dir} (best model: {Path(run_dir) / 'best'})")
    if plots:
        from .viz import center_geometry, render_dataset, write_geometry

        best = load_model(Path(run_dir) / "best")
        data = config.data.train if config.data.folds else config.data.val  # a fold's validation subjects are no spec
        paths = render_dataset(best, data, Path(run_dir) / "plots", stem="val_sphere", title=f"{config.name} on {data}")
        paths += write_geometry(center_geometry(best.bank), Path(run_dir) / "plots", title=f"Center geometry of {config.name}")
        for path in paths:
            click.echo(f"wrote {path}")


@main.command()
@click.option("--config", "config_path", default=None, help="Base YAML config or shipped config name.")
@click.option("--scales", default="20,25,30,35,40", show_default=True, help="Comma-separated values of s.")
@click.option("--margins", default="0.32,0.36,0.40,0.44,0.48", show_default=True, help="Comma-separated values of m.")
@click.option("--eval", "eval_data", multiple=True, required=True, help="FORMAT:PATH[:SPLIT] every cell's best model is evaluated on (repeatable).")
@click.option("--no-progress", is_flag=True)
@click.argument("overrides", nargs=-1)
def grid(config_path: str | None, scales: str, margins: str, eval_data: tuple[str, ...], no_progress: bool, overrides: tuple[str, ...]) -> None:
    """Grid search over the LMCL scale s and margin m (the paper's Table 2).

    Each cell is a resumable run under OUTPUT_DIR/NAME/; writes grid.json, grid.md and grid.png there.
    """
    from .grid import run_grid

    def numbers(text: str, what: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",") if v.strip()]
        except ValueError as err:
            raise ValueError(f"--{what} must be comma-separated numbers, got {text!r}") from err

    result, folder = run_grid(config_path, overrides, numbers(scales, "scales"), numbers(margins, "margins"), eval_data, progress=not no_progress)
    click.echo(result.to_markdown())
    click.echo(f"wrote {folder / 'grid.md'}, {folder / 'grid.png'}, {folder / 'grid.json'}")


@main.command()
def datasets() -> None:
    """List the --data formats (FORMAT:PATH[:SPLIT]) and their splits."""
    from .data import DATASET_FORMATS

    for name, fmt in DATASET_FORMATS.items():
        splits = ", ".join(f"{s}*" if s == fmt.default_split else s for s in fmt.splits) or "(none)"
        click.echo(f"{name:<10} splits: {splits}")
        click.echo(f"{'':<10} {fmt.description}")
    click.echo("(* = default split when the spec names none)")


@main.command()
@click.argument("model_name", metavar="MODEL")
@click.option("--data", "data_specs", multiple=True, required=True, help="FORMAT:PATH[:SPLIT]; repeat for several datasets.")
@click.option("--output", "output_dir", default=None, help="Folder for the JSON, markdown and confusion PNG (default: print only).")
@click.option("--bank", "bank_option", default=None, type=click.Path(path_type=Path), help="Evaluate with this center bank instead of the model's own.")
@click.option("--batch-size", default=512, show_default=True)
@click.option("--plots", is_flag=True, help="Also write <stem>_sphere.png and <stem>_sphere.html (faces and centers on the sphere, as `spherefer visualize`) into --output.")
@click.option("--threshold", type=float, default=None, help="Global cosine threshold for the reported unknown rate (default: the bank's).")
def evaluate(model_name: str, data_specs: tuple[str, ...], output_dir: str | None, bank_option: Path | None, batch_size: int, plots: bool, threshold: float | None) -> None:
    """Accuracy, per-class recall, macro-F1 and confusion of MODEL (name or folder) on --data."""
    from .evaluate import evaluate as run_evaluation

    if plots and output_dir is None:
        raise click.UsageError("--plots writes files: give --output too")
    recognizer = load_model(model_name, bank=bank_option)
    if threshold is not None:
        recognizer.bank.set_threshold(None, threshold)
    for spec in data_specs:
        report = run_evaluation(recognizer, spec, model_name=model_name, batch_size=batch_size)
        click.echo(report.to_markdown())
        if output_dir is not None:
            stem = spec.split(":")[0] + ("_" + spec.split(":")[2] if spec.count(":") == 2 else "")
            for path in report.save(output_dir, stem=stem):
                click.echo(f"wrote {path}")
            if plots:
                from .viz import render_dataset

                for path in render_dataset(recognizer, spec, output_dir, stem=f"{stem}_sphere", batch_size=batch_size,
                                           title=f"{model_name} on {spec}"):
                    click.echo(f"wrote {path}")


@main.command()
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
    own). Unreadable files are reported on stderr and skipped. With --aligned, PATHS
    are face crops, one record per image. Photos and videos are analysed with one
    PyTorch thread (fastest for the few crops of each frame).
    """
    if not paths and not example and webcam is None:
        raise click.UsageError("give image or video files or folders (or --example, --webcam)")
    if aligned and webcam is not None:
        raise click.UsageError("--webcam detects faces; it cannot be combined with --aligned")
    recognizer, _ = open_model(model_name, bank_option)
    files = collect_image_files(paths, IMAGE_EXTENSIONS if aligned else IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
    if example:
        files.append(example_photo())
    if aligned:
        if annotate_dir is not None:
            raise click.UsageError("--annotate draws detected faces; it cannot be combined with --aligned")
        _predict_aligned(recognizer, files, threshold, output_format)
        return
    # One or a few crops per photo or frame: one thread is fastest, and idle OpenMP threads
    # spinning between frames made video ~20x slower on a busy 2-core machine.
    torch.set_num_threads(1)
    video = VideoOptions(smoothing=not no_smoothing, every=every, max_frames=max_frames, progress=not no_progress)
    sources: list[Path | int] = [*files, *([webcam] if webcam is not None else [])]
    _predict_photos(
        recognizer, sources, detector, threshold, QualityConfig(min_face=min_face), output_format, annotate_dir,
        progress=not no_progress and any(path.is_dir() for path in paths), video=video,
    )


def _predict_aligned(recognizer: Recognizer, files: list[Path], threshold: float | None, output_format: str) -> None:
    """One record per aligned face crop."""
    writer = csv.writer(sys.stdout) if output_format == "csv" else None
    if writer:
        writer.writerow(["source", "label", "cosine", *recognizer.bank.names])
    failures = 0
    for path in files:
        try:
            [prediction] = recognizer.predict(path, threshold=threshold)
        except (ValueError, FileNotFoundError) as err:
            failures += 1
            click.echo(f"skipped {path}: {err}", err=True)
            continue
        if writer:
            writer.writerow([str(path), prediction.label, f"{prediction.score:.4f}", *(f"{p:.4f}" for p in prediction.probabilities.values())])
        else:
            record = {"source": str(path), "label": prediction.label, "cosine": round(prediction.score, 4),
                      "probabilities": {k: round(v, 4) for k, v in prediction.probabilities.items()}}
            click.echo(json.dumps(record))
    if failures:
        click.echo(f"{failures} of {len(files)} files could not be read", err=True)


PHOTO_COLUMNS = ["source", "frame", "time", "face", "track", "x0", "y0", "x1", "y1", "detector_score",
                 *(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"),
                 "label", "raw_label", "reason", "cosine", "size", "sharpness", "yaw"]
"""CSV columns of whole-photo and video predictions, followed by one probability column per class."""


def _photo_rows(source: str, records: list[FaceRecord], frame: int | None = None, time: float | None = None) -> list[dict[str, object]]:
    """JSON-ready records of one photo or video frame: one per face, or one ``no_face`` record."""
    where = {"source": source, "frame": frame, "time": None if time is None else round(time, 3)}
    if not records:
        return [{**where, "face": None, "track": None, "box": None, "landmarks": None, "detector_score": None,
                 "label": NO_FACE, "raw_label": NO_FACE, "reason": "no face found", "cosine": None, "probabilities": None, "quality": None}]
    return [{**where, **record.to_dict()} for record in records]


def _csv_row(row: dict[str, object], names: list[str]) -> list[object]:
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


_ANNOTATION_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _annotation_path(folder: Path, source: Path, taken: set[str], suffixes: tuple[str, ...] = _ANNOTATION_SUFFIXES, default: str = ".png") -> Path:
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


@dataclass(frozen=True)
class VideoOptions:
    smoothing: bool = True
    every: int = 1
    max_frames: int | None = None
    progress: bool = True


def _predict_photos(
    recognizer: Recognizer, sources: list[Path | int], detector: str, threshold: float | None, quality: QualityConfig,
    output_format: str, annotate_dir: Path | None, progress: bool, video: VideoOptions = VideoOptions(),
) -> None:
    """Detect, align, check and classify every face of every photo, video frame and
    webcam (an int) in ``sources``; one record per face."""
    from tqdm import tqdm

    get_detector(detector)  # fail now, once, if the detector's files are missing
    names = recognizer.bank.names
    writer = csv.writer(sys.stdout) if output_format == "csv" else None

    def emit(rows: list[dict[str, object]]) -> None:
        for row in rows:
            if writer:
                writer.writerow(_csv_row(row, names))
            else:
                click.echo(json.dumps(row))

    if writer:
        writer.writerow([*PHOTO_COLUMNS, *names])
    if annotate_dir is not None:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    failures = 0
    bar = tqdm(sources, unit="file", file=sys.stderr, disable=True if not progress else None, dynamic_ncols=True)
    for source in bar:
        if isinstance(source, int) or is_video(source):
            target = None
            if annotate_dir is not None:
                named = Path(f"webcam{source}.mp4") if isinstance(source, int) else source
                target = _annotation_path(annotate_dir, named, taken, tuple(WRITE_CODECS), ".mp4")
            try:
                _predict_video(recognizer, source, detector, threshold, quality, video, target, emit, bar)
            except BrokenPipeError:
                raise
            except (ValueError, FileNotFoundError, OSError) as err:
                failures += 1
                bar.write(f"skipped {source if isinstance(source, Path) else f'webcam {source}'}: {err}", file=sys.stderr)
            continue
        try:
            rgb = image_to_rgb(source)
            records = recognizer.analyze(rgb, detector=detector, threshold=threshold, quality=quality)
        except (ValueError, FileNotFoundError, OSError, Image.DecompressionBombError) as err:
            failures += 1
            bar.write(f"skipped {source}: {err}", file=sys.stderr)
            continue
        emit(_photo_rows(str(source), records))
        if annotate_dir is not None:
            target = _annotation_path(annotate_dir, source, taken)
            draw_faces(rgb, records).save(target, **({"quality": 92} if target.suffix.lower() in (".jpg", ".jpeg") else {}))
    bar.close()
    if failures:
        click.echo(f"{failures} of {len(sources)} files could not be read", err=True)


def _predict_video(
    recognizer: Recognizer, source: Path | int, detector: str, threshold: float | None, quality: QualityConfig,
    options: VideoOptions, annotate: Path | None, emit: Callable[[list[dict[str, object]]], None], outer: Any,
) -> None:
    """One video file or webcam: records for every analysed frame, an annotated copy
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
        bar = tqdm(total=total, unit="frame", desc=Path(stream.name).name, file=sys.stderr, leave=False,
                   disable=True if not options.progress else None, dynamic_ncols=True)
        frames = 0
        try:
            for record in recognizer.analyze_video(stream, detector=detector, threshold=threshold, quality=quality,
                                                   smoothing=options.smoothing, every=options.every, max_frames=options.max_frames):
                emit(_photo_rows(stream.name, record.faces, record.frame, record.time))
                if out is not None:
                    out.write(np.asarray(draw_faces(record.image, record.faces)))
                frames += 1
                bar.update(1)
        except KeyboardInterrupt:
            outer.write(f"stopped {stream.name} after {frames} frames", file=sys.stderr)
            if not stream.is_camera:
                raise
        finally:
            bar.close()
            if out is not None:
                out.close()
                if out.frames == 0:
                    out.path.unlink(missing_ok=True)
        if out is not None:
            outer.write(f"wrote {annotate} ({frames} frames)", file=sys.stderr)


@main.command()
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the embedding network to this .onnx file (and its center bank to <name>.bank.safetensors).")
@MODEL_OPTION
@BANK_OPTION
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset version.")
def export(onnx_path: Path, model_name: str, bank_option: Path | None, opset: int) -> None:
    """Export the embedding network to ONNX, with the center bank next to it.

    The graph maps the normalised input, float32 (N, C, S, S) with any batch size N, to
    unit embeddings (N, D); the model config (input size, channels, mean, std) is stored
    in the file's metadata. Classify by cosine against the bank's centers, or embed
    with it through `Recognizer.use_onnx(path)` (a file named model.onnx inside a model
    folder is picked up by `load_model(folder, backend="onnx")`). The export is checked
    against PyTorch on a random batch.
    """
    from .export import export_onnx

    recognizer, _ = open_model(model_name, bank_option)
    result = export_onnx(recognizer, onnx_path, opset=opset)
    cfg = recognizer.config
    click.echo(f"wrote {result.path} (input N x {cfg.in_channels} x {cfg.input_size} x {cfg.input_size}, output N x {cfg.embedding_size})")
    click.echo(f"wrote {result.bank_path} ({len(recognizer.bank)} classes)")
    click.echo(f"max |ONNX Runtime - PyTorch| on a random batch: {result.max_abs_diff:.2e}")


@main.command()
@MODEL_OPTION
@BANK_OPTION
@click.option("--data", "data_spec", required=True, help="Held-out labelled FORMAT:PATH[:SPLIT]; classes the bank lacks count as unknown faces.")
@click.option("--target-far", type=float, default=0.05, show_default=True, help="Share of false matches still accepted.")
@click.option("--min-false", type=int, default=20, show_default=True, help="False matches a class needs for its own threshold.")
@click.option("--dry-run", is_flag=True, help="Report the thresholds without saving them.")
def calibrate(model_name: str, bank_option: Path | None, data_spec: str, target_far: float, min_false: int, dry_run: bool) -> None:
    """Choose the global and per-class cosine thresholds from held-out data and store them in the bank."""
    from .calibrate import calibrate as run_calibration

    recognizer, bank_file = open_model(model_name, bank_option)
    result = run_calibration(recognizer, data_spec, target_far=target_far, min_false=min_false, apply=not dry_run)
    click.echo(result.to_markdown())
    if not dry_run:
        _save_bank(recognizer, bank_file, "stored the thresholds")


def _class_names(values: tuple[str, ...]) -> list[str] | None:
    """--classes given as repeated options and/or comma-separated lists."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


@main.command()
@MODEL_OPTION
@BANK_OPTION
@click.option("--data", "data_spec", required=True, help="FORMAT:PATH[:SPLIT] whose faces are drawn (classes the bank lacks are left out).")
@click.option("--classes", "class_options", multiple=True, help="Only these classes (comma-separated or repeated; default: every class of the bank).")
@click.option("--max-points", type=int, default=2000, show_default=True, help="Draw at most this many faces, a random subset (0: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --max-points draw.")
@click.option("--projection", type=click.Choice(["joint", "between", "linear"]), default="joint", show_default=True,
              help="How embeddings larger than 3-d reach the sphere: uncentered PCA of the faces and centers together "
                   "(joint), or of the centers alone around their mean (between, LDA-like) or through the origin (linear).")
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for sphere.png and sphere.html.")
@click.option("--batch-size", default=512, show_default=True)
def visualize(model_name: str, bank_option: Path | None, data_spec: str, class_options: tuple[str, ...], max_points: int, seed: int,
              projection: str, output_dir: Path, batch_size: int) -> None:
    """Faces and class centers on the unit sphere: a PNG and an interactive offline HTML page.

    Each face's normalised embedding is a dot coloured by class; centers are labelled
    markers (circle: trained, star: enrolled, diamond: composed). Embeddings larger than
    3-d are projected (see --projection) and renormalised; the method, its explained
    variance and how often a face's pictured nearest center is its true one are written
    on both outputs.
    """
    from .viz import check_class_names, render_dataset

    recognizer, _ = open_model(model_name, bank_option)
    classes = check_class_names(recognizer.bank, _class_names(class_options), argument="--classes")
    if max_points < 0:
        raise ValueError(f"--max-points must be 0 (all) or positive, got {max_points}")
    paths = render_dataset(recognizer, data_spec, output_dir, stem="sphere", classes=classes,
                           max_points=max_points or None, seed=seed, method=projection, batch_size=batch_size)
    for path in paths:
        click.echo(f"wrote {path}")


def _compound_option(values: tuple[str, ...]) -> dict[str, list[str]]:
    compounds = {}
    for value in values:
        name, _, parts = value.rpartition("=")
        components = [part.strip() for part in parts.replace("+", ",").split(",") if part.strip()]
        if not name or len(components) != 2:
            raise ValueError(f"--compound takes NAME=A,B (two classes), got {value!r}")
        compounds[name] = components
    return compounds


@main.command()
@MODEL_OPTION
@BANK_OPTION
@click.option("--output", "output_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for geometry.md, geometry.json and angles.png.")
@click.option("--data", "data_spec", default=None, help="FORMAT:PATH[:SPLIT] whose faces give each class's spread around its center.")
@click.option("--compound", "compounds", multiple=True, metavar="NAME=A,B",
              help="Measure class NAME against the arc between classes A and B (classes named A+B are measured anyway).")
@click.option("--batch-size", default=512, show_default=True)
def geometry(model_name: str, bank_option: Path | None, output_dir: Path, data_spec: str | None, compounds: tuple[str, ...], batch_size: int) -> None:
    """Angles between class centers, spread of each class's faces, and where enrolled and compound classes sit.

    All angles are measured in the full embedding space. For a class named A+B (or given
    with --compound) it reports the angle of its center to the great-circle arc from A to
    B and its position along that arc (0 at A, 1 at B).
    """
    from .viz import center_geometry, geometry_markdown, load_faces, write_geometry

    recognizer, _ = open_model(model_name, bank_option)
    embeddings = labels = None
    title = f"Center geometry of {model_name}"
    if data_spec is not None:
        faces = load_faces(recognizer, data_spec, batch_size=batch_size)
        embeddings, labels = faces.embeddings, faces.labels
        title += f" (spread on {data_spec})"
    report = center_geometry(recognizer.bank, embeddings, labels, _compound_option(compounds))
    paths = write_geometry(report, output_dir, title=title)
    click.echo(geometry_markdown(report, title))
    for path in paths:
        click.echo(f"wrote {path}")


@main.command()
@MODEL_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--db", "db_path", default=None,
              help="Database of the profiles' banks: a SQLite file (default: ~/.spherefer/serve/<model>.sqlite3) or a postgresql:// URL.")
@click.option("--max-upload-mb", default=10.0, show_default=True, type=click.FloatRange(0.01, 1024), help="Largest accepted image file.")
@click.option("--max-megapixels", default=25.0, show_default=True, type=click.FloatRange(0.01, 500), help="Largest accepted image, in pixels.")
@click.option("--max-images", default=50, show_default=True, type=click.IntRange(3, 1000), help="Most images in one enrol/update request.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Server processes (they share the database safely).")
def serve(model_name: str, host: str, port: int, db_path: str | None, max_upload_mb: float, max_megapixels: float, max_images: int, workers: int) -> None:
    """Serve the HTTP API (/v1/..., OpenAPI at /docs) and the browser app (/) for MODEL.

    Changes need the API key (header X-API-Key): $SPHEREFER_API_KEY, or the key in
    ~/.spherefer/serve/api_key, created on first start. The key is never printed.
    """
    import os

    import uvicorn

    from .serve import load_api_key, serve_home

    key_source = "$SPHEREFER_API_KEY" if os.environ.get("SPHEREFER_API_KEY") else str(serve_home() / "api_key")
    load_api_key(serve_home() / "api_key")  # create it now, so every worker reads the same key
    os.environ["SPHEREFER_SERVE_MODEL"] = model_name
    limits = {"max_upload_bytes": int(max_upload_mb * 2**20), "max_pixels": int(max_megapixels * 1e6), "max_images": max_images}
    os.environ["SPHEREFER_SERVE_LIMITS"] = json.dumps(limits)
    os.environ.pop("SPHEREFER_SERVE_DB", None)
    if db_path is not None:
        os.environ["SPHEREFER_SERVE_DB"] = db_path
    click.echo(f"spherefer serve: model {model_name}, http://{host}:{port}/ (API docs /docs); write requests need the API key in {key_source}")
    uvicorn.run("spherefer.serve:app_from_environment", factory=True, host=host, port=port, workers=workers, log_level="info")


@main.group()
def classes() -> None:
    """List, enrol, update, compose, remove, rename, reset, export and import expression classes.

    Changes are saved atomically to the editable bank (see --bank); the shipped model's
    files are never changed, and trained classes can always be reset.
    """


def _save_bank(recognizer: Recognizer, bank_file: Path, message: str) -> None:
    recognizer.bank.save(bank_file)
    click.echo(f"{message} (saved {bank_file})")


def _sample_files(inputs: tuple[Path, ...], shots: int | None, seed: int, minimum: int) -> list[Path]:
    import random

    files = collect_image_files(inputs)
    if shots is not None:
        if shots > len(files):
            raise ValueError(f"--shots {shots} but only {len(files)} images were given")
        files = sorted(random.Random(seed).sample(files, shots))
    if len(files) < minimum:
        raise ValueError(f"need at least {minimum} images, got {len(files)} (lower --min-images to enrol from fewer)")
    return files


@classes.command("list")
@MODEL_OPTION
@BANK_OPTION
def classes_list(model_name: str, bank_option: Path | None) -> None:
    """Classes with origin, sample count, updates and own threshold."""
    recognizer, _ = open_model(model_name, bank_option)
    bank = recognizer.bank
    click.echo(f"{'class':<20} {'origin':<9} {'samples':>7} {'updates':>7}  threshold")
    for row in bank.summary():
        threshold = f"{row['threshold']:.3f}" if row["threshold"] is not None else f"{bank.threshold:.3f} (global)"
        click.echo(f"{row['name']:<20} {row['origin']:<9} {row['count']:>7} {row['updates']:>7}  {threshold}")


@classes.command("add")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@MODEL_OPTION
@BANK_OPTION
@click.option("--shots", type=int, default=None, help="Enrol from this many images drawn at random from INPUTS.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --shots draw.")
@click.option("--min-images", type=int, default=3, show_default=True)
@click.option("--threshold", type=float, default=None, help="The class's own threshold (default: estimated from the samples' spread).")
def classes_add(name: str, inputs: tuple[Path, ...], model_name: str, bank_option: Path | None, shots: int | None, seed: int, min_images: int, threshold: float | None) -> None:
    """Enrol a new expression NAME from face crops (files or folders), without training."""
    from .centers import estimate_threshold

    recognizer, bank_file = open_model(model_name, bank_option)
    files = _sample_files(inputs, shots, seed, min_images)
    embeddings = recognizer.embed(files)
    if threshold is None and len(files) >= 3:
        threshold = estimate_threshold(embeddings, ceiling=recognizer.bank.threshold)
    recognizer.bank.add(name, embeddings, threshold=threshold)
    _save_bank(recognizer, bank_file, f"enrolled {name!r} from {len(files)} images, threshold {recognizer.bank.thresholds()[-1]:.3f}")


@classes.command("update")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@MODEL_OPTION
@BANK_OPTION
@click.option("--momentum", type=float, default=0.9, show_default=True, help="Weight kept by the old center at each new instance.")
def classes_update(name: str, inputs: tuple[Path, ...], model_name: str, bank_option: Path | None, momentum: float) -> None:
    """Move the center of NAME towards new instances (moving average on the sphere)."""
    from .centers import angle_degrees

    recognizer, bank_file = open_model(model_name, bank_option)
    before = recognizer.bank.center(name)
    files = _sample_files(inputs, None, 0, 1)
    after = recognizer.bank.update(name, recognizer.embed(files), momentum=momentum)
    moved = angle_degrees(before, after)
    _save_bank(recognizer, bank_file, f"updated {name!r} with {len(files)} images; center moved {moved:.2f} degrees")


@classes.command("compose")
@click.argument("name")
@click.argument("components", nargs=-1, required=True)
@MODEL_OPTION
@BANK_OPTION
@click.option("--weights", default=None, help="Comma-separated positive weights, one per component (default equal).")
def classes_compose(name: str, components: tuple[str, ...], model_name: str, bank_option: Path | None, weights: str | None) -> None:
    """Add NAME as the normalised weighted sum of existing classes (no samples needed)."""
    recognizer, bank_file = open_model(model_name, bank_option)
    values = None if weights is None else [float(w) for w in weights.split(",")]
    recognizer.bank.compose(name, list(components), values)
    _save_bank(recognizer, bank_file, f"composed {name!r} from {', '.join(components)}")


@classes.command("remove")
@click.argument("name")
@MODEL_OPTION
@BANK_OPTION
def classes_remove(name: str, model_name: str, bank_option: Path | None) -> None:
    """Remove class NAME (a trained class can be brought back with reset)."""
    recognizer, bank_file = open_model(model_name, bank_option)
    recognizer.bank.remove(name)
    _save_bank(recognizer, bank_file, f"removed {name!r}")


@classes.command("rename")
@click.argument("old")
@click.argument("new")
@MODEL_OPTION
@BANK_OPTION
def classes_rename(old: str, new: str, model_name: str, bank_option: Path | None) -> None:
    """Rename class OLD to NEW."""
    recognizer, bank_file = open_model(model_name, bank_option)
    recognizer.bank.rename(old, new)
    _save_bank(recognizer, bank_file, f"renamed {old!r} to {new!r}")


@classes.command("reset")
@click.argument("names", nargs=-1)
@MODEL_OPTION
@BANK_OPTION
@click.option("--all", "reset_all", is_flag=True, help="Restore every trained class and center, dropping enrolled classes and per-class thresholds.")
def classes_reset(names: tuple[str, ...], model_name: str, bank_option: Path | None, reset_all: bool) -> None:
    """Restore trained classes NAMES to their trained centers (or everything with --all)."""
    if not names and not reset_all:
        raise ValueError("name the classes to reset, or pass --all")
    recognizer, bank_file = open_model(model_name, bank_option)
    if reset_all:
        recognizer.bank.restore_trained()
    for name in names:
        recognizer.bank.reset(name)
    _save_bank(recognizer, bank_file, "restored the trained classes" if reset_all else f"reset {', '.join(names)}")


@classes.command("export")
@click.argument("destination", type=click.Path(path_type=Path))
@MODEL_OPTION
@BANK_OPTION
def classes_export(destination: Path, model_name: str, bank_option: Path | None) -> None:
    """Write the current center bank to DESTINATION (a .safetensors file)."""
    recognizer, _ = open_model(model_name, bank_option)
    recognizer.bank.save(destination)
    click.echo(f"exported {len(recognizer.bank)} classes to {destination}")


@classes.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@MODEL_OPTION
@BANK_OPTION
def classes_import(source: Path, model_name: str, bank_option: Path | None) -> None:
    """Replace the editable bank by SOURCE (checked against the model first)."""
    from .centers import CenterBank

    recognizer, bank_file = open_model(model_name, bank_option)
    recognizer = Recognizer(recognizer.model, CenterBank.load(source))  # refuses a bank of another embedding size
    _save_bank(recognizer, bank_file, f"imported {len(recognizer.bank)} classes from {source}")


if __name__ == "__main__":
    main()
