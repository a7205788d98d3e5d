from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from fixtures import make_catsdogs_folder

from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.data.split import stratified_split
from alexnet_lightning.errors import UserError


def _names(labels: list[int]) -> list[str]:
    return [f"{'cat' if y == 0 else 'dog'}.{i}.jpg" for i, y in enumerate(labels)]


def test_split_is_deterministic_stratified_and_disjoint() -> None:
    labels = [0] * 70 + [1] * 30
    keys = _names(labels)
    first = stratified_split(labels, keys, 0.2, 0.1, seed=0)
    assert first == stratified_split(labels, keys, 0.2, 0.1, seed=0)
    assert first != stratified_split(labels, keys, 0.2, 0.1, seed=1)
    positions = [p for split in first.values() for p in split]
    assert sorted(positions) == list(range(100)), "every item in exactly one split"
    assert Counter(labels[p] for p in first["val"]) == {0: 14, 1: 6}
    assert Counter(labels[p] for p in first["test"]) == {0: 7, 1: 3}


def test_split_follows_names_not_input_order() -> None:
    labels = [0] * 40 + [1] * 40
    keys = _names(labels)
    order = list(range(80))
    random.Random(3).shuffle(order)
    shuffled = stratified_split([labels[i] for i in order], [keys[i] for i in order], 0.25, 0.0, seed=7)
    plain = stratified_split(labels, keys, 0.25, 0.0, seed=7)
    for split in ("train", "val"):
        assert sorted(keys[order[p]] for p in shuffled[split]) == sorted(keys[p] for p in plain[split])


def test_a_new_file_moves_few_others() -> None:
    labels = [0] * 200
    before = stratified_split(labels, _names(labels), 0.2, 0.0, seed=0)
    after = stratified_split([*labels, 0], [*_names(labels), "cat.new.jpg"], 0.2, 0.0, seed=0)
    names = _names(labels)
    val_before = {names[p] for p in before["val"]}
    val_after = {([*names, "cat.new.jpg"])[p] for p in after["val"]}
    assert len(val_before - val_after) <= 1


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(UserError, match="leave something to train on"):
        stratified_split([0, 1], ["a", "b"], 0.6, 0.4, seed=0)


def test_datamodule_writes_the_split_and_test_falls_back_to_val(tmp_path: Path) -> None:
    root = make_catsdogs_folder(tmp_path / "train", n_per_class=10)
    dm = ImageDataModule("catsdogs", str(root), val_fraction=0.2, test_fraction=0.0, normalize="half", image_size=32)
    dm.setup()
    dm.write_run_files(tmp_path / "run")
    written = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(written["train"]) == 16 and len(written["val"]) == 4 and written["test"] == []
    assert not set(written["train"]) & set(written["val"])
    assert all(name.startswith(("cat.", "dog.")) for name in written["val"])
    x, _ = next(iter(dm.test_dataloader()))
    assert x.shape == (4, 3, 32, 32), "no test split: test runs on val"
    again = ImageDataModule("catsdogs", str(root), val_fraction=0.2, test_fraction=0.0, normalize="half")
    again.load_samples()
    assert again.splits == dm.splits


def test_an_empty_validation_split_is_an_error(tmp_path: Path) -> None:
    root = make_catsdogs_folder(tmp_path / "train", n_per_class=3)
    with pytest.raises(UserError, match=r"the validation split is empty \(6 images, data.val_fraction=0.1\)"):
        ImageDataModule("catsdogs", str(root)).load_samples()
