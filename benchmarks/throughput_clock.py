"""Timing for throughput.py: median images/s over windows of steps, and epoch ends."""

from __future__ import annotations

import statistics
import time

import lightning as L
import torch


class Clock:
    """Step ends -> median images/s over windows after warm-up.

    The device is synchronized only at window boundaries, so the host may queue the next steps
    while the device works, as in real training.
    """

    def __init__(self, device: torch.device, batch_size: int, warmup: int, steps: int, repeats: int) -> None:
        self.device, self.batch_size = device, batch_size
        self.warmup, self.steps, self.repeats = warmup, steps, repeats
        self.ticks = -1  # the first tick marks the start, before step 1
        self.times: dict[int, float] = {}

    @property
    def total(self) -> int:
        return self.warmup + self.steps * self.repeats

    @property
    def done(self) -> bool:
        return self.ticks >= self.total

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks >= self.warmup and (self.ticks - self.warmup) % self.steps == 0:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.times[self.ticks] = time.perf_counter()

    def images_per_s(self) -> float:
        starts = [self.warmup + k * self.steps for k in range(self.repeats)]
        rates = [self.steps * self.batch_size / (self.times[s + self.steps] - self.times[s]) for s in starts]
        return statistics.median(rates)


class ClockCallback(L.Callback):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_train_batch_end(self, *args) -> None:
        self.clock.tick()


class EpochTimes(L.Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_epoch_end(self, *args) -> None:
        self.ends.append(time.perf_counter())
