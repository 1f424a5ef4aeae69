"""End-to-end speed on whole photos: detection + alignment + quality checks + embedding.

    python benchmarks/bench_photos.py [--model default] [--repeats 20] [--threads 1]

Each photo is letterboxed into 640x480 (the astronaut portrait of scikit-image, plus the
photos in ../shared/photos when present). For every photo and detector it prints the
median over ``--repeats`` calls (after one warm-up) of:

* detect:  ``detect_faces`` (BlazeFace: first pass, padded retry if needed, refinement);
* align:   ``align_face`` of every face at the model's input size;
* embed:   ``Recognizer.embed`` of the aligned crops;
* analyze: ``Recognizer.analyze``, everything together (what ``spherefer predict`` runs).

The load average is printed too: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch
from common import load_recognizer, test_photos, timings

from spherefer.face import align_face, detect_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the detectors run on one thread)")
    parser.add_argument("--detectors", default="blazeface,haar")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    recognizer, what = load_recognizer(args.model)
    photos = test_photos()
    load = os.getloadavg()
    print(
        f"model: {what}; torch threads {args.threads}; load average {load[0]:.2f} on {os.cpu_count()} CPUs; median "
        f"of {args.repeats}\n"
    )
    print("| photo (640x480) | detector | faces | detect ms | align ms | embed ms | analyze ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    size = recognizer.config.input_size
    for detector in args.detectors.split(","):
        for name, rgb in photos.items():
            faces = detect_faces(rgb, detector)
            crops = [align_face(rgb, face, size) for face in faces]
            detect = 1e3 * statistics.median(timings(lambda: detect_faces(rgb, detector), args.repeats))
            align = 1e3 * statistics.median(
                timings(lambda: [align_face(rgb, face, size) for face in faces], args.repeats)
            )
            embed = 1e3 * statistics.median(timings(lambda: recognizer.embed(crops), args.repeats)) if crops else 0.0
            analyze = 1e3 * statistics.median(timings(lambda: recognizer.analyze(rgb, detector=detector), args.repeats))
            print(f"| {name} | {detector} | {len(faces)} | {detect:.1f} | {align:.2f} | {embed:.1f} | {analyze:.1f} |")


if __name__ == "__main__":
    main()
