"""Latency and throughput of a running ``alexnet_lightning.serve``: one client, then N concurrent clients.

python -m alexnet_lightning.serve ckpt_path=CKPT port=8000 log_level=warning &
python benchmarks/serve_load.py --url http://127.0.0.1:8000 --image photo.jpg --clients 32 --requests 640

Every request posts the same image to ``/predict``; a response other than 200 is counted and shown.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx


def post(client: httpx.Client, url: str, content: bytes, name: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.post(f"{url}/predict", files={"file": (name, content)})
    return time.perf_counter() - start, response.status_code


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--single", type=int, default=100, help="sequential requests of the one-client run")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=640, help="requests of the concurrent run, in all")
    args = parser.parse_args()
    content, name = args.image.read_bytes(), args.image.name

    with httpx.Client(timeout=60) as client:
        for _ in range(5):  # warm-up
            post(client, args.url, content, name)
        single = [post(client, args.url, content, name) for _ in range(args.single)]
    latencies = [t for t, _ in single]
    print(
        f"one client, {args.single} requests: p50 {statistics.median(latencies) * 1e3:.1f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1e3:.1f} ms"
    )

    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=args.clients)) as client:
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda _: post(client, args.url, content, name), range(args.requests)))
        wall = time.perf_counter() - start
    codes = [code for _, code in results]
    latencies = [t for t, _ in results]
    print(
        f"{args.clients} concurrent clients, {args.requests} requests: {args.requests / wall:.1f} requests/s, "
        f"p50 {statistics.median(latencies) * 1e3:.1f} ms, p95 {percentile(latencies, 0.95) * 1e3:.1f} ms, "
        f"{codes.count(200)} answered 200" + ("" if codes.count(200) == len(codes) else f", others: {set(codes)}")
    )


if __name__ == "__main__":
    main()
