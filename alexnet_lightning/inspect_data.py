"""Data doctor: what training would see, before it runs.

python -m alexnet_lightning.inspect_data dataset=catsdogs data_dir=~/data/dogs-vs-cats/train

Class counts per split, image sizes and modes, bad files with reasons, exact duplicates
(content hash) and those that cross splits (leakage), and ``samples.png``: a grid of
augmented training images with their labels. Uses the training data config and split.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from alexnet_lightning import plots, sizing
from alexnet_lightning.command import hydra_command
from alexnet_lightning.console import shown_path
from alexnet_lightning.data.checks import content_hashes
from alexnet_lightning.data.datamodule import SPLITS, ImageDataModule
from alexnet_lightning.data.decode import to_channels
from alexnet_lightning.data.presets import v2_augmentation


def class_table(dm: ImageDataModule) -> list[str]:
    """Images per class and split, as aligned text rows."""
    classes = dm.samples.classes
    width = max(8, *(len(c) + 1 for c in classes))
    rows = ["split".ljust(7) + "".join(c.rjust(width) for c in classes) + "total".rjust(8)]
    for split in SPLITS:
        counts = Counter(dm.samples.labels[p] for p in dm.splits[split])
        cells = "".join(str(counts[i]).rjust(width) for i in range(len(classes)))
        rows.append(split.ljust(7) + cells + str(len(dm.splits[split])).rjust(8))
    return rows


def sizes_and_modes(dm: ImageDataModule) -> tuple[list[tuple[int, int]], Counter]:
    """Width/height and file mode of every usable image (from the file check for folders)."""
    if dm.scan is not None:
        good = dm.scan.good
        return [(w, h) for w, h in dm.scan.sizes[good].tolist()], Counter(dm.scan.mode_of(good))
    shapes = [dm.samples.load(item).shape for item in dm.samples.items]
    return [(s[2], s[1]) for s in shapes], Counter("L" if s[0] == 1 else "RGB" for s in shapes)


def size_lines(sizes: list[tuple[int, int]], modes: Counter) -> list[str]:
    widths, heights = np.array([w for w, _ in sizes]), np.array([h for _, h in sizes])
    common = Counter(sizes).most_common(3)
    return [
        f"width  min {widths.min()}  median {int(np.median(widths))}  max {widths.max()}",
        f"height min {heights.min()}  median {int(np.median(heights))}  max {heights.max()}",
        "most common: " + ", ".join(f"{w}x{h} ({n})" for (w, h), n in common),
        "modes: " + ", ".join(f"{m} {n}" for m, n in modes.most_common()),
    ]


def duplicates(dm: ImageDataModule) -> list[list[int]]:
    """Groups of positions whose content is byte-for-byte identical."""
    if dm.scan is not None:
        hashes = content_hashes(dm.samples.items)
    else:
        hashes = [
            hashlib.blake2b(dm.samples.load(i).numpy().tobytes(), digest_size=16).hexdigest() for i in dm.samples.items
        ]
    groups: dict[str, list[int]] = defaultdict(list)
    for position, h in enumerate(hashes):
        groups[h].append(position)
    return [g for g in groups.values() if len(g) > 1]


def duplicate_lines(dm: ImageDataModule, groups: list[list[int]], show: int) -> list[str]:
    split_of = {p: name for name, positions in dm.splits.items() for p in positions}
    crossing = [g for g in groups if len({split_of[p] for p in g}) > 1]
    conflicting = [g for g in groups if len({dm.samples.labels[p] for p in g}) > 1]
    extra = sum(len(g) - 1 for g in groups)
    lines = [f"exact duplicates: {len(groups)} groups ({extra} redundant files)"]
    for title, found in (("across splits (leakage)", crossing), ("with different labels", conflicting)):
        lines.append(f"  {title}: {len(found)} groups")
        for group in found[:show]:
            lines.append("    " + " = ".join(f"{split_of[p]}:{dm.samples.describe(p)}" for p in group))
    return lines


def sample_grid(dm: ImageDataModule, path: Path, n: int, seed: int) -> None:
    """Save ``n`` augmented training images with their class names, as training would see them."""
    torch.manual_seed(seed)
    train = dm.splits["train"]
    picks = [train[i] for i in np.random.default_rng(seed).permutation(len(train))[:n]]
    assert not isinstance(dm.image_size, str) and not isinstance(dm.channels, str)  # load_samples sized them
    augment = v2_augmentation(dm.augment, dm.image_size, dm.channels)
    images = [augment(to_channels(dm.samples.load(dm.samples.items[p]), dm.channels)) for p in picks]
    titles = [dm.samples.classes[dm.samples.labels[p]] for p in picks]
    fig = plots.image_grid(images, titles, columns=int(np.ceil(np.sqrt(len(picks)))))
    fig.suptitle(f"augment={dm.augment}, image_size={dm.image_size}", fontsize=10)
    fig.tight_layout()
    plots.save(fig, path)


def inspect(cfg: DictConfig) -> list[str]:
    """The doctor's report as lines; writes samples.png and bad_files.txt into the output folder."""
    smallest = sizing.network_minimum(cfg.model.layout, cfg.model.stem)
    dm: ImageDataModule = hydra.utils.instantiate(cfg.data, min_image_size=smallest)
    dm.load_samples()
    out = Path(cfg.paths.output_dir)
    samples = dm.samples
    lines = [
        f"data set: {dm.source} in {dm.data_dir}: {len(samples.items)} usable images, {len(samples.classes)} classes"
    ]
    if samples.skipped:
        lines.append("ignored: " + ", ".join(f"{n} {why}" for why, n in sorted(samples.skipped.items())))
    lines += ["", *class_table(dm), ""]
    lines += size_lines(*sizes_and_modes(dm))
    lines.append(f"bad files: {len(dm.bad_files)} (excluded from training)")
    reasons = Counter(reason.split(":")[0] for reason in dm.bad_files.values())
    lines += [f"  {n} x {reason}" for reason, n in reasons.most_common()]
    lines += [f"  {path}: {reason}" for path, reason in list(dm.bad_files.items())[: cfg.show]]
    lines += duplicate_lines(dm, duplicates(dm), cfg.show)
    dm.write_run_files(out)
    sample_grid(dm, out / "samples.png", cfg.grid, cfg.seed)
    lines += [
        f"augmented training samples: {shown_path(out / 'samples.png')}",
        f"split and bad files: {shown_path(out)}",
    ]
    return lines


def doctor(cfg: DictConfig) -> None:
    """Print the data doctor's report."""
    print("\n".join(inspect(cfg)))


main = hydra_command("inspect_data", doctor)


if __name__ == "__main__":
    main()
