"""Training throughput of each data path against the model's own limit, in one process on one device.

python benchmarks/throughput.py --data-dir ../shared/data/dogs-vs-cats/train --batch-size 256

Rows: (1) the model and fused AdamW alone on synthetic data already on the device; (2) the seed
posts' loop: PIL + torchvision transforms (seed002) in a DataLoader with all cores, plain PyTorch;
(3) this template's CPU path in Lightning: decode + v2 preset in DataLoader workers; (4) its device
path in Lightning: the uint8 cache (built beforehand, build time reported) + DeviceAugment in
on_after_batch_transfer; (5) the same with the cache decoded by nvJPEG (CUDA only). Each row runs
``warmup`` steps, then ``repeats`` windows of ``steps`` steps; it reports the median images/s.
``--epochs`` adds the cache's first-versus-second epoch comparison on the device path.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import torchvision
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as tv1

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alexnet_lightning.data.cache import CachedImages, DeviceBatches
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.data.device_augment import DeviceAugment
from alexnet_lightning.models.alexnet import build_alexnet
from alexnet_lightning.module import AlexNetClassifier

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet statistics: every row normalizes alike
CLASSES = ["cat", "dog"]


def kaggle_files(data_dir: Path, per_class: int) -> tuple[list[Path], list[int]]:
    """cat.0-N and dog.0-N of the Kaggle flat layout (the issue's reference subset: 1,000 each)."""
    paths = [data_dir / f"{name}.{i}.jpg" for name in CLASSES for i in range(per_class)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        sys.exit(f"error: {len(missing)} files missing, e.g. {missing[0]}: point --data-dir at the Kaggle train folder")
    return paths, [c for c in range(len(CLASSES)) for _ in range(per_class)]


class Clock:
    """Step ends -> median images/s over windows after warm-up.

    The device is synchronized only at window boundaries, so the host may queue the next steps
    while the device works, as in real training.
    """

    def __init__(self, device: torch.device, batch_size: int, warmup: int, steps: int, repeats: int) -> None:
        self.device, self.batch_size = device, batch_size
        self.warmup, self.steps, self.repeats = warmup, steps, repeats
        self.ticks = -1  # the first tick marks the start, before step 1
        self.times: dict[int, float] = {}

    @property
    def total(self) -> int:
        return self.warmup + self.steps * self.repeats

    @property
    def done(self) -> bool:
        return self.ticks >= self.total

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks >= self.warmup and (self.ticks - self.warmup) % self.steps == 0:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.times[self.ticks] = time.perf_counter()

    def images_per_s(self) -> float:
        starts = [self.warmup + k * self.steps for k in range(self.repeats)]
        rates = [self.steps * self.batch_size / (self.times[s + self.steps] - self.times[s]) for s in starts]
        return statistics.median(rates)


class ClockCallback(L.Callback):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_train_batch_end(self, *args) -> None:
        self.clock.tick()


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def model_config() -> dict:
    return OmegaConf.to_container(OmegaConf.load(REPO / "conf/model/alexnet.yaml"))


def optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, fused=True)


def plain_loop(batches: Callable[[], object], device: torch.device, clock: Clock, augment=None) -> float:
    """The seed posts' loop: forward, loss, backward, step; bf16 autocast and channels_last on CUDA."""
    net = build_alexnet(num_classes=2).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    opt = optimizer(net.parameters())
    clock.tick()
    while not clock.done:
        for x, y, *rest in batches():
            sizes = rest[0] if rest else None
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if augment is not None:
                x = augment(x, train=True, sizes=sizes.to(device, non_blocking=True))
            elif device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            clock.tick()
            if clock.done:
                break
    return clock.images_per_s()


def model_limit(args, device: torch.device, clock: Clock) -> float:
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 2, (args.batch_size,), device=device)
    return plain_loop(lambda: [(x, y)] * clock.total, device, clock)


class PILFiles(Dataset):
    """What the seed posts use: ImageFolder's PIL loading over a list of (path, label)."""

    def __init__(self, paths: list[Path], labels: list[int], transform) -> None:
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), self.labels[i]


def seed_loader(args, device, paths, labels) -> DataLoader:
    transform = tv1.Compose(
        [
            tv1.RandomHorizontalFlip(),
            tv1.RandomRotation(10),
            tv1.RandomResizedCrop(args.image_size, scale=(0.8, 1.0)),
            tv1.ColorJitter(0.2),
            tv1.ToTensor(),
            tv1.Normalize(MEAN, STD),
        ]
    )
    return DataLoader(
        PILFiles(paths, labels, transform),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
        drop_last=True,
    )


def data_rate(batches, device: torch.device, clock: Clock, augment: DeviceAugment | None = None) -> float:
    """The data path alone: batches onto the device (and through DeviceAugment), no model."""
    clock.tick()
    while not clock.done:
        for x, _, *rest in batches:
            x = x.to(device, non_blocking=True)
            if augment is not None:
                x = augment(x, train=True, sizes=rest[0].to(device) if rest else None)
            clock.tick()
            if clock.done:
                break
    return clock.images_per_s()


def subset_folder(paths: list[Path], root: Path) -> Path:
    """The subset as a Kaggle-style folder of its own (symlinks), so the template's data module reads exactly it."""
    root.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (root / path.name).symlink_to(path.resolve())
    return root


def template_datamodule(args, folder: Path, cache_dir: Path, pipeline: str, decoder: str = "pil") -> ImageDataModule:
    """The template's own data module, as ``dataset=catsdogs data.pipeline=...`` builds it (almost all for training)."""
    return ImageDataModule(
        "catsdogs",
        str(folder),
        options={"classes": CLASSES},
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_workers=args.workers if pipeline == "cpu" else min(args.workers, 4),
        val_fraction=0.05,
        test_fraction=0.0,
        seed=args.seed,
        normalize="imagenet",
        augment=args.augment,
        cache_dir=str(cache_dir),
        pipeline=pipeline,
        decode=decoder,
        cache_size=args.cache_size,
    )


def prepared(datamodule: ImageDataModule, what: str) -> ImageDataModule:
    """Run setup (file check, and for pipeline=gpu the cache build) outside the timed steps; report its time."""
    start = time.perf_counter()
    datamodule.setup("fit")
    print(f"{what}: {time.perf_counter() - start:.1f} s")
    return datamodule


def device_batches(datamodule: ImageDataModule, args, device: torch.device) -> DeviceBatches:
    """The training split of the cache held on the device, as the template serves it on one GPU."""
    data = CachedImages(datamodule.cache, datamodule.splits["train"], datamodule.samples.labels)
    return DeviceBatches(data, args.batch_size, device, drop_last=True, seed=args.seed)


def lightning_fit(args, device: torch.device, datamodule: L.LightningDataModule, callbacks, **trainer_kw) -> None:
    model = AlexNetClassifier(
        model=model_config(),
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.05, "fused": True},
        scheduler=None,
        class_names=CLASSES,
        image_size=args.image_size,
        in_channels=3,
        mean=MEAN,
        std=STD,
    )
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    trainer = L.Trainer(
        accelerator=device.type,
        devices=1,
        precision="bf16-mixed" if device.type == "cuda" else "32-true",
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **trainer_kw,
    )
    trainer.fit(model, datamodule=datamodule)


def template_rate(args, device, datamodule, clock: Clock) -> float:
    clock.tick()
    lightning_fit(args, device, datamodule, [ClockCallback(clock)], max_steps=clock.total)
    return clock.images_per_s()


class EpochTimes(L.Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_epoch_end(self, *args) -> None:
        self.ends.append(time.perf_counter())


def epoch_comparison(args, device, folder: Path, cache_dir: Path) -> tuple[float, float]:
    """First epoch = file check + cache build + training, second = training only (fresh cache directory)."""
    times = EpochTimes()
    start = time.perf_counter()
    lightning_fit(args, device, template_datamodule(args, folder, cache_dir, "gpu"), [times], max_epochs=2)
    return times.ends[0] - start, times.ends[1] - times.ends[0]


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
    parser.add_argument("--rows", default="limit,seed,cpu,gpu,plain,nvjpeg,data", help="comma-separated subset")
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
            results["1. model limit (synthetic data on the device)"] = model_limit(args, device, clock())
        if "seed" in rows:
            loader = seed_loader(args, device, paths, labels)
            results["2. seed-style loop (PIL + seed002, DataLoader)"] = plain_loop(lambda: loader, device, clock())
        if {"cpu", "data"} & set(rows):
            cpu = prepared(template_datamodule(args, folder, Path(tmp) / "cache", "cpu"), "file check")
        if "cpu" in rows:
            results["3. template, data.pipeline=cpu"] = template_rate(args, device, cpu, clock())
        if {"gpu", "plain", "data"} & set(rows):
            gpu = template_datamodule(args, folder, Path(tmp) / "cache", "gpu")
            prepared(gpu, f"cache build (PIL, {args.workers} threads)")
        if "gpu" in rows:
            results["4. template, data.pipeline=gpu (cache)"] = template_rate(args, device, gpu, clock())
        if "plain" in rows:
            batches = device_batches(gpu, args, device)
            results["4b. plain loop, same cache + DeviceAugment"] = plain_loop(
                lambda: batches, device, clock(), augment=gpu.device_augment
            )
        if "nvjpeg" in rows:
            if device.type != "cuda":
                results["5. template, data.decode=nvjpeg"] = "not measured (needs CUDA)"
            else:
                nvjpeg = template_datamodule(args, folder, Path(tmp) / "nvjpeg", "gpu", decoder="nvjpeg")
                prepared(nvjpeg, "cache build (nvJPEG)")
                results["5. template, data.decode=nvjpeg (cache)"] = template_rate(args, device, nvjpeg, clock())
        if "data" in rows:  # what each data path delivers when the model does not hold it back
            gpu_batches = device_batches(gpu, args, device) if device.type == "cuda" else gpu.train_dataloader()
            loaders = {
                "2. seed-style loader": (seed_loader(args, device, paths, labels), None),
                "3. template cpu loader": (cpu.train_dataloader(), None),
                "4. template gpu: cache + DeviceAugment": (gpu_batches, gpu.device_augment),
            }
            for name, (batches, augment) in loaders.items():
                data_only[name] = data_rate(batches, device, clock(), augment)
        if args.epochs:
            first, second = epoch_comparison(args, device, folder, Path(tmp) / "epochs")
            print(
                f"pipeline=gpu epochs on {len(paths)} images: 1st (file check, cache build, train) {first:.1f} s, "
                f"2nd (train) {second:.1f} s"
            )

    limit = results.get("1. model limit (synthetic data on the device)")
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


if __name__ == "__main__":
    main()
