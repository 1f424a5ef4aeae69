"""Photos per second: ``spherefer predict`` in one process vs ``--engine ray`` with local workers.

    nice -n 5 python benchmarks/bench_ray.py --output docs/results [--photos 200 1000] [--rounds 3] [--workers 2]
    [--batch-size 16]

As many 640x480 JPEG files as the largest ``--photos`` are written to a temporary
folder, made from real photos -- the bundled example photo, scikit-image's astronaut,
cameraman, coffee and cat, and ../shared/photos when present -- by random flips,
rotations, scaling, shifts, brightness/contrast changes and JPEG qualities (some show
no face, as real folders do); a smaller run takes the first files. Both paths analyse
the same files and produce the same JSON lines (checked):

* plain: what ``spherefer predict`` does -- one process, ``load_model(threads=1)``,
  ``analyze_sources`` over the files (model loading not timed, reported apart);
* ray: :func:`spherefer.engines.ray.predict_with_ray` on a local Ray instance with
  ``--workers`` CPUs, started once before the rounds (start-up reported apart). Each
  run still starts its own actor pool, each actor loading the model: that is in the
  time of a whole run, as it is in every ``spherefer predict --engine ray``. The
  steady state leaves it out: the rate of the largest run from its first result on.

Rounds are interleaved (plain and ray swap places every round); medians over rounds.
The load average is reported: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import ray
from common import SHARED_PHOTOS, cpu_model, letterbox
from PIL import Image
from skimage import data

from spherefer import Recognizer, load_model
from spherefer.core.images import example_photo
from spherefer.core.labels import frame_records
from spherefer.engines.batch import analyze_sources
from spherefer.engines.ray import predict_with_ray, start_local
from spherefer.face import image_to_rgb


def base_photos() -> dict[str, np.ndarray]:
    """The real photos the test files are made from (RGB)."""
    photos = {
        "example": image_to_rgb(example_photo()),
        "astronaut": data.astronaut(),
        "camera": np.stack([data.camera()] * 3, axis=-1),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
    }
    for path in sorted(SHARED_PHOTOS.glob("*.jpg")):
        photos[path.stem] = image_to_rgb(path)
    return photos


def augmented(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 640x480 variant of ``rgb``: flipped or not, rotated up to 12 degrees, scaled 0.7-1.1, shifted, re-lit."""
    if rng.random() < 0.5:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
    canvas = letterbox(rgb)
    matrix = cv2.getRotationMatrix2D(
        (320 + rng.uniform(-40, 40), 240 + rng.uniform(-30, 30)), rng.uniform(-12, 12), rng.uniform(0.7, 1.1)
    )
    moved = cv2.warpAffine(canvas, matrix, (640, 480), borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 90, 90))
    return np.clip(moved * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)


def write_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` augmented JPEGs in ``folder``, the base photos taken in turn."""
    rng = np.random.default_rng(seed)
    bases = list(base_photos().items())
    files = []
    for index in range(count):
        name, rgb = bases[index % len(bases)]
        path = folder / f"{index:04d}_{name}.jpg"
        Image.fromarray(augmented(rgb, rng)).save(path, quality=int(rng.integers(80, 96)))
        files.append(path)
    return files


def run_plain(recognizer: Recognizer, files: list[Path]) -> tuple[float, list[str]]:
    """Seconds for the in-process path over ``files``, and its JSON lines."""
    lines: list[str] = []

    def emit(source: str, faces: list, frame: int | None, when: float | None) -> None:
        lines.extend(json.dumps(row) for row in frame_records(source, [face.to_dict() for face in faces], frame, when))

    start = time.perf_counter()
    analyze_sources(recognizer, files, emit)
    return time.perf_counter() - start, lines


def run_ray(files: list[Path], workers: int, batch_size: int) -> tuple[float, float, float, list[str]]:
    """For the Ray path over ``files`` (the Ray instance already up): seconds in all, seconds to
    the first result, photos per second after it (see :func:`main`), and its JSON lines."""
    lines: list[str] = []
    arrivals: list[float] = []
    start = time.perf_counter()
    for result in predict_with_ray("default", None, files, workers=workers, batch_size=batch_size):
        arrivals.append(time.perf_counter() - start)
        lines.extend(json.dumps(row) for row in result.records)
    first = arrivals[0]
    released = sum(1 for moment in arrivals if moment - first < 0.05)  # the results that came with the first task's
    return arrivals[-1], first, (len(files) - released) / (arrivals[-1] - first), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--photos", type=int, nargs="+", default=[200, 1000], help="run sizes (a smaller run takes the first files)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output", type=Path, default=None, help="folder for ray.md and ray.json")
    args = parser.parse_args()

    sizes = sorted(set(args.photos))
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        files = write_photos(Path(tmp), sizes[-1])
        start = time.perf_counter()
        recognizer = load_model("default", threads=1)
        model_load = time.perf_counter() - start
        start = time.perf_counter()
        start_local(args.workers)  # as `spherefer predict --engine ray` does without --ray-address
        ray_start = time.perf_counter() - start
        rounds: list[dict[str, float]] = []
        references: dict[int, list[str]] = {}
        try:
            for number in range(args.rounds):
                pair = (
                    ("plain", "ray") if number % 2 == 0 else ("ray", "plain")
                )  # interleaved: they swap places every round
                timing: dict[str, float] = {}
                for size in sizes:
                    for which in pair:
                        if which == "plain":
                            timing[f"plain_{size}_s"], lines = run_plain(recognizer, files[:size])
                        else:
                            (
                                timing[f"ray_{size}_s"],
                                timing[f"ray_{size}_first_s"],
                                timing[f"ray_{size}_steady_per_s"],
                                lines,
                            ) = run_ray(files[:size], args.workers, args.batch_size)
                        if references.setdefault(size, lines) != lines:
                            sys.exit(f"round {number}: the plain and ray paths' records for {size} photos differ")
                rounds.append(timing)
                print(
                    f"round {number}: " + ", ".join(f"{key} {value:.2f}" for key, value in timing.items()), flush=True
                )
        finally:
            ray.shutdown()
    load_end = os.getloadavg()

    def median(key: str, size: int) -> float:
        return statistics.median(size / r[f"{key}_{size}_s"] for r in rounds)

    largest = sizes[-1]
    first = statistics.median(r[f"ray_{largest}_first_s"] for r in rounds)
    steady = statistics.median(r[f"ray_{largest}_steady_per_s"] for r in rounds)
    fixed = first - args.batch_size / (
        steady / args.workers
    )  # the first result waits for one task of batch_size photos
    plain = {size: median("plain", size) for size in sizes}
    whole = {size: median("ray", size) for size in sizes}
    faces = sum(1 for line in references[largest] if json.loads(line)["label"] != "no_face")
    # photos from which a whole ray run reaches 0.9x the plain rate: N / (fixed + N / steady) = 0.9 * plain
    margin = 1 / plain[largest] - 0.9 / steady
    break_even = 0.9 * fixed / margin if margin > 0 else None
    niceness = os.nice(0)
    command = f"{f'nice -n {niceness} ' if niceness else ''}python {' '.join(sys.argv)}"
    result = {
        "command": command,
        "photos": sizes,
        "face_records_in_largest": faces,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "rounds": rounds,
        "plain_photos_per_s": plain,
        "ray_photos_per_s": whole,
        "ratio": {size: whole[size] / plain[size] for size in sizes},
        "ray_steady_photos_per_s": steady,
        "steady_ratio": steady / plain[largest],
        "ray_first_result_s": first,
        "ray_run_fixed_cost_s": fixed,
        "break_even_photos_for_0.9": break_even,
        "ray_cluster_start_s": ray_start,
        "plain_model_load_s": model_load,
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "ray": ray.__version__,
            "load_average_start": load_start,
            "load_average_end": load_end,
        },
    }
    rows = ["| path | photos | photos/s (median) | ray / plain |", "|---|---:|---:|---:|"]
    for size in sizes:
        rows.append(
            f"| plain: one process, `load_model(threads=1)` (`spherefer predict`) | {size} | {plain[size]:.1f} | |"
        )
        rows.append(
            f"| ray: {args.workers} local workers, whole run (`--engine ray`) | {size} | {whole[size]:.1f} | "
            f"**{whole[size] / plain[size]:.2f}x** |"
        )
    rows.append(
        f"| ray: {args.workers} local workers, after the first result (steady state) | {largest} | {steady:.1f} | "
        f"**{steady / plain[largest]:.2f}x** |"
    )
    table = "\n".join(rows)
    start_up = "\n".join(
        [
            "| start-up, paid once per command, not in the rates above | seconds |",
            "|---|---:|",
            f"| local Ray instance (`ray.init(num_cpus={args.workers})`; not paid with `--ray-address`) | "
            f"{ray_start:.1f} |",
            f"| each ray run: actor pool start and model loads (first result after {first:.1f} s, less one task) | "
            f"{fixed:.1f} |",
            f"| plain path: model load | {model_load:.2f} |",
        ]
    )
    print(f"\n{table}\n\n{start_up}")
    if args.output is None:
        return
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "ray.json").write_text(json.dumps(result, indent=2) + "\n")

    def verdict(ratio: float) -> str:
        return "met" if ratio >= 0.9 else "missed"

    whole_verdicts = ", ".join(
        f"{size} photos {whole[size] / plain[size]:.2f}x ({verdict(whole[size] / plain[size])})" for size in sizes
    )
    even = (
        f"a whole run reaches 0.9x from about {break_even:,.0f} photos"
        if break_even is not None
        else "no run size would reach 0.9x: the steady state is below it"
    )

    def round_row(number: int, r: dict[str, float]) -> str:
        cells = [
            f"{r[f'plain_{size}_s']:.2f} | {r[f'ray_{size}_s']:.2f} ({r[f'ray_{size}_first_s']:.2f})" for size in sizes
        ]
        return f"| {number} | {' | '.join(cells)} | {r[f'ray_{largest}_steady_per_s']:.0f} |"

    per_round = "\n".join(
        [
            "| round | " + " | ".join(f"plain {size} | ray {size}" for size in sizes) + " | steady |",
            "|---:|" + "---:|" * (2 * len(sizes) + 1),
            *(round_row(number, r) for number, r in enumerate(rounds)),
        ]
    )
    photos_note = (
        f"{largest} JPEGs (640x480) augmented from real photos ({faces} face records, the rest photos without a face); "
        f"a run of fewer takes the first ones"
    )
    (args.output / "ray.md").write_text(f"""# `spherefer predict --engine ray` vs the plain path

Made by `{command}`
(settings: `--photos {" ".join(map(str, sizes))} --rounds {args.rounds} --workers {args.workers} --batch-size
{args.batch_size}`).

- Machine: {cpu_model()}, {os.cpu_count()} CPUs shared with other work: load average {load_start[0]:.2f} at the start,
  {load_end[0]:.2f} at the end. Python {platform.python_version()}, Ray {ray.__version__}.
- Photos: {photos_note}.
- {args.rounds} interleaved rounds, medians. Both paths wrote the same records in every round.

{table}

{start_up}

Target ray / plain >= 0.9: steady state {steady / plain[largest]:.2f}x ({verdict(steady / plain[largest])}); whole runs
{whole_verdicts}. From these numbers {even}.

Every round (seconds; ray: first result in brackets; steady: photos/s):

{per_round}

Caveats:

- Every `spherefer predict --engine ray` starts its own actor pool: {args.workers} new worker processes that import
  spherefer and load the model before the first photo is analysed. That start is in the whole runs; the steady state
  leaves it out: the photos that arrived after the first task's results / the time from then to the last (slightly
  high, by at most one task per other worker that was already running: {(args.workers - 1) * args.batch_size} of
  {largest} photos).
- Without `--ray-address` the command also starts (and stops) a local Ray instance first ({ray_start:.1f} s here), and
  its first run starts Ray Data's own helper actors too (a statistics and an autoscaling actor: about 2.5 s of CPU
  when measured apart); here they started in round 0 only. For a few hundred photos on one machine the plain engine
  is the faster choice; `--engine ray` pays off on large inputs and on clusters with more cores.
- {args.workers} workers on {os.cpu_count()} CPUs share the cores with the driver (which sorts and writes the records),
  Ray's own processes and whatever else runs on the machine (see the load average); the rounds vary accordingly
  (ray.json has every round).
- {args.batch_size} photos per Ray task; a task's records reach the driver when the whole task is done.
""")
    print(f"wrote {args.output / 'ray.md'} and {args.output / 'ray.json'}")


if __name__ == "__main__":
    main()
