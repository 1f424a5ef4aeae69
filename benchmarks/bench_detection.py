"""Issue #17: how many faces does each detector find, how many false ones, how fast?

    python benchmarks/bench_detection.py [--images 36] [--threads 2] [--output docs/results/detection]

A reproducible benchmark with ground-truth boxes built from real faces: FER+ test faces
(48x48 greyscale crops, shown at 24-96 px) and real portraits (scikit-image's astronaut
and ../shared/photos, the face at 100-400 px) pasted at random positions and scales,
with rotations up to 15 degrees for the portraits, onto scikit-image's face-free scenes;
1-30 faces per image, at 640x480, 1920x1080 and 3840x2160. The face-free scenes alone (at
the same sizes) count false positives. A ground-truth face is found when a detected
box's centre lies inside it and the boxes' sizes differ by less than a factor of 2.5.

Detectors: every registered one (``yunet``, the default; ``blazeface``; ``blazeface_full``;
``haar``, min size 20), ``yunet`` without enlarging photos and enlarging them up to
2880x1620 pixels (1080p photos 1.5 times) instead of 1920x1080, YuNet's own candidates without BlazeFace's confirmation
(score >=
0.5, OpenCV's usual threshold is 0.9) and Haar as the `fer` package runs it (scaleFactor
1.1, minNeighbors 5, minSize 50); all on the same images in one run. Two more tables:

* head roll: FER+ faces at 48-96 px turned in the image plane by 0, 15, 30 and 45 degrees
  (12 faces on each of 6 1280x720 scenes per angle), recall by angle;
* end to end (``Recognizer.analyze`` of the shipped default model: detect, align, check,
  classify), median ms of 15 rounds, the detectors taking turns in each: a 640x480 photo
  with one face (the astronaut letterboxed) and a 1920x1080 photo with 10 faces
  (astronauts with 60-120 px faces on a scene).

``--threads`` sets the threads of ONNX Runtime (YuNet, the network), of the BlazeFace
inside ``yunet`` and of OpenCV (Haar); ``blazeface`` and ``blazeface_full`` run on one,
as the library's registered ones do.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from common import SHARED_PHOTOS, letterbox, timings
from skimage import data

import spherefer
from spherefer.core.storage import atomic_write, write_json
from spherefer.data import FERPlus
from spherefer.face import DETECTORS, YuNetDetector, detect_faces, get_detector, image_to_rgb

SCENES = (
    "coffee",
    "rocket",
    "coins",
    "moon",
    "page",
    "text",
    "hubble_deep_field",
    "horse",
    "clock",
    "brick",
    "grass",
    "gravel",
)
SIZES = ((640, 480), (1920, 1080), (3840, 2160))
BUCKETS = ((24, 40), (40, 96), (96, 10_000))
ROLLS = (0, 15, 30, 45)


class FerHaar:
    """Haar as the `fer` package runs it: frontal-face cascade, scaleFactor 1.1, minNeighbors 5, minSize 50."""

    def __init__(self) -> None:
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def boxes(self, rgb: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        found = self.cascade.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50)
        )
        return np.array(
            [[x, y, x + w, y + h] for x, y, w, h in np.asarray(found).reshape(-1, 4)], dtype=np.float64
        ).reshape(-1, 4)


def _scene(name: str, size: tuple[int, int]) -> np.ndarray:
    image = getattr(data, name)()
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    image = image[..., :3] if image.ndim == 3 else np.stack([image.astype(np.uint8)] * 3, axis=-1)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _portraits() -> list[tuple[np.ndarray, np.ndarray]]:
    """Real portraits with their face box (found by `blazeface_full` at the portrait's own size)."""
    photos = [data.astronaut()] + [image_to_rgb(path) for path in sorted(SHARED_PHOTOS.glob("*.jpg"))]
    out = []
    for photo in photos:
        faces = detect_faces(photo, "blazeface_full") or detect_faces(photo, "blazeface")
        if faces:
            out.append((photo, np.asarray(faces[0].box, dtype=np.float64)))
    return out


def fer_patch(face: np.ndarray, side: int) -> np.ndarray:
    """A 48x48 greyscale FER+ face as a ``side`` x ``side`` RGB patch (bilinear)."""
    return cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2RGB)


def _paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    canvas[y : y + h, x : x + w] = patch


def make_images(count: int, fer_faces: np.ndarray, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``count`` composites (name, RGB image, (F, 4) ground-truth boxes) and every face-free scene at each size."""
    rng = np.random.default_rng(seed)
    portraits = _portraits()
    images = []
    for i in range(count):
        width, height = SIZES[i % len(SIZES)]
        canvas = _scene(SCENES[i % len(SCENES)], (width, height)).copy()
        boxes: list[list[float]] = []
        occupied = np.zeros((height, width), bool)
        for _ in range(int(rng.integers(1, 31))):
            if portraits and rng.random() < 0.15:
                photo, face = portraits[int(rng.integers(len(portraits)))]
                target = rng.uniform(100, min(400, height / 2.5))
                scale = target / (face[2] - face[0])
                angle = rng.uniform(-15, 15)
                patch = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                matrix = cv2.getRotationMatrix2D((patch.shape[1] / 2, patch.shape[0] / 2), angle, 1.0)
                patch = cv2.warpAffine(patch, matrix, (patch.shape[1], patch.shape[0]), borderMode=cv2.BORDER_REFLECT)
                corners = face * scale
                centre = matrix @ np.array([(corners[0] + corners[2]) / 2, (corners[1] + corners[3]) / 2, 1.0])
                half = target / 2
                local = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
            else:
                side = int(rng.uniform(24, 96))
                patch = fer_patch(fer_faces[int(rng.integers(len(fer_faces)))], side)
                local = np.array([0.0, 0.0, side, side])
            h, w = patch.shape[:2]
            if w >= width or h >= height:
                continue
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            if occupied[y : y + h, x : x + w].any():
                continue
            occupied[y : y + h, x : x + w] = True
            _paste(canvas, patch, x, y)
            boxes.append((local + [x, y, x, y]).tolist())
        images.append((f"composite{i:02d}_{width}x{height}", canvas, np.array(boxes).reshape(-1, 4)))
    for name in SCENES:
        for size in SIZES:
            images.append((f"scene_{name}_{size[0]}x{size[1]}", _scene(name, size), np.zeros((0, 4))))
    return images


def _bucket(low: int, high: int) -> str:
    return f"{low}-{high} px" if high < 10_000 else f"{low}+ px"


def matches(truth: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, int]:
    """(which ground-truth faces were found, how many detections match none): a detection matches a
    face when its centre lies inside it and their sizes differ by less than 2.5x; each once."""
    hit = np.zeros(len(truth), bool)
    false = 0
    for box in found:
        cx, cy, size = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0]
        sizes = truth[:, 2] - truth[:, 0]
        inside = (truth[:, 0] <= cx) & (cx <= truth[:, 2]) & (truth[:, 1] <= cy) & (cy <= truth[:, 3])
        ok = inside & (size < 2.5 * sizes) & (sizes < 2.5 * size) & ~hit
        if ok.any():
            hit[np.flatnonzero(ok)[0]] = True
        else:
            false += 1
    return hit, false


def centred(fer_faces: np.ndarray, count: int, seed: int) -> dict[str, dict[str, float]]:
    """Share of ``count`` FER+ faces found when each is alone: the 48x48 crop by itself (the face
    fills the frame), or in the middle of a grey canvas about three times its size: do the misses
    come from the faces or from their size in the photo?"""
    chosen = np.random.default_rng(seed).choice(len(fer_faces), count, replace=False)
    out: dict[str, dict[str, float]] = {}
    for name in ("yunet", "blazeface", "blazeface_full"):
        detector = get_detector(name)
        for side, canvas in ((48, 48), (48, 128), (96, 256)):
            found = 0
            for i in chosen:
                image = np.full((canvas, canvas, 3), 128, np.uint8)
                offset = (canvas - side) // 2
                image[offset : offset + side, offset : offset + side] = fer_patch(fer_faces[i], side)
                found += bool(detector.detect(image))
            label = "48 px crop alone" if side == canvas else f"{side} px face in {canvas} px"
            out.setdefault(name, {})[label] = found / count
    return out


def roll_images(fer_faces: np.ndarray, seed: int) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Per roll angle, 6 1280x720 scenes with 12 FER+ faces at 48-96 px turned by +-angle degrees."""
    rng = np.random.default_rng(seed)
    out: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for angle in ROLLS:
        for i in range(6):
            canvas = _scene(SCENES[i], (1280, 720)).copy()
            boxes = []
            for row in range(3):
                for column in range(4):
                    side = int(rng.uniform(48, 96))
                    face = fer_patch(fer_faces[int(rng.integers(len(fer_faces)))], side)
                    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle * rng.choice([-1, 1]), 1.0)
                    face = cv2.warpAffine(face, matrix, (side, side), borderMode=cv2.BORDER_REFLECT)
                    x, y = 40 + 310 * column + int(rng.integers(0, 150)), 20 + 235 * row + int(rng.integers(0, 120))
                    _paste(canvas, face, x, y)
                    boxes.append([x, y, x + side, y + side])
            out.setdefault(angle, []).append((canvas, np.array(boxes, dtype=np.float64)))
    return out


def end_to_end_images() -> dict[str, np.ndarray]:
    """A 640x480 photo with one face and a 1920x1080 photo with 10 faces of 60-120 px."""
    astronaut = data.astronaut()
    one = letterbox(astronaut)
    many = _scene("coffee", (1920, 1080)).copy()
    rng = np.random.default_rng(0)
    for i in range(10):
        side = int(rng.uniform(60, 120) * 512 / 102)  # the astronaut's face is 102 px of its 512
        patch = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
        x, y = 30 + 380 * (i % 5), 40 + 520 * (i // 5)
        _paste(many, patch[: 1080 - y, : 1920 - x], x, y)
    return {"640x480, 1 face": one, "1920x1080, 10 faces": many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--data-root", type=lambda p: Path(p).expanduser(), default=Path("~/.cache/spherefer-data").expanduser()
    )
    parser.add_argument("--output", type=Path, default=Path("docs/results/detection"))
    parser.add_argument("--centred", action="store_true", help="only the check of single centred faces (centred.md)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    fer_faces, _ = FERPlus(args.data_root / "ferplus", "test").load_arrays(48)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.centred:
        found = centred(fer_faces, 200, args.seed)
        lines = [
            "FER+ test faces found when alone in the middle of a grey canvas (200 faces, "
            f"`python benchmarks/bench_detection.py --centred --seed {args.seed}`):",
            "",
            "| detector | " + " | ".join(next(iter(found.values()))) + " |",
            "|---" * (1 + len(next(iter(found.values())))) + "|",
        ]
        lines += [
            f"| {name} | " + " | ".join(f"{100 * v:.1f}%" for v in row.values()) + " |" for name, row in found.items()
        ]
        print("\n".join(lines))
        with atomic_write(args.output / "centred.md", "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return
    images = make_images(args.images, fer_faces, args.seed)
    detectors = {
        name: YuNetDetector(threads=args.threads) if name == "yunet" else get_detector(name) for name in DETECTORS
    }
    detectors["yunet, photos never enlarged (upscale 1)"] = YuNetDetector(upscale=1.0, threads=args.threads)
    detectors["yunet, photos enlarged up to 2880x1620 pixels"] = YuNetDetector(
        upscale_pixels=2880 * 1620, threads=args.threads
    )
    runs = {
        name: (lambda rgb, d=d: np.array([f.box for f in d.detect(rgb)], dtype=np.float64).reshape(-1, 4))
        for name, d in detectors.items()
    }
    runs["yunet candidates alone (score >= 0.5, no BlazeFace check)"] = lambda rgb: np.array(
        [f.box for f in detectors["yunet"].candidates(rgb) if f.score >= 0.5], dtype=np.float64
    ).reshape(-1, 4)
    runs["haar as fer runs it"] = FerHaar().boxes
    rolls = roll_images(fer_faces, args.seed)
    recognizer = spherefer.load_model("default", threads=args.threads)
    whole_photos = end_to_end_images()
    report: dict[str, dict[str, object]] = {}
    for name, run in runs.items():
        report[name] = measure(run, images)
        report[name]["recall by roll"] = {}
        for angle, scenes in rolls.items():
            hits = [matches(truth, run(rgb))[0] for rgb, truth in scenes]
            report[name]["recall by roll"][f"{angle} deg"] = float(np.concatenate(hits).mean())
        print(name, report[name], flush=True)
    for label, rgb in whole_photos.items():  # every detector in turn, 15 rounds: the machine's drift hits all alike
        seconds = {name: [] for name in detectors}
        for _ in range(15):
            for name, detector in detectors.items():
                seconds[name] += timings(lambda: recognizer.analyze(rgb, detector=detector), 1)
        for name, detector in detectors.items():
            report[name].setdefault("end to end ms", {})[label] = 1000 * float(np.median(seconds[name]))
            report[name].setdefault("end to end faces", {})[label] = len(recognizer.analyze(rgb, detector=detector))
    markdown = tables(report, args)
    print(markdown)
    with atomic_write(args.output / "detection.md", "w") as handle:
        handle.write(markdown)
    write_json(args.output / "detection.json", report)


def measure(run, images: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, object]:
    """Recall per size bucket, false faces and median time per image size of one detector."""
    found_by_bucket = {b: [0, 0] for b in BUCKETS}
    small_by_size = {size: [0, 0] for size in SIZES}  # 24-40 px faces by photo size
    false_on_scenes, false_on_composites, seconds = [], [], {size: [] for size in SIZES}
    false_scenes = []
    for label, rgb, truth in images:
        start = time.perf_counter()
        found = run(rgb)
        seconds[(rgb.shape[1], rgb.shape[0])].append(time.perf_counter() - start)
        hit, false = matches(truth, found)
        (false_on_scenes if len(truth) == 0 else false_on_composites).append(false)
        false_scenes += [label] * (false if len(truth) == 0 else 0)
        sizes = truth[:, 2] - truth[:, 0]
        for low, high in BUCKETS:
            inside = (sizes >= low) & (sizes < high)
            found_by_bucket[(low, high)][0] += int(hit[inside].sum())
            found_by_bucket[(low, high)][1] += int(inside.sum())
        small = (sizes >= BUCKETS[0][0]) & (sizes < BUCKETS[0][1])
        small_by_size[(rgb.shape[1], rgb.shape[0])][0] += int(hit[small].sum())
        small_by_size[(rgb.shape[1], rgb.shape[0])][1] += int(small.sum())
    return {
        "recall": {
            _bucket(low, high): found / max(total, 1) for (low, high), (found, total) in found_by_bucket.items()
        },
        "faces": {_bucket(low, high): total for (low, high), (found, total) in found_by_bucket.items()},
        "recall 24-40 px by photo size": {
            f"{w}x{h}": found / max(total, 1) for (w, h), (found, total) in small_by_size.items()
        },
        "faces 24-40 px by photo size": {f"{w}x{h}": total for (w, h), (found, total) in small_by_size.items()},
        "false per face-free scene": float(np.mean(false_on_scenes)),
        "false per composite": float(np.mean(false_on_composites)),
        "face-free scenes with false faces": false_scenes,
        "ms per image": {f"{w}x{h}": 1000 * float(np.median(v)) for (w, h), v in seconds.items()},
    }


def tables(report: dict[str, dict[str, object]], args: argparse.Namespace) -> str:
    buckets = list(next(iter(report.values()))["recall"])
    counts = next(iter(report.values()))["faces"]
    lines = [
        f"Detection on {args.images} composites of real faces on face-free scenes plus {len(SCENES) * len(SIZES)} "
        "face-free scenes "
        f"(`python benchmarks/bench_detection.py --images {args.images} --seed {args.seed} --threads "
        f"{args.threads}`; faces per size bucket: "
        + ", ".join(f"{b} {counts[b]}" for b in buckets)
        + f"). {args.threads} threads; times are medians per image.",
        "",
        "| detector | "
        + " | ".join(f"recall {b}" for b in buckets)
        + " | false per face-free scene | false per composite | "
        + " | ".join(f"ms {w}x{h}" for w, h in SIZES)
        + " |",
        "|---" * (4 + len(buckets) + len(SIZES) - 1) + "|",
    ]
    for name, row in report.items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{100 * row['recall'][b]:.1f}%" for b in buckets)
            + f" | {row['false per face-free scene']:.2f} | {row['false per composite']:.2f} | "
            + " | ".join(f"{row['ms per image'][f'{w}x{h}']:.0f}" for w, h in SIZES)
            + " |"
        )
    lines += [
        "",
        "False faces on the face-free scenes: "
        + "; ".join(f"{name}: {_false_face_scenes(row)}" for name, row in report.items())
        + ".",
    ]
    small = next(iter(report.values()))["faces 24-40 px by photo size"]
    lines += [
        "",
        "Recall of the 24-40 px faces by photo size (photos up to 1920x1080 pixels are searched enlarged by `yunet`):",
        "",
        "| detector | " + " | ".join(f"{size} ({count} faces)" for size, count in small.items()) + " |",
        "|---" * (1 + len(small)) + "|",
    ]
    lines += [
        f"| {name} | " + " | ".join(f"{100 * v:.1f}%" for v in row["recall 24-40 px by photo size"].values()) + " |"
        for name, row in report.items()
    ]
    lines += [
        "",
        "Recall by head roll (FER+ faces at 48-96 px turned in the image plane; 72 faces per angle):",
        "",
        "| detector | " + " | ".join(f"{angle} deg" for angle in ROLLS) + " |",
        "|---" * (1 + len(ROLLS)) + "|",
    ]
    lines += [
        f"| {name} | " + " | ".join(f"{100 * v:.1f}%" for v in row["recall by roll"].values()) + " |"
        for name, row in report.items()
    ]
    photos = list(next(row for row in report.values() if "end to end ms" in row)["end to end ms"])
    lines += [
        "",
        "End to end, `Recognizer.analyze` with the shipped `default` model (detect, align, check, classify), median ms "
        "of 15 rounds, the detectors taking turns (faces found in brackets):",
        "",
        "| detector | " + " | ".join(photos) + " |",
        "|---" * (1 + len(photos)) + "|",
    ]
    lines += [
        f"| {name} | "
        + " | ".join(f"{row['end to end ms'][p]:.0f} ({row['end to end faces'][p]})" for p in photos)
        + " |"
        for name, row in report.items()
        if "end to end ms" in row
    ]
    return "\n".join(lines) + "\n"


def _false_face_scenes(row: dict) -> str:
    counts = Counter(row["face-free scenes with false faces"])
    return ", ".join(f"{scene} x{n}" for scene, n in counts.items()) or "none"


if __name__ == "__main__":
    main()
