"""Inference speed of each way to run a model, side by side: aligned crops, whole photos, video.

    python benchmarks/bench_end_to_end.py [--model default] [--threads 1] [--batch 256]
        [--repeats 5] [--output FILE.md]

Measures in one run, every contender on the same thread count (``--threads``): ONNX
Runtime on the int8 graph (when the model ships one: what ``load_model`` runs), on the
fp32 graph, and PyTorch when it is installed (``spherefer[train]``):

* **baseline**: the fp32 ONNX graph on a ready (N, C, S, S) batch, no preprocessing, no
  classification -- every ratio is against this number;
* **aligned crops, batched**: ``Recognizer.predict`` on ``--batch`` uint8 48x48 crops
  (preprocess + embed + cosine to every center);
* **aligned crop, one per call**: ``predict`` of a single crop (median per-face latency);
* **640x480 photo, one face**: ``Recognizer.analyze`` end to end (BlazeFace detection
  and landmark refinement, alignment, quality checks, embedding, classification) on the
  astronaut portrait letterboxed to 640x480, plus ../shared/photos when present
  (median per photo);
* **640x480 video frame**: ``analyze_video`` over a 50-frame MJPG clip of the moving
  astronaut, decode + analyze + tracking + smoothing (mean per frame).

The machine may be shared: the load average is printed, and ratios to the baseline
travel better than absolute numbers. The comparison with the ``fer`` package is
``benchmarks/bench_peer.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import load_recognizer, test_photos, timings
from skimage import data

import spherefer
from spherefer.runtime.video import VideoWriter


def contenders(model: str, threads: int, batch: int) -> dict[str, spherefer.Recognizer]:
    """The ways to run ``model``: int8 and fp32 ONNX graphs (int8 when shipped), PyTorch when installed."""
    found = {"ONNX fp32": spherefer.load_model(model, precision="fp32", threads=threads, batch_size=batch)}
    try:
        found = {"ONNX int8": spherefer.load_model(model, precision="int8", threads=threads, batch_size=batch), **found}
    except FileNotFoundError:
        pass  # no int8 graph for this model
    try:
        import torch
    except ImportError:
        return found
    torch.set_num_threads(threads)
    return {**found, "PyTorch": spherefer.load_model(model, backend="torch", batch_size=batch)}


def moving_clip(path: Path, frames: int = 50) -> Path:
    portrait = cv2.resize(data.astronaut(), (400, 400), interpolation=cv2.INTER_AREA)
    with VideoWriter(path, 25.0, (640, 480)) as writer:
        for t in range(frames):
            canvas = np.full((480, 640, 3), 90, np.uint8)
            x = 60 + 3 * t
            canvas[40:440, x : x + 400] = portrait
            writer.write(canvas)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch and ONNX Runtime threads")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the batched workloads (best of)")
    parser.add_argument("--singles", type=int, default=200, help="single-crop calls (median)")
    parser.add_argument("--photo-repeats", type=int, default=20, help="calls per photo (median)")
    parser.add_argument("--detector", default="blazeface")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args()

    recognizer, what = load_recognizer(args.model)
    backends = contenders(args.model, args.threads, args.batch)
    reference = backends["ONNX fp32"]
    cfg = recognizer.config
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (cfg.input_size, cfg.input_size), dtype=np.uint8) for _ in range(args.batch)]
    batch = reference.preprocess(crops)
    photos = test_photos()

    baseline = min(timings(lambda: reference.embedder(batch), args.repeats)) / args.batch
    rows: list[tuple[str, str, float, float]] = [
        ("baseline: network forward on a ready batch", "ONNX fp32", 1 / baseline, 1e3 * baseline)
    ]
    for backend, rec in backends.items():
        batched = min(timings(lambda: rec.predict(crops), args.repeats)) / args.batch
        rows.append(
            (
                f"aligned {cfg.input_size}x{cfg.input_size} crops, predict in batches of {args.batch}",
                backend,
                1 / batched,
                1e3 * batched,
            )
        )
    for backend, rec in backends.items():
        single = statistics.median(timings(lambda: rec.predict(crops[0]), args.singles))
        rows.append(("aligned crop, predict one per call (median)", backend, 1 / single, 1e3 * single))
    for name, rgb in photos.items():
        faces = len(recognizer.analyze(rgb, detector=args.detector))
        for backend, rec in backends.items():
            photo = statistics.median(timings(lambda: rec.analyze(rgb, detector=args.detector), args.photo_repeats))
            rows.append(
                (
                    f"640x480 photo `{name}` ({faces} face{'s' if faces != 1 else ''}), analyze end to end (median)",
                    backend,
                    faces / photo,
                    1e3 * photo,
                )
            )
    with tempfile.TemporaryDirectory() as scratch:
        clip = moving_clip(Path(scratch) / "clip.avi")
        for backend, rec in backends.items():
            start = time.perf_counter()
            records = list(rec.analyze_video(clip, detector=args.detector))
            per_frame = (time.perf_counter() - start) / len(records)
            faces = sum(len(r.faces) for r in records) / len(records)
            rows.append(
                (
                    f"640x480 video frame, analyze_video incl. decoding, tracking, smoothing ({len(records)} frames, "
                    "mean)",
                    backend,
                    faces / per_frame,
                    1e3 * per_frame,
                )
            )

    load = os.getloadavg()
    lines = [
        f"Model {what} ({cfg.arch}, {cfg.input_size}px x{cfg.in_channels}, {cfg.embedding_size}-d); {args.threads} "
        "thread(s) for "
        f"{', '.join(backends)}; detector {args.detector}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} at the end.",
        "",
        "| workload | backend | faces/s | ms per item | speed vs baseline |",
        "|---|---|---:|---:|---:|",
    ]
    for name, backend, rate, ms in rows:
        lines.append(f"| {name} | {backend} | {rate:,.0f} | {ms:.2f} | {rate / rows[0][2]:.2f}x |")
    batched = {backend: rate for name, backend, rate, _ in rows if "in batches" in name}
    photo_ms = {backend: ms for name, backend, _, ms in rows if name.startswith("640x480 photo `astronaut`")}
    lines += [
        "",
        "Targets: >= 1000 aligned crops/s batched -- "
        + ", ".join(f"{b} {r:,.0f} ({'met' if r >= 1000 else 'missed'})" for b, r in batched.items())
        + "; <= 50 ms per 640x480 photo -- "
        + ", ".join(f"{b} {ms:.1f} ms ({'met' if ms <= 50 else 'missed'})" for b, ms in photo_ms.items())
        + ".",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)


if __name__ == "__main__":
    main()
