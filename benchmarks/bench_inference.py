"""Inference speed of a model on aligned face crops (this machine, CPU).

    python benchmarks/bench_inference.py [--model default] [--batch 256] [--repeats 5]

Measures, in one run:
  * baseline: the bare network forward on a ready tensor batch (no preprocessing);
  * batched:  Recognizer.predict on a list of uint8 numpy crops (preprocess + embed + classify);
  * single:   Recognizer.predict on one crop at a time (per-face latency).
Prints a markdown table with faces/s, ms/face and the ratio of each to the baseline
measured in the same run (the machine is shared and noisy; ratios travel better).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import spherefer


def best_of(fn, repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--singles", type=int, default=200)
    args = parser.parse_args()

    recognizer = spherefer.load_model(args.model, batch_size=args.batch)
    cfg = recognizer.config
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (cfg.input_size, cfg.input_size), dtype=np.uint8) for _ in range(args.batch)]
    tensor = recognizer.preprocess(crops)

    with torch.inference_mode():
        baseline = best_of(lambda: recognizer.model.embed(tensor), args.repeats)
    batched = best_of(lambda: recognizer.predict(crops), args.repeats)
    singles = crops[: args.singles]
    single_times = []
    for crop in singles:
        start = time.perf_counter()
        recognizer.predict(crop)
        single_times.append(time.perf_counter() - start)
    single_median = statistics.median(single_times[10:])

    rows = [
        ("baseline: network forward, ready tensor", args.batch / baseline, 1000 * baseline / args.batch),
        ("predict, batched uint8 crops", args.batch / batched, 1000 * batched / args.batch),
        ("predict, one crop per call (median)", 1 / single_median, 1000 * single_median),
    ]
    print(f"model `{args.model}` ({cfg.arch}, {cfg.input_size}px, {cfg.embedding_size}-d), batch {args.batch}, torch threads {torch.get_num_threads()}")
    print("")
    print("| workload | faces/s | ms/face | speed vs baseline |")
    print("|---|---|---|---|")
    for name, rate, ms in rows:
        print(f"| {name} | {rate:,.0f} | {ms:.2f} | {rate / rows[0][1]:.2f}x |")


if __name__ == "__main__":
    main()
