"""Memory of `spherefer serve` when many large photos arrive at once, with and without the per-worker bound.

    python benchmarks/bench_serve_memory.py [--clients 8] [--rounds 2] [--workers 2] [--busy 64 2]

For each ``--busy`` value (requests per worker that decode and analyse images at once; 64 is
about unbounded, the behaviour before the bound, 1 the default) a fresh server starts with
``--workers`` processes, and ``--clients`` clients post a 5000x5000 PNG (a 512-pixel face
on a flat background: small on the wire, 25 megapixels decoded) to /v1/predict ``--rounds``
times each, all at once. The resident memory of the server's processes is sampled every
0.1 s: peak, and 3 s after the last answer. Answers are counted by status (503: busy, try
again; other non-200: errors). Writes docs/results/serve_memory.{md,json}.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from bench_serve import free_port, start_server
from PIL import Image

from spherefer.core.images import example_photo
from spherefer.core.storage import atomic_write, write_json


def big_photo() -> bytes:
    canvas = Image.new("RGB", (5000, 5000), (120, 120, 120))
    canvas.paste(Image.open(example_photo()).convert("RGB"), (2244, 2244))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as handle:
                total += next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:"))
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


def run(busy: int, args: argparse.Namespace, photo: bytes) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        server = start_server(port, home, "--workers", str(args.workers), "--max-busy", str(busy))
        try:
            time.sleep(2.0)  # every worker up
            idle = tree_rss(server.pid)
            samples, statuses, latencies, done = [idle], [], [], threading.Event()

            def sample() -> None:
                while not done.is_set():
                    samples.append(tree_rss(server.pid))
                    time.sleep(0.1)

            def client() -> None:
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    try:
                        statuses.append(
                            httpx.post(
                                f"{url}/v1/predict", files={"file": ("big.png", photo, "image/png")}, timeout=300
                            ).status_code
                        )
                    except httpx.HTTPError:
                        statuses.append(-1)
                    latencies.append(time.perf_counter() - start)

            sampler = threading.Thread(target=sample)
            sampler.start()
            clients = [threading.Thread(target=client) for _ in range(args.clients)]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
            time.sleep(3.0)
            done.set()
            sampler.join()
            after = tree_rss(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    codes = np.array(statuses)
    return {
        "busy": busy,
        "idle_mb": idle / 2**20,
        "peak_mb": max(samples) / 2**20,
        "after_mb": after / 2**20,
        "ok": int((codes == 200).sum()),
        "busy_503": int((codes == 503).sum()),
        "errors": int(((codes != 200) & (codes != 503)).sum()),
        "median_s": float(np.median(latencies)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--busy", type=int, nargs="+", default=[64, 1])
    parser.add_argument("--output", type=Path, default=Path("docs/results/serve_memory"))
    args = parser.parse_args()
    photo = big_photo()
    results = [run(busy, args, photo) for busy in args.busy]
    rows = [
        f"| {r['busy']} | {r['idle_mb']:.0f} | **{r['peak_mb']:.0f}** ({r['peak_mb'] / r['idle_mb']:.1f}x idle) | "
        f"{r['after_mb']:.0f} | "
        f"{r['ok']} | {r['busy_503']} | {r['errors']} | {r['median_s']:.1f} |"
        for r in results
    ]
    markdown = "\n".join(
        [
            f"`python benchmarks/bench_serve_memory.py --clients {args.clients} --rounds {args.rounds} "
            f"--workers {args.workers} --busy {' '.join(map(str, args.busy))}`: {args.clients} clients x {args.rounds} "
            f"POST /v1/predict of a 5000x5000 PNG ({len(photo) / 1024:.0f} KB) at once, {args.workers} workers; "
            "resident memory of the server's processes (MB).",
            "",
            "| requests decoding at once per worker | idle | peak | 3 s after | 200 | 503 (busy) | errors "
            "| median answer (s) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    print(markdown)
    with atomic_write(args.output.with_suffix(".md"), "w") as handle:
        handle.write(markdown)
    write_json(
        args.output.with_suffix(".json"), {"settings": vars(args) | {"output": str(args.output)}, "results": results}
    )


if __name__ == "__main__":
    main()
