"""Re-measure the face-alignment template and the quality limits of ``spherefer.face``.

    python tools/measure_face_template.py [--root ~/.cache/spherefer-data/ferplus] [--count 600] [--seed 0]

Reads a random sample of FER+ training crops (48x48, research data: only measured,
never copied), runs the detectors through ``spherefer.face.detect_faces`` (BlazeFace
retries a tight crop with 25% black padding, as it does for any image where it first
finds nothing) and prints:

* the median position of each BlazeFace keypoint (eyes, nose tip, mouth centre) as a
  fraction of the crop side, with the interquartile range, and ``TEMPLATE``: those
  medians made left-right symmetric (each point averaged with its mirror image), since
  training flips every crop horizontally half of the time;
* ``BOX_TEMPLATES``: the median box of each detector, as fractions of the side (Haar
  runs on the crops upscaled twice: its smallest window, 20 px, barely fits a 48 px face);
* the residual of the similarity fit of each crop's keypoints onto the template;
* sharpness (``spherefer.face.sharpness``) percentiles of the raw crops, of their aligned
  versions and of aligned versions of Gaussian-blurred crops, to choose ``min_sharpness``;
* percentiles of ``|yaw_ratio|`` over the sample, to choose ``max_yaw``.

Paste the printed numbers into ``src/spherefer/face.py`` when they change.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from spherefer.face import TEMPLATE, QualityConfig, align_face, alignment_matrix, detect_faces, sharpness, yaw_ratio

SIDE = 48
POINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center")
BLURS = (1.0, 1.5, 2.0, 3.0)


def percentiles(values: list[float], qs: tuple[float, ...] = (1, 5, 25, 50, 75, 95, 99)) -> str:
    return "  ".join(f"p{q:g}={np.percentile(values, q):.3f}" for q in qs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--root", default="~/.cache/spherefer-data/ferplus", help="FER+ root (with data/FER2013Train/*.png)"
    )
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    folder = Path(args.root).expanduser() / "data" / "FER2013Train"
    files = sorted(folder.glob("*.png"))
    if not files:
        raise SystemExit(f"no FER+ training images in {folder}")
    sample = random.Random(args.seed).sample(files, min(args.count, len(files)))

    points: dict[str, list[np.ndarray]] = {name: [] for name in POINTS}
    boxes: dict[str, list[np.ndarray]] = {"blazeface": [], "haar": []}
    haar_eyes: list[np.ndarray] = []
    residuals, raw_sharp, yaw = [], [], []
    aligned_sharp: dict[float, list[float]] = {0.0: [], **{sigma: [] for sigma in BLURS}}
    found = 0
    for path in sample:
        grey = np.asarray(Image.open(path).convert("L"))
        if grey.shape != (SIDE, SIDE):
            continue
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        faces = detect_faces(rgb, "blazeface")
        raw_sharp.append(sharpness(grey))
        for face in detect_faces(cv2.resize(rgb, (2 * SIDE, 2 * SIDE), interpolation=cv2.INTER_LINEAR), "haar")[:1]:
            boxes["haar"].append(face.box / (2 * SIDE))
            if face.landmark_names:
                haar_eyes.append(face.landmarks / (2 * SIDE))
        if not faces:
            continue
        face = faces[0]
        found += 1
        boxes["blazeface"].append(face.box / SIDE)
        for name in POINTS:
            points[name].append(face.point(name) / SIDE)
        matrix = alignment_matrix(face, SIDE)
        mapped = np.stack([face.point(n) for n in POINTS]) @ matrix[:, :2].T + matrix[:, 2]
        residuals.append(np.linalg.norm(mapped - np.array([TEMPLATE[n] for n in POINTS]) * SIDE, axis=1))
        aligned_sharp[0.0].append(sharpness(align_face(rgb, face, SIDE)))
        for sigma in BLURS:
            blurred = cv2.GaussianBlur(rgb, (0, 0), sigma)
            aligned_sharp[sigma].append(sharpness(align_face(blurred, face, SIDE)))
        ratio = yaw_ratio(face)
        if ratio is not None:
            yaw.append(abs(ratio))

    print(f"# {len(sample)} FER+ training crops from {folder} (seed {args.seed}); BlazeFace found a face in {found}")
    medians = {}
    for name in POINTS:
        values = np.stack(points[name])
        medians[name] = np.median(values, axis=0)
        q1, q3 = np.percentile(values, [25, 75], axis=0)
        print(
            f"# median {name:<13} ({medians[name][0]:.4f}, {medians[name][1]:.4f})  IQR x {q1[0]:.3f}-{q3[0]:.3f}, y "
            f"{q1[1]:.3f}-{q3[1]:.3f}"
        )
    mirror = {"right_eye": "left_eye", "left_eye": "right_eye", "nose_tip": "nose_tip", "mouth_center": "mouth_center"}
    print("TEMPLATE = {")
    for name in POINTS:
        (x, y), (mx, my) = medians[name], medians[mirror[name]]
        print(f'    "{name}": ({(x + 1 - mx) / 2:.4f}, {(y + my) / 2:.4f}),')
    print("}")
    print("BOX_TEMPLATES = {")
    for name, values in boxes.items():
        if values:
            median = np.median(np.stack(values), axis=0)
            print(
                f'    "{name}": ({median[0]:.4f}, {median[1]:.4f}, {median[2]:.4f}, {median[3]:.4f}),  # '
                f"{len(values)} faces"
            )
    print("}")
    if haar_eyes:
        eyes = np.median(np.stack(haar_eyes), axis=0)
        print(f"# haar eye pairs found in {len(haar_eyes)} crops; median eyes {np.round(eyes, 4).tolist()}")
    if residuals:
        r = np.stack(residuals)
        print(
            "# fit residual onto the current TEMPLATE, px at 48 (median / p90): "
            + ", ".join(f"{n} {np.median(r[:, i]):.2f}/{np.percentile(r[:, i], 90):.2f}" for i, n in enumerate(POINTS))
        )
    print(f"# sharpness, raw crops:        {percentiles(raw_sharp)}")
    for sigma, values in aligned_sharp.items():
        what = "aligned crops:" if sigma == 0 else f"aligned, blur sigma {sigma:g}:"
        print(f"# sharpness, {what:<26}{percentiles(values)}")
    print(f"# |yaw_ratio|:                 {percentiles(yaw, (50, 90, 95, 98, 99, 99.5))}")
    limits = QualityConfig()
    print(
        f"# current QualityConfig: min_sharpness {limits.min_sharpness} flags "
        + ", ".join(
            f"{np.mean(np.array(v) < limits.min_sharpness):.1%} of {'sharp' if s == 0 else f'sigma {s:g}'}"
            for s, v in aligned_sharp.items()
        )
        + f"; max_yaw {limits.max_yaw} flags {np.mean(np.array(yaw) > limits.max_yaw):.1%}"
    )


if __name__ == "__main__":
    main()
