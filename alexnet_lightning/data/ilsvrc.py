"""ILSVRC2012's label files: which class each flat validation image shows, and the words of each class.

ImageNet ships its training images in class folders named by WordNet id (``train/n01440764/``) and its
50,000 validation images in one flat folder (``val/ILSVRC2012_val_00000001.JPEG``), labelled by either

- the devkit (``ILSVRC2012_devkit_t12/data/``): ``ILSVRC2012_validation_ground_truth.txt``, one
  ILSVRC2012_ID per line (line n labels image n), and ``meta.mat``, which maps those IDs to wnids and words;
- Kaggle's copy (ImageNet Object Localization Challenge): ``LOC_val_solution.csv`` (``ImageId`` and a
  ``PredictionString`` whose first word is the wnid) and ``LOC_synset_mapping.txt``
  (``n01440764 tench, Tinca tinca``).

Both are found in ``data_dir``; they are read, never written. A file that cannot be read or does not
say what it should stops the run with one line naming the file.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from alexnet_lightning.errors import UserError

DEVKIT = Path("ILSVRC2012_devkit_t12") / "data"
GROUND_TRUTH = DEVKIT / "ILSVRC2012_validation_ground_truth.txt"
META = DEVKIT / "meta.mat"
KAGGLE_SOLUTION = Path("LOC_val_solution.csv")
KAGGLE_SYNSETS = Path("LOC_synset_mapping.txt")
KAGGLE_IMAGES = Path("ILSVRC") / "Data" / "CLS-LOC"
"""Where Kaggle's copy keeps train/ and val/, below the folder that holds its LOC_*.csv files."""
WNID = re.compile(r"n\d{8}")
DEVKIT_FIX = "unpack ILSVRC2012_devkit_t12.tar.gz into data_dir again"


def image_root(data_dir: Path) -> Path:
    """The folder that holds train/ and val/: ``data_dir`` itself, or Kaggle's ``ILSVRC/Data/CLS-LOC`` below it."""
    for root in (data_dir, data_dir / KAGGLE_IMAGES):
        if (root / "train").is_dir():
            if not (root / "val").is_dir():
                raise UserError(f"{root} has train/ but no val/: put ILSVRC2012's validation images into val/ there")
            return root
    raise UserError(
        f"data_dir={data_dir} has no train/ folder (nor {KAGGLE_IMAGES / 'train'}): point data_dir at the folder "
        "that holds ILSVRC2012's train/ and val/"
    )


def _unreadable(path: Path, reason: str, fix: str = "unpack or download it again") -> UserError:
    return UserError(f"{path} cannot be read ({reason}): {fix}")


def read_meta(path: Path) -> dict[int, tuple[str, str]]:
    """ILSVRC2012_ID -> (wnid, words) of the 1,000 classes (the synsets without children) in the devkit's meta.mat."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    broken = (OSError, MatReadError, NotImplementedError, ValueError, KeyError, TypeError, IndexError, AttributeError)
    try:
        synsets = loadmat(path, squeeze_me=True)["synsets"]
        classes = {
            int(s["ILSVRC2012_ID"]): (str(s["WNID"]), str(s["words"]))
            for s in synsets.reshape(-1)
            if int(s["num_children"]) == 0
        }
    except broken as e:  # a damaged file, another .mat file, or a MATLAB 7.3 (HDF5) one that loadmat cannot read
        reason = f"no field {e}" if isinstance(e, KeyError) else (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise _unreadable(path, f"not the devkit's synsets: {reason}", DEVKIT_FIX) from None
    if not classes or not all(WNID.fullmatch(wnid) for wnid, _ in classes.values()):
        raise _unreadable(path, "not the devkit's synsets: no wnids", DEVKIT_FIX)
    return classes


def read_synset_mapping(path: Path) -> dict[str, str]:
    """wnid -> words from Kaggle's LOC_synset_mapping.txt (``n01440764 tench, Tinca tinca`` lines)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise _unreadable(path, type(e).__name__) from None
    words = {}
    for number, line in enumerate(lines, 1):
        wnid, _, text = line.strip().partition(" ")
        if not line.strip():
            continue
        if not WNID.fullmatch(wnid):
            raise UserError(f"{path}, line {number}: {line[:60]!r} does not start with a wnid (n01440764 tench, ...)")
        words[wnid] = text.strip() or wnid
    return words


def _devkit_labels(root: Path) -> dict[str, str]:
    """Image name (``ILSVRC2012_val_00000001``) -> wnid from the devkit's ground truth, through meta.mat's IDs."""
    if not (root / META).is_file():
        raise UserError(f"{root / GROUND_TRUTH} needs {root / META} to name its classes: unpack the whole devkit")
    ids = read_meta(root / META)
    try:
        lines = (root / GROUND_TRUTH).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as e:
        raise _unreadable(root / GROUND_TRUTH, type(e).__name__) from None
    labels = {}
    for number, text in enumerate(lines, 1):
        if not text.isdigit() or int(text) not in ids:
            raise UserError(f"{root / GROUND_TRUTH}, line {number}: {text[:20]!r} is not an ILSVRC2012_ID of meta.mat")
        labels[f"ILSVRC2012_val_{number:08d}"] = ids[int(text)][0]
    return labels


def _kaggle_labels(path: Path) -> dict[str, str]:
    """Image name -> wnid from Kaggle's LOC_val_solution.csv (the first word of each PredictionString)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise _unreadable(path, type(e).__name__) from None
    labels = {}
    for number, row in enumerate(rows, 2):
        wnid = (row.get("PredictionString") or "").split()[:1]
        if not row.get("ImageId") or not wnid or not WNID.fullmatch(wnid[0]):
            raise UserError(f"{path}, line {number}: expected ImageId,PredictionString with a wnid first")
        labels[row["ImageId"]] = wnid[0]
    return labels


def val_labels(data_dir: Path) -> tuple[dict[str, str], Path]:
    """Flat validation images' labels (image name without extension -> wnid) and the file they come from."""
    if (data_dir / GROUND_TRUTH).is_file():
        return _devkit_labels(data_dir), data_dir / GROUND_TRUTH
    if (data_dir / KAGGLE_SOLUTION).is_file():
        return _kaggle_labels(data_dir / KAGGLE_SOLUTION), data_dir / KAGGLE_SOLUTION
    raise UserError(
        f"val/ holds images without class folders, but {data_dir} has no ground truth for them: unpack "
        f"ILSVRC2012_devkit_t12.tar.gz there (for {GROUND_TRUTH}), or put Kaggle's {KAGGLE_SOLUTION} there, "
        "or sort val/ into class folders (valprep.sh)"
    )


def class_words(data_dir: Path) -> dict[str, str]:
    """wnid -> words from Kaggle's LOC_synset_mapping.txt, else the devkit's meta.mat, else nothing."""
    if (data_dir / KAGGLE_SYNSETS).is_file():
        return read_synset_mapping(data_dir / KAGGLE_SYNSETS)
    if (data_dir / META).is_file():
        return dict(read_meta(data_dir / META).values())
    return {}


def class_names(wnids: Sequence[str], words: dict[str, str]) -> list[str]:
    """Each class's first synonym (``tench``), or its wnid without words; a name two classes share
    (ImageNet has two ``crane`` and two ``maillot``) gets its wnid added: ``crane (n02012849)``."""
    first = [words[w].split(",")[0].strip() if w in words else w for w in wnids]
    shared = Counter(first)
    return [name if shared[name] == 1 else f"{name} ({wnid})" for name, wnid in zip(first, wnids, strict=True)]
