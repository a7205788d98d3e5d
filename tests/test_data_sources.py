from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
import torch
from fixtures import accept_fake_cifar10, make_catsdogs_folder, make_class_folders, make_fake_cifar10, make_fake_mnist

from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.data.sources import (
    catsdogs,
    cifar10,
    find_samples,
    imagefolder,
    label_from_name,
    mnist,
    validate,
)
from alexnet_lightning.errors import UserError


def test_catsdogs_labels_come_from_name_prefixes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_catsdogs_folder(tmp_path / "train", n_per_class=3)
    (root / "Cat.100.JPG").write_bytes((root / "cat.0.jpg").read_bytes())
    (root / "DOG.101.Png").write_bytes((root / "dog.0.jpg").read_bytes())
    (root / "bird.1.jpg").write_bytes((root / "dog.0.jpg").read_bytes())
    (root / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0")
    with caplog.at_level(logging.WARNING):
        samples = catsdogs(str(root))
    names = {samples.describe(i): samples.classes[y] for i, y in enumerate(samples.labels)}
    assert names["Cat.100.JPG"] == "cat" and names["DOG.101.Png"] == "dog" and names["dog.2.jpg"] == "dog"
    assert len(names) == 8 and "bird.1.jpg" not in names
    assert samples.skipped == {"no class in the name": 1, "not an image": 1, "hidden": 1}
    assert "1 files match no class prefix or folder (cat/dog) and are ignored: bird.1.jpg" in caplog.text
    assert list(root.iterdir()), "nothing is moved"
    assert samples.load(samples.items[0]).dtype == torch.uint8


def test_label_from_name_reads_the_folder_or_the_kaggle_prefix_in_any_case() -> None:
    classes = ["cat", "Dog"]
    assert label_from_name(Path("data/DOG/x.jpg"), classes) == 1
    assert label_from_name("train/Cat.12.jpg", classes) == 0
    assert label_from_name(Path("dog.7.png"), classes) == 1
    assert label_from_name(Path("photos/holiday.jpg"), classes) is None
    assert label_from_name(Path("cats/1.jpg"), ["cats", "dogs"]) == 0


def test_catsdogs_reads_class_sub_folders_but_never_the_name_of_data_dir(tmp_path: Path) -> None:
    root = make_catsdogs_folder(tmp_path / "cat", n_per_class=2)  # a Kaggle folder that happens to be called cat
    (root / "Dog").mkdir()
    (root / "Dog" / "IMG_1.jpg").write_bytes((root / "dog.0.jpg").read_bytes())
    samples = catsdogs(str(root))
    names = {samples.describe(i): samples.classes[y] for i, y in enumerate(samples.labels)}
    kaggle = {"cat.0.jpg": "cat", "cat.1.jpg": "cat", "dog.0.jpg": "dog", "dog.1.jpg": "dog"}
    assert names == kaggle | {"Dog/IMG_1.jpg": "dog"}


def test_catsdogs_test_dir_becomes_the_test_split(tmp_path: Path) -> None:
    train = make_catsdogs_folder(tmp_path / "train", n_per_class=10)
    holdout = make_catsdogs_folder(tmp_path / "holdout", n_per_class=2)
    dm = ImageDataModule("catsdogs", str(train), options={"test_dir": str(holdout)}, normalize="half")
    dm.load_samples()
    test_items, test_labels = dm.split_items("test")
    assert all(p.parent == holdout for p in test_items) and sorted(test_labels) == [0, 0, 1, 1]
    train_items, _ = dm.split_items("train")
    val_items, _ = dm.split_items("val")
    assert len(train_items) + len(val_items) == 20 and len(val_items) == 2  # val carved from train, no test carved


def test_imagefolder_nested_and_mixed_extensions(tmp_path: Path) -> None:
    root = make_class_folders(tmp_path / "flowers", ("daisy", "roses", "tulips"), n_per_class=4)
    nested = root / "roses" / "more" / "deeper"
    nested.mkdir(parents=True)
    (nested / "r.PNG").write_bytes((root / "roses" / "roses_0.jpg").read_bytes())
    (root / "tulips" / ".hidden.jpg").write_bytes(b"x")
    (root / "README.md").write_text("about")
    samples = imagefolder(str(root))
    assert samples.classes == ["daisy", "roses", "tulips"]
    assert samples.labels.count(1) == 5 and len(samples.items) == 13
    assert samples.skipped == {"hidden": 1, "outside class folders": 1}


def test_imagefolder_keeps_given_train_val_test_folders(tmp_path: Path) -> None:
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        make_class_folders(tmp_path / "flower_dataset" / split, ("daisy", "roses"), n_per_class=n)
    dm = ImageDataModule("imagefolder", str(tmp_path / "flower_dataset"), normalize="half")
    dm.load_samples()
    assert {name: len(p) for name, p in dm.splits.items()} == {"train": 12, "val": 4, "test": 6}
    assert all("/val/" in f"/{dm.samples.describe(p)}" for p in dm.splits["val"])


def test_a_val_split_carved_out_of_a_given_train_folder_leaves_it(tmp_path: Path) -> None:
    for split, n in (("train", 20), ("test", 3)):
        make_class_folders(tmp_path / "cifar" / split, ("cat", "dog"), n_per_class=n)
    dm = ImageDataModule("imagefolder", str(tmp_path / "cifar"), normalize="half", val_fraction=0.2)
    dm.load_samples()
    assert {name: len(p) for name, p in dm.splits.items()} == {"train": 32, "val": 8, "test": 6}
    assert not set(dm.splits["train"]) & set(dm.splits["val"])  # no image both trained on and validated on


def test_fake_mnist_loads_through_torchvision(tmp_path: Path) -> None:
    samples = mnist(str(make_fake_mnist(tmp_path, n_train=30, n_test=10)))
    assert len(samples.items) == 40 and samples.splits["test"] == list(range(30, 40))
    image = samples.load(samples.items[3])
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8
    assert samples.labels[3] == 3 and samples.describe(35) == "MNIST:test:5"


def test_fake_fashion_mnist_loads(tmp_path: Path) -> None:
    samples = find_samples("fashion_mnist", str(make_fake_mnist(tmp_path, folder="FashionMNIST")))
    assert samples.classes[0] == "T-shirt/top" and len(samples.items) == 96


def test_fake_cifar10_pickles_and_image_folder_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    accept_fake_cifar10(monkeypatch)
    samples = cifar10(str(make_fake_cifar10(tmp_path / "pickles", n_train=50, n_test=20)))
    assert len(samples.items) == 70 and samples.classes[3] == "cat"
    assert samples.load(samples.items[0]).shape == (3, 32, 32)
    for split in ("train", "test"):
        make_class_folders(tmp_path / "folders" / split, ("airplane", "cat"), n_per_class=3, size=(32, 32))
    folders = cifar10(str(tmp_path / "folders"))
    assert folders.classes == ["airplane", "cat"] and set(folders.splits) == {"train", "test"}


def test_missing_torchvision_files_give_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"MNIST files under .* cannot be read .*MNIST/raw.*download=true"):
        mnist(str(tmp_path))


def test_unknown_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unexpected keyword argument 'test_folder'"):
        find_samples("catsdogs", str(tmp_path), {"test_folder": "x"})


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("empty", "is empty: no usable images found"),
        ("one class", r"has only one class \(daisy\)"),
        ("empty class", "class folders without usable images: roses"),
        ("missing", "is not a folder"),
    ],
)
def test_unusable_data_sets_fail_before_training(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    if layout == "one class":
        make_class_folders(root, ("daisy",), n_per_class=2)
    if layout == "empty class":
        make_class_folders(root, ("daisy", "tulips"), n_per_class=2)
        (root / "roses").mkdir()
    if layout == "missing":
        root = tmp_path / "nope"
    with pytest.raises(UserError, match=message):
        validate(imagefolder(str(root)), "imagefolder", str(root))


def test_mnist_reads_the_official_gz_files_in_place(tmp_path: Path) -> None:
    root = make_fake_mnist(tmp_path, n_train=30, n_test=10, compressed=True)
    before = sorted(p.name for p in (root / "MNIST" / "raw").iterdir())
    samples = mnist(str(root))
    assert len(samples.items) == 40 and samples.labels[3] == 3
    assert samples.load(samples.items[3])[0, 10, 10] == 255  # class 3's bar at rows 10-11
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == before  # nothing unpacked or written


def test_cifar10_tar_gz_in_place_and_tampered_pickle_refused(tmp_path: Path) -> None:
    import tarfile

    make_fake_cifar10(tmp_path / "src", n_train=50, n_test=20)
    (tmp_path / "gz").mkdir()
    with tarfile.open(tmp_path / "gz" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    samples = cifar10(str(tmp_path / "gz"))
    assert len(samples.items) == 70 and samples.classes[3] == "cat"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "src" / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": []}, f)
    with pytest.raises(UserError, match=r"test_batch is not a CIFAR-10 batch .*io.open|builtins.open"):
        cifar10(str(tmp_path / "src"))
    assert not marker.exists()


def test_a_folder_given_to_the_default_digits_names_the_presets(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dataset=digits .* add dataset=imagefolder"):
        find_samples("digits", str(tmp_path))


@pytest.mark.parametrize("source", ["digits", "imagefolder", "catsdogs", "mnist"])
def test_data_module_pickles_after_setup(source: str, tmp_path: Path) -> None:
    """ddp_spawn and spawned DataLoader workers pickle the data module: no lambdas or open handles in it."""
    make = {
        "digits": lambda: None,
        "imagefolder": lambda: make_class_folders(tmp_path / "flowers", n_per_class=5),
        "catsdogs": lambda: make_catsdogs_folder(tmp_path / "cd", n_per_class=5),
        "mnist": lambda: make_fake_mnist(tmp_path / "mnist", n_train=30, n_test=10),
    }
    data_dir = make[source]()
    dm = ImageDataModule(
        source, str(data_dir) if data_dir else None, image_size=16, channels=1, normalize="half", val_fraction=0.3
    )
    dm.setup("fit")
    copy = pickle.loads(pickle.dumps(dm))
    assert copy.splits == dm.splits
    assert [copy.samples.describe(p) for p in dm.splits["val"]] == [dm.samples.describe(p) for p in dm.splits["val"]]
    x, y = next(iter(copy.train_dataloader()))
    assert x.shape[1:] == (1, 16, 16) and len(x) == len(y)
    pickle.dumps(copy.train_dataloader().dataset)


def test_data_module_with_the_cache_pipeline_pickles_after_setup(tmp_path: Path) -> None:
    """pipeline=cache holds the image cache and the device augmenter: plain data too (built here on the CPU)."""
    dm = ImageDataModule(
        "digits", image_size=16, channels=1, normalize="half", pipeline="cache", cache_size=16, cache_dir=str(tmp_path)
    )
    dm.setup("fit")
    copy = pickle.loads(pickle.dumps(dm))
    images, labels, sizes = next(iter(copy.train_dataloader()))
    assert images.shape[1:] == (1, 16, 16) and images.dtype == torch.uint8 and len(labels) == len(sizes)
    assert copy.device_augment(images, train=True).shape[1:] == (1, 16, 16)
