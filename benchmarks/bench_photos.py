"""End-to-end speed on whole photos: detection + alignment + quality checks + embedding.

    python benchmarks/bench_photos.py [--model default] [--repeats 20] [--threads 1]

Each photo is letterboxed into 640x480 (the astronaut portrait of scikit-image, plus the
photos in ../shared/photos when present). For every photo and detector it prints the
median over ``--repeats`` calls (after one warm-up) of:

* detect:  ``detect_faces`` (BlazeFace: first pass, padded retry if needed, refinement);
* align:   ``align_face`` of every face at the model's input size;
* embed:   ``Recognizer.embed`` of the aligned crops;
* analyze: ``Recognizer.analyze``, everything together (what ``spherefer predict`` runs).

When the named model is not available (no shipped weights yet), an untrained network of
the shipped ``default`` config is used: the timing is the same, the labels meaningless.
The load average is printed too: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data

import spherefer
from spherefer.config import load_train_config
from spherefer.face import align_face, detect_faces, image_to_rgb

SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"


def letterbox(rgb: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    resized = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.full((height, width, 3), 90, np.uint8)
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return canvas


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def load_recognizer(name: str) -> tuple[spherefer.Recognizer, str]:
    try:
        return spherefer.load_model(name), name
    except FileNotFoundError:
        config = load_train_config("default", [])
        model = spherefer.create_model(config.model, num_classes=len(config.data.classes)).eval()
        bank = spherefer.CenterBank.from_head(model.head, list(config.data.classes))
        return spherefer.Recognizer(model, bank), "untrained network of the default config"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the detectors run on one thread)")
    parser.add_argument("--detectors", default="blazeface,haar")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    recognizer, what = load_recognizer(args.model)
    photos = {"astronaut": letterbox(data.astronaut())}
    for path in sorted(SHARED_PHOTOS.glob("*.jpg")):
        photos[path.stem] = letterbox(image_to_rgb(path))
    load = os.getloadavg()
    print(f"model: {what}; torch threads {args.threads}; load average {load[0]:.2f} on {os.cpu_count()} CPUs; median of {args.repeats}\n")
    print("| photo (640x480) | detector | faces | detect ms | align ms | embed ms | analyze ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    size = recognizer.config.input_size
    for detector in args.detectors.split(","):
        for name, rgb in photos.items():
            faces = detect_faces(rgb, detector)
            crops = [align_face(rgb, face, size) for face in faces]
            detect = median_ms(lambda: detect_faces(rgb, detector), args.repeats)
            align = median_ms(lambda: [align_face(rgb, face, size) for face in faces], args.repeats)
            embed = median_ms(lambda: recognizer.embed(crops), args.repeats) if crops else 0.0
            analyze = median_ms(lambda: recognizer.analyze(rgb, detector=detector), args.repeats)
            print(f"| {name} | {detector} | {len(faces)} | {detect:.1f} | {align:.2f} | {embed:.1f} | {analyze:.1f} |")


if __name__ == "__main__":
    main()
