"""Deterministic, stratified splits that never depend on directory order or the machine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alexnet_lightning.errors import UserError


def stratified_split(
    labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Split positions per class with a seeded legacy RandomState (its stream never changes).

    Every position lands in exactly one split; each class contributes ``round(n * fraction)``
    items to val and test, so small classes stay represented.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise UserError(
            f"split fractions val={val_fraction}, test={test_fraction} must be >= 0 and leave something to train on"
        )
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for cls in np.unique(labels):
        positions = np.flatnonzero(labels == cls)
        positions = positions[rng.permutation(len(positions))]
        n_val = round(len(positions) * val_fraction)
        n_test = round(len(positions) * test_fraction)
        splits["val"] += positions[:n_val].tolist()
        splits["test"] += positions[n_val : n_val + n_test].tolist()
        splits["train"] += positions[n_val + n_test :].tolist()
    return {name: sorted(p) for name, p in splits.items()}


def write_split(path: Path, names: dict[str, list[str]]) -> None:
    """Record which item went where, so a run can be audited or repeated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(names, indent=1))
