"""dataset=imagenet reads ILSVRC2012 as it ships: train/<wnid>/, val/ in class folders or flat with its ground truth."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures import IMAGENET_IDS, IMAGENET_WNIDS, make_imagenet_folder, write_meta_mat
from scipy.io import savemat

from alexnet_lightning.data import ilsvrc
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.data.sources import find_samples
from alexnet_lightning.errors import UserError

NAMES = ["tench", "crane (n02012849)", "crane (n03126707)"]
WNIDS = list(IMAGENET_WNIDS)


def _truth(name: str) -> str:
    """The class the fixture drew into validation image ``name``: image n shows class n mod 3."""
    return WNIDS[int(Path(name).stem.rsplit("_", 1)[1]) % 3]


def _kaggle_copy(root: Path) -> None:
    """Kaggle's layout: the images under ILSVRC/Data/CLS-LOC/, the LOC_*.csv files beside ILSVRC/."""
    images = root / "ILSVRC" / "Data" / "CLS-LOC"
    images.mkdir(parents=True)
    for part in ("train", "val"):
        shutil.move(root / part, images / part)


@pytest.mark.parametrize(
    ("val", "devkit", "kaggle", "names"),
    [
        ("folders", False, True, NAMES),  # valprep.sh's layout, names from LOC_synset_mapping.txt
        ("folders", False, False, WNIDS),  # no words anywhere: the wnids
        ("flat", True, False, NAMES),  # the devkit: ground truth IDs through meta.mat, names from its words
        ("flat", False, True, NAMES),  # Kaggle's LOC_val_solution.csv, in Kaggle's ILSVRC/Data/CLS-LOC/ layout
    ],
)
def test_each_layout_loads_with_the_right_labels_and_names(
    tmp_path: Path, val: str, devkit: bool, kaggle: bool, names: list[str]
) -> None:
    root = make_imagenet_folder(tmp_path / "imagenet", val=val, devkit=devkit, kaggle=kaggle)
    if kaggle and val == "flat":
        _kaggle_copy(root)
    samples = find_samples("imagenet", str(root))
    assert samples.classes == names
    assert len(samples.splits["train"]) == 18 and len(samples.splits["test"]) == 6
    for i in samples.splits["train"]:
        assert samples.items[i].parent.name == WNIDS[samples.labels[i]]
    for i in samples.splits["test"]:
        assert WNIDS[samples.labels[i]] == _truth(samples.items[i].name), samples.describe(i)
    assert sorted(samples.labels[i] for i in samples.splits["test"]) == [0, 0, 1, 1, 2, 2]


def test_the_validation_set_is_the_test_split_and_val_is_carved_from_train(tmp_path: Path) -> None:
    root = make_imagenet_folder(tmp_path / "imagenet", val="flat", n_train=10)
    dm = ImageDataModule("imagenet", str(root), normalize="imagenet", val_fraction=0.2, test_fraction=0.0)
    dm.load_samples()
    test, _ = dm.split_items("test")
    val, _ = dm.split_items("val")
    assert sorted(p.name for p in test) == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 7)]
    assert len(val) == 6 and all(p.parent.parent.name == "train" for p in val)  # 2 of each class's 10


def test_validation_images_the_ground_truth_does_not_name_are_skipped(tmp_path: Path, caplog) -> None:
    root = make_imagenet_folder(tmp_path / "imagenet", val="flat", devkit=False)
    shutil.copy(root / "val" / "ILSVRC2012_val_00000001.JPEG", root / "val" / "ILSVRC2012_val_00000099.JPEG")
    with caplog.at_level(logging.WARNING):
        samples = find_samples("imagenet", str(root))
    assert len(samples.splits["test"]) == 6 and samples.skipped["not in the ground truth"] == 1
    assert "1 images in" in caplog.text and "LOC_val_solution.csv and are ignored" in caplog.text


def _no_ground_truth(root: Path) -> None:
    (root / "LOC_val_solution.csv").unlink()
    shutil.rmtree(root / "ILSVRC2012_devkit_t12")


def _meta(root: Path) -> Path:
    return root / "ILSVRC2012_devkit_t12" / "data" / "meta.mat"


def _foreign_wnid_in_folders(root: Path) -> None:
    (root / "val" / "n09999999").mkdir()
    shutil.copy(root / "train" / "n01440764" / "n01440764_0.JPEG", root / "val" / "n09999999" / "x.JPEG")


def _foreign_id_in_ground_truth(root: Path) -> None:
    write_meta_mat(_meta(root), IMAGENET_WNIDS | {"n09999999": "toadstool"}, IMAGENET_IDS | {"n09999999": 4})
    truth = root / "ILSVRC2012_devkit_t12" / "data" / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text(truth.read_text().replace("2\n", "4\n", 1))


ERRORS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "flat val without ground truth": (
        "flat",
        _no_ground_truth,
        r"val/ holds images without class folders, but .* has no ground truth for them: unpack "
        r"ILSVRC2012_devkit_t12.tar.gz there .* or put Kaggle's LOC_val_solution.csv there, or sort val/",
    ),
    "a wnid in val/ folders that train/ lacks": (
        "folders",
        _foreign_wnid_in_folders,
        r"val/n09999999 is a class that the training folder lacks",
    ),
    "a ground-truth class that train/ lacks": (
        "flat",
        _foreign_id_in_ground_truth,
        r"ILSVRC2012_validation_ground_truth.txt gives 1 images of .*val a class that train/ lacks "
        r"\(the first: ILSVRC2012_val_00000003.JPEG is n09999999\): complete train/ with those class folders",
    ),
    "a ground truth of other images": (
        "flat",
        lambda root: [image.rename(image.with_name(f"copy_{image.name}")) for image in (root / "val").iterdir()],
        r"none of the 3 images in .*val is named in .*ILSVRC2012_validation_ground_truth.txt: check that it belongs",
    ),
    "a damaged meta.mat": (
        "flat",
        lambda root: _meta(root).write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200)),
        r"meta.mat cannot be read \(not the devkit's synsets: .*\): unpack ILSVRC2012_devkit_t12.tar.gz",
    ),
    "a meta.mat of something else": (
        "flat",
        lambda root: savemat(_meta(root), {"weights": [1.0, 2.0]}),
        r"meta.mat cannot be read \(not the devkit's synsets: no field 'synsets'\)",
    ),
    "ground truth without meta.mat": (
        "flat",
        lambda root: _meta(root).unlink(),
        r"ILSVRC2012_validation_ground_truth.txt needs .*meta.mat to name its classes: unpack the whole devkit",
    ),
    "no train/": (
        "flat",
        lambda root: shutil.rmtree(root / "train"),
        r"has no train/ folder \(nor ILSVRC/Data/CLS-LOC/train\): point data_dir at the folder that holds",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_imagenet_folders_stop_with_one_line_saying_what_to_do(tmp_path: Path, case: str) -> None:
    val, damage, message = ERRORS[case]
    root = make_imagenet_folder(tmp_path / "imagenet", val=val, n_train=1, n_val=1)
    damage(root)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(UserError, match=message) as error:
        find_samples("imagenet", str(root))
    assert "\n" not in str(error.value)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before, "nothing is moved or written"


def test_class_names_take_the_first_synonym_and_keep_shared_words_apart() -> None:
    words = {"n01440764": "tench, Tinca tinca", "n02012849": "crane", "n03126707": "crane"}
    assert ilsvrc.class_names(["n01440764", "n02012849", "n03126707", "n09999999"], words) == [*NAMES, "n09999999"]
