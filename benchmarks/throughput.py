"""Training throughput of each data path against the model's own limit, in one process on one device.

python benchmarks/throughput.py --data-dir ../shared/data/dogs-vs-cats/train --batch-size 256

Rows: (1) the model and fused AdamW alone on synthetic data already on the device; (2) the seed
posts' loop: PIL + torchvision transforms (seed002's) in a DataLoader with all cores, plain PyTorch;
(3) this template's stream path in Lightning: decode + v2 preset in DataLoader workers; (4) its cache
path in Lightning: the uint8 cache (built beforehand, build time reported) + DeviceAugment in
on_after_batch_transfer, (4b) that data in a plain loop; (5) the same with the cache decoded by
nvJPEG (CUDA only); (6) the default: the data module and Lightning set-up (trainer, callbacks,
logger) that ``python -m alexnet_lightning.train dataset=catsdogs`` builds, ``data.pipeline=auto``
picking its path, and (6b) the same data in a plain loop, so 6 / 6b is the template's own overhead
at its defaults. Each row runs
``warmup`` steps, then ``repeats`` windows of ``steps`` steps; it reports the median images/s.
``--epochs`` adds the cache's first-versus-second epoch comparison on the device path.

This file runs the rows and prints the tables; throughput_paths.py holds the data paths,
throughput_loops.py the timed loops, throughput_clock.py the timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import lightning as L
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throughput_clock import Clock
from throughput_loops import data_rate, default_rate, epoch_comparison, model_limit, plain_loop, template_rate
from throughput_paths import (
    default_config,
    default_datamodule,
    device_batches,
    kaggle_files,
    prepared,
    seed_loader,
    subset_folder,
    template_datamodule,
)

REPO = Path(__file__).resolve().parents[1]
LIMIT = "1. model limit (synthetic data on the device)"


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def print_tables(results: dict[str, float | str], data_only: dict[str, float]) -> None:
    """Markdown tables: each row's images/s and share of the model limit; then the data paths alone."""
    limit = results.get(LIMIT)
    print("\n| row | images/s | of the model limit |\n|---|---:|---:|")
    for name, rate in results.items():
        if isinstance(rate, str):
            print(f"| {name} | {rate} | |")
        else:
            share = f"{rate / limit:.1%}" if isinstance(limit, float) else "n/a"
            print(f"| {name} | {rate:,.1f} | {share} |")
    if data_only:
        print("\n| data path alone (no model) | images/s |\n|---|---:|")
        for name, rate in data_only.items():
            print(f"| {name} | {rate:,.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/dogs-vs-cats/train")
    parser.add_argument("--per-class", type=int, default=1000, help="cat.0..N-1 and dog.0..N-1")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--cache-size", type=int, default=256, help="side of the cached uint8 images")
    parser.add_argument("--augment", default="moderate", help="template rows' preset (row 2: seed002's)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    rows = "limit,seed,stream,cache,plain,nvjpeg,default,default_plain,data"
    parser.add_argument("--rows", default=rows, help="comma-separated subset")
    parser.add_argument("--epochs", action="store_true", help="also time epoch 1 (cache build + train) vs epoch 2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    L.seed_everything(args.seed, verbose=False)
    paths, labels = kaggle_files(args.data_dir, args.per_class)
    rows = args.rows.split(",")
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(
        f"device: {device} ({gpu_name}), {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, lightning {L.__version__}, python {platform.python_version()}"
    )
    print(
        f"data: {len(paths)} JPEGs from {args.data_dir}; batch {args.batch_size}, {args.image_size}px, "
        f"augment={args.augment}, warmup {args.warmup}, "
        f"{args.repeats} x {args.steps} steps, {args.workers} workers"
    )

    def clock() -> Clock:
        return Clock(device, args.batch_size, args.warmup, args.steps, args.repeats)

    results: dict[str, float | str] = {}
    data_only: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        folder = subset_folder(paths, Path(tmp) / "images")
        if "limit" in rows:
            results[LIMIT] = model_limit(args, device, clock())
        if "seed" in rows:
            loader = seed_loader(args, device, paths, labels)
            results["2. seed-style loop (PIL + seed002, DataLoader)"] = plain_loop(lambda: loader, device, clock())
        if {"stream", "data"} & set(rows):
            stream = prepared(template_datamodule(args, folder, Path(tmp) / "cache", "stream"), "file check")
        if "stream" in rows:
            results["3. template, data.pipeline=stream"] = template_rate(args, device, stream, clock())
        if {"cache", "plain", "data"} & set(rows):
            cache = template_datamodule(args, folder, Path(tmp) / "cache", "cache")
            prepared(cache, f"cache build (PIL, {args.workers} threads)")
        if "cache" in rows:
            results["4. template, data.pipeline=cache"] = template_rate(args, device, cache, clock())
        if "plain" in rows:
            batches = device_batches(cache, args, device)
            results["4b. plain loop, same cache + DeviceAugment"] = plain_loop(
                lambda: batches, device, clock(), augment=cache.device_augment
            )
        if "nvjpeg" in rows:
            if device.type != "cuda":
                results["5. template, data.decode=nvjpeg"] = "not measured (needs CUDA)"
            else:
                nvjpeg = template_datamodule(args, folder, Path(tmp) / "nvjpeg", "cache", decoder="nvjpeg")
                prepared(nvjpeg, "cache build (nvJPEG)")
                results["5. template, data.decode=nvjpeg (cache)"] = template_rate(args, device, nvjpeg, clock())
        if {"default", "default_plain"} & set(rows):
            cfg = default_config(args, folder, Path(tmp))
            default = prepared(default_datamodule(cfg), "default: file check (+ cache build if it picks the cache)")
            picked = f"data.pipeline={default.pipeline}, {default.num_workers} workers"
        if "default" in rows:  # a Trainer needs the module's loaders and device augmentation as it set them up
            results[f"6. default: the template's training set-up ({picked})"] = default_rate(
                args, device, cfg, default, clock()
            )
        if "default_plain" in rows:
            loader = default.train_dataloader()
            augment = default.device_augment if default.pipeline == "cache" else None
            results[f"6b. plain loop, the default's data ({picked})"] = plain_loop(
                lambda: loader, device, clock(), augment=augment
            )
        if "data" in rows:  # what each data path delivers when the model does not hold it back
            cache_batches = device_batches(cache, args, device) if device.type == "cuda" else cache.train_dataloader()
            loaders = {
                "2. seed-style loader": (seed_loader(args, device, paths, labels), None),
                "3. template stream loader": (stream.train_dataloader(), None),
                "4. template cache + DeviceAugment": (cache_batches, cache.device_augment),
            }
            for name, (batches, augment) in loaders.items():
                data_only[name] = data_rate(batches, device, clock(), augment)
        if args.epochs:
            first, second = epoch_comparison(args, device, folder, Path(tmp) / "epochs")
            print(
                f"pipeline=cache epochs on {len(paths)} images: 1st (file check, cache build, train) {first:.1f} s, "
                f"2nd (train) {second:.1f} s"
            )

    print_tables(results, data_only)


if __name__ == "__main__":
    main()
