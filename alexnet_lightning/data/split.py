"""Deterministic, stratified splits that never depend on directory order or the machine."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from alexnet_lightning.atomic import write_atomic
from alexnet_lightning.errors import UserError


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def stratified_split(
    labels: Sequence[int], keys: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Split positions per class by a seeded hash of each item's name.

    The order inside a class depends only on the seed and the names (never on directory
    order, the machine or the library version), so the same files always split the same
    way, and adding a few files moves only a few others across a split boundary. Each class
    contributes ``round(n * fraction)`` items to val and test, so small classes stay represented.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise UserError(
            f"split fractions val={val_fraction}, test={test_fraction} must be >= 0 and leave something to train on"
        )
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for label in sorted(by_class):
        positions = sorted(by_class[label], key=lambda p: _rank(seed, keys[p]))
        n_val = round(len(positions) * val_fraction)
        n_test = round(len(positions) * test_fraction)
        splits["val"] += positions[:n_val]
        splits["test"] += positions[n_val : n_val + n_test]
        splits["train"] += positions[n_val + n_test :]
    return {name: sorted(p) for name, p in splits.items()}


def write_split(path: Path, names: dict[str, list[str]]) -> None:
    """Record which item went where, so a run can be audited or repeated."""
    write_atomic(path, json.dumps(names, indent=1))
