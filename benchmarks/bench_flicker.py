"""Label flicker in video, with and without temporal smoothing.

    python benchmarks/bench_flicker.py [--model default] [--output docs/results/flicker]
        [--ferplus ~/.cache/spherefer-data/ferplus] [--ckplus ~/.cache/spherefer-data/ckplus48]
        [--per-dataset 10] [--seconds 4] [--fps 25] [--seed 0]

The paper argues that softmax labels "shake" near class borders. In video that shows as
a label that flickers from frame to frame on a face whose expression does not change.
This script measures it on synthetic clips of real, still faces:

* faces: ``--per-dataset`` random FER+ test crops (majority-vote label) and CK+48 crops
  (one per subject), plus scikit-image's astronaut portrait; the datasets are skipped
  with a note when absent;
* clip: each face, upscaled to about 190 px, on a 640x480 textured canvas, for
  ``--seconds`` at ``--fps``, every frame independently jittered: shift up to +-4 px,
  rotation up to +-4 degrees, scale +-4%, brightness gain +-10% and offset +-8 grey
  levels, Gaussian sensor noise (sigma 2); written as MJPG AVI to a temporary folder
  and read back with ``Recognizer.analyze_video``;
* methods: ``analyze_video(smoothing=False)`` (raw per-frame labels) and
  ``analyze_video(smoothing=True)`` (the default SmoothingConfig), plus the two halves of
  the default -- embedding EMA alone and label hysteresis alone -- replayed with
  ``LabelSmoother`` on the raw run's embeddings (the replay of the full default is
  checked against the smoothed run).

Per face, over the frames in which it was detected and classified: **label changes per
second** (flicker rate) and **agreement** with the face's majority raw label (share of
frames carrying it). Both are reported in the open set (the bank's thresholds, faces far
from every center are ``unknown``, as ``spherefer predict`` does) and in the closed set
(threshold -1: always the nearest class, the paper's setting, where the shaking between
neighbouring classes shows), the latter replayed from the same embeddings. Only numbers are written (``flicker.md``,
``flicker.json`` under
``--output``); the research-only frames stay in the temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch
from common import load_recognizer
from skimage import data

import spherefer
from spherefer.core.labels import REJECTED
from spherefer.runtime.tracking import LabelSmoother, SmoothingConfig
from spherefer.runtime.video import VideoWriter

CANVAS = (640, 480)
FACE_SIDE = 190
FERPLUS_COLUMNS = [
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
]


def background(rng: np.random.Generator) -> np.ndarray:
    """A smooth colour gradient with some texture, so the face is not on a flat field."""
    h, w = CANVAS[1], CANVAS[0]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(60, 180, 3)
    tilt = rng.uniform(-60, 60, (2, 3))
    image = base + xx[..., None] * tilt[0] + yy[..., None] * tilt[1]
    texture = cv2.GaussianBlur(rng.normal(0, 25, (h, w)).astype(np.float32), (0, 0), 6)[..., None]
    return np.clip(image + texture, 0, 255).astype(np.uint8)


def clip_frames(face: np.ndarray, side: int, frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``frames`` jittered 640x480 RGB frames of ``face`` (H, W, 3), scaled to ``side`` px."""
    scale0 = side / max(face.shape[:2])
    centre = np.array([CANVAS[0] / 2 + rng.uniform(-60, 60), CANVAS[1] / 2 + rng.uniform(-30, 30)])
    canvas = background(rng)
    out = []
    for _ in range(frames):
        angle, scale = rng.uniform(-4, 4), scale0 * rng.uniform(0.96, 1.04)
        matrix = cv2.getRotationMatrix2D((face.shape[1] / 2, face.shape[0] / 2), angle, scale)
        matrix[:, 2] += centre + rng.uniform(-4, 4, 2) - np.array([face.shape[1] / 2, face.shape[0] / 2])
        frame = canvas.copy()
        cv2.warpAffine(face, matrix, CANVAS, dst=frame, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        lit = frame.astype(np.float32) * rng.uniform(0.9, 1.1) + rng.uniform(-8, 8) + rng.normal(0, 2, frame.shape)
        out.append(np.clip(lit, 0, 255).astype(np.uint8))
    return out


def grey_rgb(path: Path) -> np.ndarray:
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise ValueError(f"cannot read {path}")
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def ferplus_faces(root: Path, count: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    folder = root / "data" / "FER2013Test"
    rows = []
    with open(folder / "label.csv", newline="") as handle:
        for row in csv.reader(handle):
            votes = np.array([float(v) for v in row[2:12]])
            best = int(votes.argmax())
            if best < 7 and (votes == votes[best]).sum() == 1:  # a clear basic-emotion majority
                rows.append((row[0], FERPLUS_COLUMNS[best]))
    picked = rng.choice(len(rows), size=min(count, len(rows)), replace=False)
    return [(f"FER+ test {rows[i][1]}", grey_rgb(folder / rows[i][0])) for i in sorted(picked)]


def ckplus_faces(root: Path, count: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    files = sorted((root / "CK+48").glob("*/*.png"))
    by_subject: dict[str, Path] = {}
    for i in rng.permutation(len(files)):
        by_subject.setdefault(files[i].name.split("_")[0], files[i])
    subjects = sorted(by_subject)
    picked = [
        by_subject[subjects[i]]
        for i in sorted(rng.choice(len(subjects), size=min(count, len(subjects)), replace=False))
    ]
    return [(f"CK+48 {path.parent.name}", grey_rgb(path)) for path in picked]


def label_sequence(records: list) -> tuple[list[str], list[str], list[np.ndarray], int]:
    """Per classified frame: label, raw label, embedding; plus the number of frames in which the face was found."""
    labels, raws, embeddings, found = [], [], [], 0
    for record in records:
        if not record.faces:
            continue
        found += 1
        face = record.faces[0]  # the largest face: the clip has one
        if face.label == REJECTED:
            continue
        labels.append(face.label)
        raws.append(face.raw_label)
        embeddings.append(face.embedding)
    return labels, raws, embeddings, found


def changes_per_second(labels: list[str], seconds: float) -> float:
    return sum(a != b for a, b in zip(labels, labels[1:])) / seconds


def replay(
    recognizer: spherefer.Recognizer,
    embeddings: list[np.ndarray],
    threshold: float | None,
    config: SmoothingConfig | None,
) -> list[str]:
    """Labels of one track's embeddings: each frame's own (``config`` None) or smoothed."""
    if config is None:
        return recognizer.bank.classify(np.stack(embeddings), threshold=threshold).labels
    smoother = LabelSmoother.from_bank(recognizer.bank, threshold, config)
    return [smoother.update(0, e).label for e in embeddings]


def measure(labels: list[str], majority: str, seconds: float) -> dict[str, float]:
    return {
        "changes_per_s": changes_per_second(labels, seconds),
        "agreement": float(np.mean([label == majority for label in labels])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--output", default="docs/results/flicker", type=Path)
    parser.add_argument("--ferplus", default="~/.cache/spherefer-data/ferplus", type=lambda p: Path(p).expanduser())
    parser.add_argument("--ckplus", default="~/.cache/spherefer-data/ckplus48", type=lambda p: Path(p).expanduser())
    parser.add_argument("--per-dataset", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", default="blazeface")
    args = parser.parse_args()

    torch.set_num_threads(1)  # as `spherefer predict` does for photos and videos
    recognizer, what = load_recognizer(args.model)
    rng = np.random.default_rng(args.seed)
    faces: list[tuple[str, np.ndarray]] = [("astronaut (skimage)", data.astronaut())]
    notes = []
    for name, root, loader in (("FER+", args.ferplus, ferplus_faces), ("CK+48", args.ckplus, ckplus_faces)):
        if root.is_dir():
            faces += loader(root, args.per_dataset, rng)
        else:
            notes.append(f"{name} skipped: {root} is absent")
    frames = round(args.seconds * args.fps)
    default = SmoothingConfig()
    methods = {
        "raw (`--no-smoothing`)": None,
        f"EMA only (alpha {default.alpha})": SmoothingConfig(alpha=default.alpha, margin=0.0, patience=1),
        f"hysteresis only (margin {default.margin}, patience {default.patience})": SmoothingConfig(
            alpha=1.0, margin=default.margin, patience=default.patience
        ),
        "EMA + hysteresis (default)": default,
    }
    settings = {
        f"open set: the bank's thresholds (global {recognizer.bank.threshold:g}), as `spherefer predict`": None,
        "closed set: threshold -1, always the nearest class (the paper's setting)": -1.0,
    }
    rows, mismatches, started = [], 0, time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spherefer-flicker-") as scratch:
        for index, (name, face) in enumerate(faces):
            side = 400 if name.startswith("astronaut") else FACE_SIDE  # the portrait shows more than the face
            path = Path(scratch) / f"face{index}.avi"
            with VideoWriter(path, args.fps, CANVAS) as writer:
                for frame in clip_frames(face, side, frames, rng):
                    writer.write(frame)
            raw_run = list(recognizer.analyze_video(path, detector=args.detector, smoothing=False))
            smooth_run = list(recognizer.analyze_video(path, detector=args.detector, smoothing=True))
            raw, _, embeddings, found = label_sequence(raw_run)
            smoothed, smoothed_raw, _, _ = label_sequence(smooth_run)
            row: dict = {"face": name, "frames": frames, "found": found, "classified": len(raw), "settings": {}}
            rows.append(row)
            if not raw:
                continue
            # the two runs saw the same faces; the replay of the smoothed run from the raw run's embeddings matches it
            mismatches += int(smoothed_raw != raw) + int(replay(recognizer, embeddings, None, default) != smoothed)
            for setting, threshold in settings.items():
                labels = {
                    method: replay(recognizer, embeddings, threshold, config) for method, config in methods.items()
                }
                if threshold is None:
                    labels[list(methods)[0]], labels[list(methods)[-1]] = (
                        raw,
                        smoothed,
                    )  # the two analyze_video runs themselves
                majority = Counter(labels[list(methods)[0]]).most_common(1)[0][0]
                row["settings"][setting] = {
                    "majority": majority,
                    "raw_labels": dict(Counter(labels[list(methods)[0]])),
                    "methods": {method: measure(values, majority, args.seconds) for method, values in labels.items()},
                }
            print(
                f"{name}: {len(raw)}/{frames} classified; "
                + "; ".join(
                    f"{majority_of(row, s)}: "
                    + " -> ".join(f"{v['changes_per_s']:.2f}" for v in row["settings"][s]["methods"].values())
                    for s in settings
                ),
                flush=True,
            )
    elapsed = time.perf_counter() - started
    measured = [row for row in rows if row["classified"]]

    lines = [
        "# Label flicker in video, with and without temporal smoothing",
        "",
        f"Made by `python benchmarks/bench_flicker.py --model {args.model} --per-dataset {args.per_dataset} "
        f"--seconds {args.seconds:g} "
        f"--fps {args.fps:g} --seed {args.seed}`; model {what}, detector {args.detector}. "
        f"{len(faces)} still faces (the astronaut portrait, FER+ test and CK+48 crops), each a {args.seconds:g} s "
        f"clip at {args.fps:g} fps "
        f"({frames} frames) with independent per-frame jitter (shift +-4 px, rotation +-4 deg, scale +-4%, "
        "brightness +-10%/+-8, "
        "noise sigma 2; see the script's docstring). The expression never changes within a clip, so every label "
        "change is flicker. "
        "Agreement: share of a face's classified frames that carry its majority raw label.",
        "",
        f"Default smoothing: {default}. Open-set raw and default rows are the labels of "
        "`analyze_video(smoothing=False)` and "
        "`analyze_video(smoothing=True)`; the other rows replay `LabelSmoother` on the raw run's embeddings "
        "(the replay of the default reproduces the smoothed run: "
        f"{'no mismatch' if mismatches == 0 else f'{mismatches} MISMATCHES'}).",
        *(f"\nNote: {note}." for note in notes),
    ]
    summary: dict = {}
    for setting in settings:
        lines += [
            "",
            f"**{setting[0].upper() + setting[1:]}**",
            "",
            "| method | label changes / s (mean over faces) | faces with any change | agreement with majority label |",
            "|---|---:|---:|---:|",
        ]
        summary[setting] = {}
        for method in methods:
            rates = [row["settings"][setting]["methods"][method]["changes_per_s"] for row in measured]
            agreement = [row["settings"][setting]["methods"][method]["agreement"] for row in measured]
            changed = int(sum(r > 0 for r in rates))
            summary[setting][method] = {
                "changes_per_s": float(np.mean(rates)),
                "faces_with_change": changed,
                "agreement": float(np.mean(agreement)),
            }
            lines.append(f"| {method} | {np.mean(rates):.2f} | {changed} / {len(rates)} | {np.mean(agreement):.1%} |")
    raw_key, smooth_key = list(methods)[0], list(methods)[-1]
    header = " | ".join(
        f"{label} majority | {label} raw labels | {label} changes/s raw -> smoothed | {label} agreement raw -> smoothed"
        for label in ("open", "closed")
    )
    lines += [
        "",
        "Per face (frames in which it was detected and passed the quality checks):",
        "",
        f"| face | classified frames | {header} |",
        "|---|---:|" + "---|---|---:|---:|" * len(settings),
    ]
    for row in rows:
        cells = [
            row["face"],
            f"{row['classified']} / {row['frames']}"
            + (f" (found in {row['found']})" if row["found"] != row["classified"] else ""),
        ]
        for setting in settings:
            if not row["classified"]:
                cells += ["-"] * 4
                continue
            data_ = row["settings"][setting]
            r, s_ = data_["methods"][raw_key], data_["methods"][smooth_key]
            cells += [
                data_["majority"],
                ", ".join(f"{k} {v}" for k, v in sorted(data_["raw_labels"].items(), key=lambda kv: -kv[1])),
                f"{r['changes_per_s']:.2f} -> {s_['changes_per_s']:.2f}",
                f"{r['agreement']:.0%} -> {s_['agreement']:.0%}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    load = os.getloadavg()[0]
    lines += [
        "",
        f"{len(rows) * frames} frames analysed twice in {elapsed:.0f} s on {platform.machine()} "
        f"({os.cpu_count()} CPUs, load average {load:.1f}, 1 PyTorch thread).",
    ]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "flicker.md").write_text(text)
    (args.output / "flicker.json").write_text(
        json.dumps(
            {
                "model": args.model,
                "config": dataclasses.asdict(default),
                "seed": args.seed,
                "seconds": args.seconds,
                "fps": args.fps,
                "mismatches": mismatches,
                "summary": summary,
                "faces": rows,
                "notes": notes,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"wrote {args.output / 'flicker.md'}, {args.output / 'flicker.json'}")


def majority_of(row: dict, setting: str) -> str:
    return row["settings"][setting]["majority"]


if __name__ == "__main__":
    main()
