"""Inference speed and memory of a network, measured the same way everywhere (eval, export)."""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import torch
from torch import nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure(
    net: nn.Module, shape: tuple[int, int, int], device: torch.device, batch_size: int, seconds: float
) -> dict[str, float]:
    """Images/s and per-batch latency p50/p95 (ms) over random inputs, for about ``seconds``."""
    net.eval()
    x = torch.randn(batch_size, *shape, device=device)
    for _ in range(3):  # warm-up: allocator, cuDNN autotuning, lazy init
        net(x)
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < seconds and len(times) < 1000):
        t = time.perf_counter()
        net(x)
        _sync(device)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1000
    return {
        f"batch{batch_size}/images_per_s": batch_size * len(times) / float(np.sum(times)),
        f"batch{batch_size}/latency_p50_ms": float(np.percentile(ms, 50)),
        f"batch{batch_size}/latency_p95_ms": float(np.percentile(ms, 95)),
    }


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Peak CUDA memory allocated on a GPU, else the process's peak resident set size."""
    if device.type == "cuda":
        return {"peak_cuda_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"peak_rss_mb": rss / (2**20 if sys.platform == "darwin" else 2**10)}


def benchmark(net: nn.Module, shape: tuple[int, int, int], device: torch.device, seconds: float) -> dict[str, float]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    results: dict[str, float] = {}
    for batch_size in (1, 64):
        results.update(measure(net, shape, device, batch_size, seconds))
    return {**results, **peak_memory_mb(device)}
