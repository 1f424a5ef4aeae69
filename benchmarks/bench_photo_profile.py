"""Where the time of one photo goes: each step of ``Recognizer.analyze`` timed on its own.

    python benchmarks/bench_photo_profile.py [--model default] [--repeats 30] [--output docs/results/photo_profile]

Photos: the example portrait letterboxed to 640x480 (one face) and, when present, the portraits in
``../shared/photos`` letterboxed the same way, each encoded as a JPEG (as a photo arrives). Steps, on
one thread, median ms over ``--repeats`` calls, in the order ``analyze`` runs them for the default
``yunet`` detector: decoding the JPEG, YuNet over the enlarged photo, BlazeFace's confirming look at
each candidate, its refining look, alignment, the quality checks, the embedding and the
classification. ``analyze`` end to end is timed too; the steps' sum is checked against it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from common import SHARED_PHOTOS, cpu_model, letterbox
from PIL import Image

import spherefer
from spherefer.core.images import example_photo
from spherefer.face import QualityConfig, align_face, assess_quality, get_detector, image_to_rgb


def photos() -> dict[str, bytes]:
    paths = [Path(example_photo())] + (sorted(SHARED_PHOTOS.glob("*.jpg")) if SHARED_PHOTOS.is_dir() else [])
    found = {}
    for path in paths:
        buffer = io.BytesIO()
        Image.fromarray(letterbox(np.asarray(Image.open(path).convert("RGB")))).save(buffer, "JPEG", quality=92)
        found[path.stem] = buffer.getvalue()
    return found


def median_ms(step, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def profile(recognizer: spherefer.Recognizer, jpeg: bytes, repeats: int) -> dict[str, float]:
    detector = get_detector("yunet")
    rgb = image_to_rgb(jpeg)
    candidate = detector.candidates(rgb)[0]
    seen = detector.blazeface.look(rgb, candidate)
    face = detector.detect(rgb)[0]
    crop = align_face(rgb, face, recognizer.config)
    embedding = recognizer.embed([crop])
    steps = {
        "decode the JPEG": median_ms(lambda: image_to_rgb(jpeg), repeats),
        "YuNet over the enlarged photo": median_ms(lambda: detector.candidates(rgb), repeats),
        "BlazeFace look to confirm the candidate": median_ms(lambda: detector.blazeface.look(rgb, candidate), repeats),
        "BlazeFace look to refine the landmarks": median_ms(lambda: detector.blazeface.look(rgb, seen), repeats),
        "align the face": median_ms(lambda: align_face(rgb, face, recognizer.config), repeats),
        "quality checks": median_ms(lambda: assess_quality(face, rgb, QualityConfig()), repeats),
        "embed": median_ms(lambda: recognizer.embed([crop]), repeats),
        "classify (cosines, unknown score)": median_ms(lambda: recognizer.classify(embedding), repeats),
    }
    steps["analyze end to end"] = median_ms(lambda: recognizer.analyze(jpeg), repeats)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output", type=Path, default=Path("docs/results/photo_profile"))
    args = parser.parse_args()
    recognizer = spherefer.load_model(args.model, threads=1)
    load = os.getloadavg()
    results = {name: profile(recognizer, jpeg, args.repeats) for name, jpeg in photos().items()}
    names = list(results)
    steps = list(results[names[0]])
    lines = [
        "# One 640x480 photo, step by step",
        "",
        f"Made by `python benchmarks/bench_photo_profile.py --repeats {args.repeats}` on {cpu_model()} "
        f"({os.cpu_count()} CPUs, one thread; load average {load[0]:.2f} at the start). Median ms per step; "
        "the share is of the steps' sum.",
        "",
        "| step | " + " | ".join(names) + " | share (mean) |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    totals = {name: sum(ms for step, ms in results[name].items() if step != "analyze end to end") for name in names}
    for step in steps:
        share = "" if step == "analyze end to end" else f"{np.mean([results[n][step] / totals[n] for n in names]):.0%}"
        lines.append(f"| {step} | " + " | ".join(f"{results[n][step]:.2f}" for n in names) + f" | {share} |")
    lines.append("| sum of the steps | " + " | ".join(f"{totals[n]:.2f}" for n in names) + " | 100% |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "photo_profile.md").write_text(text)
    (args.output / "photo_profile.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
