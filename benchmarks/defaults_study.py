"""The defaults study: candidate default recipes, each trained on many folders, one CSV row per run.

The template's defaults are what a user runs on a folder nobody here has seen; they are chosen by
this study (benchmarks/RESULTS.md, "Defaults study"), never on the folder they were tuned on.

    python benchmarks/defaults_study.py folders            # build the study folders under data/study/
    python benchmarks/defaults_study.py run defaults       # one recipe on every folder -> defaults_study.csv
    python benchmarks/defaults_study.py run bn_gap_lr3e-3 --folders flowers gray600
    python benchmarks/defaults_study.py table              # the markdown table of all rows

Folders: the shared real data sets (../shared/data, see its README) and generated ones that stress
other shapes: many classes with few images each, very large and very wide images, heavy class
imbalance, tiny gray images. Generated images come from a fixed seed, so every machine builds the
same folders.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
STUDY = REPO / "data" / "study"
RESULTS = Path(__file__).resolve().parent / "defaults_study.csv"

# folder name -> (dataset preset, data_dir, extra overrides). Chance: 1 / classes (or the largest class).
FOLDERS: dict[str, tuple[str, Path, list[str]]] = {
    "catsdogs2k": ("catsdogs", STUDY / "catsdogs2k", []),
    "catsdogs400": ("catsdogs", STUDY / "catsdogs400", []),
    "flowers": ("imagefolder", SHARED / "flower_photos_small", []),
    "cifar10_small": ("imagefolder", SHARED / "cifar10_small", []),
    "gray600": ("imagefolder", STUDY / "gray600", []),
    "shapes30": ("imagefolder", STUDY / "shapes30", []),
    "large_wide": ("imagefolder", STUDY / "large_wide", []),
    "imbalanced": ("imagefolder", STUDY / "imbalanced", []),
    "mnist": ("mnist", SHARED, []),
}
STUDY_FOLDERS = [f for f in FOLDERS if f != "mnist"]  # MNIST (60,000 images) runs once, with the chosen defaults

# recipe name -> overrides of the default config ("defaults": whatever conf/ says now). bn_gap_no_es asks
# whether early stopping (patience 5) costs accuracy; it did (gray600: 0.85 with it, 0.97 without), so
# each later candidate changes one thing against bn_gap_no_es (BatchNorm, GAP head, AdamW 1e-3, cosine
# over the sized epochs, 64 px, no early stopping), which became the defaults.
BN_GAP = ["model.norm=batchnorm", "model.head=gap"]
NO_ES: list[str] = []  # the defaults have no early stopping
ES = ["+callbacks@callbacks.early_stopping=early_stopping"]
RECIPES: dict[str, list[str]] = {
    "defaults": [],
    "old_defaults": [  # before the study: no normalization, 4096-4096 head, 224 px, 10 epochs
        "model.norm=none",
        "model.head=fc",
        "data.image_size=224",
        "trainer.max_epochs=10",
        *ES,
    ],
    "plain_fc": ["model.norm=none", "model.head=fc", *NO_ES],
    "bn_fc": ["model.norm=batchnorm", "model.head=fc", *NO_ES],
    "bn_gap": [*BN_GAP, *ES],
    "bn_gap_no_es": [*BN_GAP, *NO_ES],
    "lr3e-3": [*BN_GAP, *NO_ES, "optimizer.lr=3e-3"],
    "lr3e-4": [*BN_GAP, *NO_ES, "optimizer.lr=3e-4"],
    "onecycle": [*BN_GAP, *NO_ES, "scheduler=onecycle", "optimizer.lr=3e-3"],
    "sgd": [*BN_GAP, *NO_ES, "optimizer=sgd", "optimizer.lr=0.05"],
    "96px": [*BN_GAP, *NO_ES, "data.max_image_size=96"],
    "128px": [*BN_GAP, *NO_ES, "data.max_image_size=128"],
    "images12k": [*BN_GAP, *NO_ES, "auto_epochs.images=12000"],
    "images50k": [*BN_GAP, *NO_ES, "auto_epochs.images=50000"],
    "augment_none": [*BN_GAP, *NO_ES, "augment=none"],
    "label_smoothing": [*BN_GAP, *NO_ES, "label_smoothing=0.1"],
    "lr_5": ["optimizer.lr=5.0"],  # the not-learning warning must fire
}


def _symlinks(target: Path, names: list[Path]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for src in names:
        link = target / src.name
        if not link.exists():
            link.symlink_to(src)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", ndim, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


SHAPES = ("circle", "square", "triangle", "cross", "ring", "bar")
COLOURS = ((220, 40, 40), (40, 170, 60), (50, 80, 220), (230, 200, 40), (190, 60, 200))


def _draw(shape: str, colour: tuple[int, int, int], size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A shape of one colour at a random place and scale on a noisy background of random hue."""
    w, h = size
    background = rng.integers(60, 200, 3)
    noise = rng.normal(0, 30, (h // 4 + 1, w // 4 + 1, 3))
    array = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(array).resize((w, h), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    r = int(min(w, h) * rng.uniform(0.2, 0.35))
    cx, cy = int(rng.uniform(r, w - r)), int(rng.uniform(r, h - r))
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "cross":
        draw.rectangle((cx - r, cy - r // 4, cx + r, cy + r // 4), fill=colour)
        draw.rectangle((cx - r // 4, cy - r, cx + r // 4, cy + r), fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, r // 3))
    else:
        draw.rectangle((cx - r, cy - r // 3, cx + r, cy + r // 3), fill=colour)
    return image


def build_folders() -> None:
    """Create every generated or linked folder of FOLDERS under data/study/ (skips the ones that exist)."""
    dogs = SHARED / "dogs-vs-cats" / "train"
    for name, n in (("catsdogs2k", 1000), ("catsdogs400", 200)):
        _symlinks(STUDY / name, [dogs / f"{c}.{i}.jpg" for c in ("cat", "dog") for i in range(n)])
    rng = np.random.default_rng(0)
    gray = STUDY / "gray600"  # 60 MNIST digits per class, 28 px gray PNGs
    if not gray.exists():
        images, labels = (
            _read_idx(SHARED / "MNIST/raw/train-images-idx3-ubyte.gz"),
            _read_idx(SHARED / "MNIST/raw/train-labels-idx1-ubyte.gz"),
        )
        for digit in range(10):
            (gray / str(digit)).mkdir(parents=True)
            for i, index in enumerate(np.flatnonzero(labels == digit)[:60]):
                Image.fromarray(images[index]).save(gray / str(digit) / f"{i}.png")
    shapes = STUDY / "shapes30"  # 30 classes (shape x colour), 20 images each, 60-480 px, any aspect
    if not shapes.exists():
        for shape in SHAPES:
            for c, colour in enumerate(COLOURS):
                folder = shapes / f"{shape}_{c}"
                folder.mkdir(parents=True)
                for i in range(20):
                    size = (int(rng.integers(60, 480)), int(rng.integers(60, 480)))
                    _draw(shape, colour, size, rng).save(folder / f"{i}.jpg", quality=90)
    large = STUDY / "large_wide"  # 4 classes, 30 each: half 2400x1600 photos, half 1800x300 panoramas
    if not large.exists():
        for shape in SHAPES[:4]:
            (large / shape).mkdir(parents=True)
            for i in range(30):
                size = (2400, 1600) if i % 2 else (1800, 300)
                _draw(shape, (240, 240, 240), size, rng).save(large / shape / f"{i}.jpg", quality=85)
    imbalanced = STUDY / "imbalanced"  # CIFAR-10 classes with 400, 267, ..., 15 images (x1.5 steps)
    if not imbalanced.exists():
        classes = sorted(p.name for p in (SHARED / "cifar10_small/train").iterdir())
        for k, name in enumerate(classes):
            files = sorted((SHARED / "cifar10_small/train" / name).iterdir())[: max(15, int(400 / 1.5**k))]
            _symlinks(imbalanced / name, files)
    for name in FOLDERS:
        preset, path, _ = FOLDERS[name]
        count = sum(1 for p in path.rglob("*") if p.suffix.lower() in (".jpg", ".png")) if name != "mnist" else 70000
        print(f"{name}: {preset}, {count} images, {path}")


def run(recipe: str, folders: list[str], tag: str) -> None:
    """Train ``recipe`` on each folder in a fresh process; append one row per run to the CSV."""
    for folder in folders:
        preset, path, extra = FOLDERS[folder]
        out = REPO / "outputs" / "study" / f"{recipe}{tag}" / folder
        command = [
            sys.executable, "-m", "alexnet_lightning.train", f"dataset={preset}", f"data_dir={path}",
            *extra, *RECIPES[recipe], "logger=csv", "callbacks.progress_bar=null", f"hydra.run.dir={out}",
        ]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - start
        (out / "stdout.txt").parent.mkdir(parents=True, exist_ok=True)
        (out / "stdout.txt").write_text(proc.stdout + proc.stderr)
        record = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else {}
        m = record.get("metrics", {})
        chosen = next((ln for ln in proc.stdout.splitlines() if ln.startswith("chosen for this data")), "")
        row = {
            "recipe": recipe + tag,
            "folder": folder,
            "status": record.get("status", f"rc {proc.returncode}"),
            "val_acc_best": round(m.get("val/acc_best", float("nan")), 4),
            "test_acc": round(m.get("test/acc", float("nan")), 4),
            "epochs": m.get("epochs", ""),
            "wall_s": round(wall, 1),
            "not_learning": any("not learning" in w for w in m.get("warnings", [])),
            "chosen": chosen.removeprefix("chosen for this data: "),
            "command": " ".join(["python -m alexnet_lightning.train", *command[3:-3]]),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip(),
            "load": os.getloadavg()[0],
        }
        new = not RESULTS.exists()
        with RESULTS.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(f"{recipe}{tag} {folder}: val {row['val_acc_best']} test {row['test_acc']} "
              f"epochs {row['epochs']} {row['wall_s']} s {row['status']}", flush=True)  # fmt: skip


def defaults_table(rows: list[dict[str, str]]) -> None:
    """What the defaults chose and reached on each folder (the last ``defaults`` row of each)."""
    last = {r["folder"]: r for r in rows if r["recipe"] == "defaults"}
    print("| folder | dataset | chosen | epochs | best val | test | wall |")
    print("|---|---|---|---:|---:|---:|---:|")
    for folder, r in last.items():
        chosen = "; ".join(c.split(" (")[0] for c in r["chosen"].split("; ") if "num_workers" not in c)
        print(
            f"| {folder} | `{FOLDERS[folder][0]}` | {chosen} | {r['epochs']} | {float(r['val_acc_best']):.3f} "
            f"| {float(r['test_acc']):.3f} | {float(r['wall_s']):.0f} s |"
        )


def table() -> None:
    """Test accuracy (and wall seconds) of each recipe on each folder, as markdown tables."""
    rows = list(csv.DictReader(RESULTS.open()))
    defaults_table(rows)
    print()
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    folders = [f for f in FOLDERS if any(r["folder"] == f for r in rows)]
    cell = {(r["recipe"], r["folder"]): r for r in rows}
    print("| recipe | " + " | ".join(folders) + " | mean test |")
    print("|---|" + "---:|" * (len(folders) + 1))
    for recipe in recipes:
        cells, accs = [], []
        for folder in folders:
            r = cell.get((recipe, folder))
            if r is None:
                cells.append("")
                continue
            warn = " (!)" if r["not_learning"] == "True" else ""
            cells.append(f"{float(r['test_acc']):.3f}{warn}, {float(r['wall_s']):.0f} s")
            accs.append(float(r["test_acc"]))
        mean = f"{np.nanmean(accs):.3f} ({len(accs)})" if accs else ""
        print(f"| {recipe} | " + " | ".join(cells) + f" | {mean} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("folders")
    r = sub.add_parser("run")
    r.add_argument("recipe", choices=list(RECIPES))
    r.add_argument("--folders", nargs="+", default=STUDY_FOLDERS, choices=list(FOLDERS))
    r.add_argument("--tag", default="", help="suffix of the recipe's name in the CSV (e.g. a re-run)")
    sub.add_parser("table")
    args = parser.parse_args()
    if args.command == "folders":
        build_folders()
    elif args.command == "run":
        run(args.recipe, args.folders, args.tag)
    else:
        table()


if __name__ == "__main__":
    main()
