"""Video on one thread: searching every frame for faces against following them between searches.

    python benchmarks/bench_video.py [--model default] [--rounds 5] [--frames 75]
        [--output docs/results/video]

Clips (640x480, MJPG, 25 fps, written to a temporary folder and decoded by ``analyze_video``),
made from real faces: the bundled example portrait (180 px) and, when present, the portraits in
``../shared/photos``:

* **moving**: one face sliding across the frame, 12 px right and 2 px down a frame;
* **still**: one face standing still, every frame jittered (shift +-4 px, brightness +-10%,
  sensor noise), as a webcam sees a sitting person: where label flicker shows.

Contenders, interleaved round by round on the same clips: ``detect_every=1`` (a full search every
frame: what ``analyze_video`` did before following) and ``detect_every`` 5 (the default) and 10.
For each: frames per second end to end (decode, detection or following, alignment, quality checks,
embedding, tracking, smoothing; the median round), the share of frames whose faces match the
search-every-frame run's (IoU > 0.5), and label changes per second of the smoothed labels (flicker).
A profile of one frame's steps (full search, one follow, alignment + checks + embedding) is timed on
the moving clip's frames. Ratios are against the search-every-frame run in the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import SHARED_PHOTOS, cpu_model
from PIL import Image

import spherefer
from spherefer.core.images import example_photo
from spherefer.face import detect_faces, get_detector
from spherefer.face.blazeface import box_iou
from spherefer.runtime.video import VideoWriter

SIDE = 180
CONTENDERS = (1, 5, 10)


def portrait(rgb: np.ndarray) -> np.ndarray:
    """The photo's largest face with a margin, SIDE x SIDE."""
    x0, y0, x1, y1 = detect_faces(rgb)[0].box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    top, left = max(0, int(cy - half)), max(0, int(cx - half))
    return cv2.resize(rgb[top : int(cy + half), left : int(cx + half)], (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def faces_to_use() -> dict[str, np.ndarray]:
    found = {"astronaut": portrait(np.asarray(Image.open(example_photo()).convert("RGB")))}
    for path in sorted(SHARED_PHOTOS.glob("*.jpg")) if SHARED_PHOTOS.is_dir() else []:
        try:
            found[path.stem] = portrait(np.asarray(Image.open(path).convert("RGB")))
        except IndexError:  # no face found in it
            continue
    return found


def clip(path: Path, face: np.ndarray, kind: str, frames: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    with VideoWriter(path, 25.0, (640, 480)) as video:
        for t in range(frames):
            canvas = np.full((480, 640, 3), 90, np.uint8)
            if kind == "moving":
                x, y = (20 + 12 * t) % (640 - SIDE), 60 + (2 * t) % (480 - SIDE - 60)
            else:
                x, y = 230 + int(rng.integers(-4, 5)), 150 + int(rng.integers(-4, 5))
            canvas[y : y + SIDE, x : x + SIDE] = face
            if kind == "still":
                noisy = canvas * rng.uniform(0.9, 1.1) + rng.normal(0, 2, canvas.shape)
                canvas = np.clip(noisy, 0, 255).astype(np.uint8)
            video.write(canvas)
    return path


def run(recognizer: spherefer.Recognizer, path: Path, detect_every: int) -> tuple[float, list]:
    start = time.perf_counter()
    records = list(recognizer.analyze_video(path, detect_every=detect_every))
    return time.perf_counter() - start, records


def matches(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    return all(box_iou(f.box, np.stack([g.box for g in b])).max() > 0.5 for f in a)


def flicker(records: list) -> float:
    """Label changes per second of the largest face's smoothed label (25 fps)."""
    labels = [r.faces[0].label for r in records if r.faces]
    return sum(a != b for a, b in zip(labels, labels[1:])) / (len(records) / 25.0)


def profile(recognizer: spherefer.Recognizer, path: Path, repeats: int = 20) -> dict[str, float]:
    """Median ms of each step of one frame, on the clip's middle frame."""
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 10)
    ok, bgr = capture.read()
    capture.release()
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    detector = get_detector("yunet")
    faces = detector.detect(rgb)

    def median_ms(step) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times)

    return {
        "full search (YuNet, then BlazeFace to confirm and place landmarks)": median_ms(lambda: detector.detect(rgb)),
        "  of which YuNet over the enlarged frame": median_ms(lambda: detector.candidates(rgb)),
        "follow one face (one BlazeFace look)": median_ms(lambda: detector.follow(rgb, faces[0])),
        "align, quality checks, embed, classify one face": median_ms(lambda: recognizer.analyze_faces(rgb, faces)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=75)
    parser.add_argument("--output", type=Path, default=Path("docs/results/video"))
    args = parser.parse_args()
    recognizer = spherefer.load_model(args.model, threads=1)
    faces = faces_to_use()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        clips = {
            (kind, name): clip(Path(scratch) / f"{kind}-{name}.avi", face, kind, args.frames, seed)
            for seed, (name, face) in enumerate(faces.items())
            for kind in ("moving", "still")
        }
        seconds = {(key, every): [] for key in clips for every in CONTENDERS}
        records = {}
        for _ in range(args.rounds):
            for key, path in clips.items():
                for every in CONTENDERS:
                    elapsed, result = run(recognizer, path, every)
                    seconds[key, every].append(elapsed)
                    records[key, every] = result
        steps = profile(recognizer, clips["moving", "astronaut"])
    rows = []
    for kind in ("moving", "still"):
        for every in CONTENDERS:
            keys = [key for key in clips if key[0] == kind]
            fps = [args.frames / statistics.median(seconds[key, every]) for key in keys]
            base = [args.frames / statistics.median(seconds[key, 1]) for key in keys]
            same = [
                np.mean([matches(a.faces, b.faces) for a, b in zip(records[key, every], records[key, 1])])
                for key in keys
            ]
            rows.append(
                {
                    "clips": kind,
                    "detect_every": every,
                    "frames_per_second": float(np.mean(fps)),
                    "speed_vs_search_every_frame": float(np.mean([f / b for f, b in zip(fps, base)])),
                    "frames_with_the_same_faces": float(np.min(same)),
                    "flicker_per_second": float(np.mean([flicker(records[key, every]) for key in keys])),
                }
            )
    load_end = os.getloadavg()
    command = "python benchmarks/bench_video.py " + f"--rounds {args.rounds} --frames {args.frames}"
    lines = [
        "# Video: searching every frame against following faces",
        "",
        f"Made by `{command}` on {cpu_model()} ({os.cpu_count()} CPUs, one thread for the network and the "
        f"detectors; load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; "
        f"Python {platform.python_version()}). Clips of {len(faces)} real face(s) ({', '.join(faces)}), "
        f"{args.frames} frames each; {args.rounds} interleaved rounds, medians.",
        "",
        "| clips | detect_every | frames/s | vs search every frame | frames with the same faces (worst clip) "
        "| label changes/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['clips']} | {row['detect_every']} | {row['frames_per_second']:.1f} | "
            f"{row['speed_vs_search_every_frame']:.2f}x | {100 * row['frames_with_the_same_faces']:.1f}% | "
            f"{row['flicker_per_second']:.2f} |"
        )
    lines += ["", "One frame's steps (median ms, the moving clip's 11th frame):", "", "| step | ms |", "|---|---:|"]
    lines += [f"| {step} | {ms:.2f} |" for step, ms in steps.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "video.md").write_text(text)
    (args.output / "video.json").write_text(json.dumps({"rows": rows, "profile_ms": steps}, indent=2) + "\n")


if __name__ == "__main__":
    main()
