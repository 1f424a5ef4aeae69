"""Load test of `spherefer serve` on loopback: latency, throughput, lost enrolments.

    python benchmarks/bench_serve.py --clients 1 4 8 --seconds 20 --workers 1 --output docs/results/serve_load

Starts `spherefer serve` (a fresh SQLite database and API key in a temporary home), then
for each client count runs that many concurrent HTTP clients for --seconds: every client
posts the example photo (the 512x512 astronaut, one face) to /v1/predict in a loop, and one
extra client enrols a new class (3 photos) after another into the same profile. Reports
requests/s and p50/p99 latency per endpoint, and compares the enrolments the server
acknowledged (201) with the classes the bank holds afterwards (lost = acknowledged -
present). Baseline, same run: `Recognizer.analyze` on the same photo in this process
(no HTTP), so the HTTP cost reads as a ratio.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from spherefer import load_model
from spherefer.core.images import example_photo
from spherefer.core.storage import atomic_write, write_json

KEY = "benchmark-key-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, home: str, *options: str) -> subprocess.Popen:
    """`spherefer serve` on ``port`` with a fresh ``home`` and the benchmark's key, once it answers."""
    env = dict(os.environ, SPHEREFER_HOME=home, SPHEREFER_API_KEY=KEY)
    server = subprocess.Popen(
        [sys.executable, "-m", "spherefer.cli", "serve", "--port", str(port), *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the server did not start")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_level(url: str, clients: int, seconds: float, photo: bytes, level: int) -> dict:
    stop = time.perf_counter() + seconds
    predict_ms: list[float] = []
    enrol_ms: list[float] = []
    errors: list[str] = []
    acknowledged: list[str] = []
    lock = threading.Lock()

    def predictor() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                response = client.post("/v1/predict", files={"file": ("a.jpg", photo, "image/jpeg")})
                with lock:
                    (predict_ms if response.status_code == 200 else errors).append(
                        1000 * (time.perf_counter() - start)
                        if response.status_code == 200
                        else f"predict {response.status_code}"
                    )

    def enroller() -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": KEY}) as client:
            i = 0
            while time.perf_counter() < stop:
                name = f"load{level}_{i}"
                files = [("files", (f"{k}.jpg", photo, "image/jpeg")) for k in range(3)]
                start = time.perf_counter()
                response = client.post("/v1/classes?profile=load", data={"name": name}, files=files)
                with lock:
                    if response.status_code == 201:
                        enrol_ms.append(1000 * (time.perf_counter() - start))
                        acknowledged.append(name)
                    else:
                        errors.append(f"enrol {response.status_code}")
                i += 1

    threads = [threading.Thread(target=predictor) for _ in range(clients)] + [threading.Thread(target=enroller)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    present = set(c["name"] for c in httpx.get(f"{url}/v1/classes?profile=load", timeout=60).json()["classes"])
    lost = [name for name in acknowledged if name not in present]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "predict": {
            "requests": len(predict_ms),
            "per_second": len(predict_ms) / elapsed,
            "p50_ms": percentile(predict_ms, 50),
            "p99_ms": percentile(predict_ms, 99),
        },
        "enrol": {
            "requests": len(enrol_ms),
            "per_second": len(enrol_ms) / elapsed,
            "p50_ms": percentile(enrol_ms, 50),
            "p99_ms": percentile(enrol_ms, 99),
        },
        "errors": errors[:10],
        "error_count": len(errors),
        "acknowledged": len(acknowledged),
        "lost": len(lost),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("docs/results/serve_load"))
    args = parser.parse_args()

    photo = example_photo().read_bytes()
    recognizer = load_model("default")
    recognizer.analyze(example_photo())
    times = []
    for _ in range(50):
        start = time.perf_counter()
        recognizer.analyze(example_photo())
        times.append(1000 * (time.perf_counter() - start))
    baseline = statistics.median(times)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        server = start_server(port, home, "--workers", str(args.workers))
        try:
            httpx.post(f"{url}/v1/predict", files={"file": ("a.jpg", photo, "image/jpeg")}, timeout=60)
            levels = [run_level(url, c, args.seconds, photo, c) for c in args.clients]
        finally:
            server.terminate()
            server.wait(timeout=30)

    cpu = os.cpu_count()
    load = os.getloadavg()[0]
    rows = [
        f"| {r['clients']} + 1 | {r['predict']['per_second']:.1f} | {r['predict']['p50_ms']:.0f} "
        f"({r['predict']['p50_ms'] / baseline:.1f}x) | "
        f"{r['predict']['p99_ms']:.0f} | {r['enrol']['requests']} | {r['enrol']['p50_ms']:.0f} | "
        f"{r['enrol']['p99_ms']:.0f} | {r['error_count']} | **{r['lost']}** |"
        for r in levels
    ]
    markdown = "\n".join(
        [
            "# `spherefer serve` under load (loopback)",
            "",
            f"Made by `python benchmarks/bench_serve.py --clients {' '.join(map(str, args.clients))} --seconds "
            f"{args.seconds:g} --workers {args.workers}` "
            f"on {cpu} CPUs (load average {load:.1f} at the end). Every predict client posts the 512x512 astronaut "
            "photo (one face) in a loop; "
            "one more client enrols a new class from 3 photos after another into profile `load`.",
            f"Baseline, same run: `Recognizer.analyze` on the same photo in-process, median **{baseline:.1f} ms**; "
            "latencies are also given as a multiple of it.",
            "",
            "| clients (predict + enrol) | predict req/s | predict p50 ms (x baseline) | predict p99 ms | enrolments "
            "| enrol p50 ms | enrol p99 ms | errors | lost enrolments |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Lost enrolments: acknowledged with 201 but missing from the bank afterwards.",
            "",
        ]
    )
    print(markdown)
    with atomic_write(args.output.with_suffix(".md"), "w") as handle:
        handle.write(markdown)
    write_json(args.output.with_suffix(".json"), {"baseline_ms": baseline, "workers": args.workers, "levels": levels})


if __name__ == "__main__":
    main()
