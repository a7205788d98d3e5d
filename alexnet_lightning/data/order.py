"""The training order: a new permutation every epoch that depends only on the seed and the epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffle(Sampler[int]):
    """A new order every epoch that depends only on ``seed`` and the epoch, which Lightning passes in
    ``set_epoch``: a run resumed from a checkpoint shuffles exactly like the uninterrupted run.
    (DataLoader's own shuffle draws from the global generator, whose state a resume does not replay.)
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def permutation(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation().tolist())
