"""The parts of the one-shot GPU check (gpu_check.py); each runs in a child process of its own.

gpu_check.py starts every part with ``run_part`` in a process forked from a server that has imported
this module (torch, Lightning, the template) once; a part writes its result to a JSON file after
every step, so a part stopped at the end of its time budget keeps what it had measured.

- ``environment``: versions, the device, a first CUDA operation;
- ``throughput``: the rows of throughput.py (its functions, one process, one device) plus the model
  limit in fp32 and in bf16 without channels_last; ``default`` is the data module and Lightning set-up
  exactly as ``dataset=catsdogs`` composes them with everything left at its default
  (``data.pipeline=auto``, ``num_workers=auto``, ``cache_size=auto``, the trainer, callbacks and
  logger), ``default_plain`` the same data in a plain loop;
- ``train``: one run of ``python -m alexnet_lightning.train OVERRIDES`` in-process (the composed config,
  ``train(cfg)``), with ``EpochLog`` added to its callbacks: each validation's epoch, time and val/acc,
  and optionally the test split's accuracy, stopping the fit once that reaches a target.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # throughput*.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the template's package

import hydra
import lightning as L
import omegaconf
import torch
import torchvision
from lightning.pytorch.callbacks import EarlyStopping, Timer
from omegaconf import OmegaConf, open_dict
from throughput import cpu_name
from throughput_clock import Clock
from throughput_loops import data_rate, default_rate, model_limit, plain_loop, template_rate
from throughput_paths import (
    default_config,
    default_datamodule,
    device_batches,
    kaggle_files,
    seed_loader,
    subset_folder,
    template_datamodule,
)

from alexnet_lightning.config import compose_config
from alexnet_lightning.train import train

RECORDER: Recorder | None = None
"""The running part's recorder (one part per process): EpochLog, built by Hydra from the config, writes to it."""
RUN_START = 0.0
"""perf_counter() when the running part's train() began (data set-up included in EpochLog's ``run_s``)."""


class Recorder:
    """A part's result as a dict, written atomically to its JSON file after every change."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = Path(path), {}

    def set(self, **values: Any) -> None:
        self.data.update(values)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)


def run_part(name: str, spec: dict[str, Any], result_path: str, log_path: str) -> None:
    """A child's entry point: its own process group (gpu_check.py stops it whole), its output in ``log_path``."""
    global RECORDER
    os.setpgid(0, 0)
    # A child started by forkserver (or spawn) inherits that start method: back to the platform's default,
    # so that DataLoader workers start as in a plain ``python -m alexnet_lightning.train`` (fork on Linux).
    multiprocessing.set_start_method(None, force=True)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 (the process's output until it ends)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    if spec.get("env"):
        os.environ.update(spec["env"])
    RECORDER = recorder = Recorder(Path(result_path))
    start = time.perf_counter()
    recorder.set(status="running")
    try:
        PARTS[spec["kind"]](spec, recorder)
        recorder.set(status="ok", error=None)
    except BaseException as e:  # SystemExit too (kaggle_files exits on missing files): recorded, not raised
        traceback.print_exc()
        message = f"{type(e).__name__}: {e}".strip()
        recorder.set(status="error", error=message, traceback=traceback.format_exc()[-3000:])
    finally:
        recorder.set(wall_s=round(time.perf_counter() - start, 2))
        log.flush()


def environment(spec: dict[str, Any], rec: Recorder) -> None:
    # True would mean the process server touched CUDA before forking this part (every part's CUDA then fails)
    initialized = torch.cuda.is_initialized()
    cuda = torch.cuda.is_available()
    rec.set(
        cuda_initialized_before_part=initialized,
        python=platform.python_version(),
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        lightning=L.__version__,
        hydra=hydra.__version__,
        omegaconf=omegaconf.__version__,
        cuda_available=cuda,
        cuda=torch.version.cuda,
        cpu=cpu_name(),
        cpu_cores=os.cpu_count(),
        device=torch.cuda.get_device_name(0) if cuda else f"CPU: {cpu_name()}",
    )
    if cuda:
        props = torch.cuda.get_device_properties(0)
        start = time.perf_counter()
        torch.ones(1, device="cuda").add_(1).item()  # the CUDA context, once
        rec.set(
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            cudnn=torch.backends.cudnn.version(),
            cuda_init_s=round(time.perf_counter() - start, 2),
        )
    elif spec.get("require_cuda"):
        raise RuntimeError("no CUDA GPU is visible to torch (the check's GPU parts will fail too)")


class Lazy:
    """A value built on first use; a build that failed fails again, at once, for every row that needs it."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build, self.value, self.error = build, None, None

    def get(self) -> Any:
        if self.error is not None:
            raise RuntimeError(f"set-up failed earlier: {self.error}")
        if self.value is None:
            try:
                self.value = self.build()
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"
                raise
        return self.value


ROW_LABELS = {
    "limit": "1. model limit (synthetic data on the device)",
    "limit_fp32": "1a. model limit, fp32 and contiguous (no bf16 autocast, no channels_last)",
    "limit_bf16": "1b. model limit, bf16 autocast, contiguous (no channels_last)",
    "seed": "2. seed-style loop (PIL + seed002, DataLoader)",
    "stream": "3. template, data.pipeline=stream",
    "cache": "4. template, data.pipeline=cache",
    "plain": "4b. plain loop, same cache + DeviceAugment",
    "nvjpeg": "5. template, data.decode=nvjpeg (cache)",
    "default": "6. template defaults (data.pipeline=auto, trainer, callbacks, logger)",
    "default_plain": "6b. plain loop, the default's data",
    "data_seed": "data alone: seed-style loader",
    "data_stream": "data alone: template stream loader",
    "data_cache": "data alone: template cache + DeviceAugment",
}


def throughput(spec: dict[str, Any], rec: Recorder) -> None:
    """throughput.py's rows, each timed on its own and recorded as it ends; rows after the deadline are skipped."""
    args = argparse.Namespace(**spec["args"])
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    L.seed_everything(args.seed, verbose=False)
    work = Path(spec["work"])
    paths, labels = kaggle_files(Path(args.data_dir), args.per_class)
    folder = subset_folder(paths, work / "images")
    precision = "bf16 autocast + channels_last" if cuda else "fp32 (CPU)"
    rec.set(settings={**vars(args), "images": len(paths), "precision": precision}, prep={}, rows={})
    prep: dict[str, Any] = {}

    def prepared(datamodule, what: str):
        start = time.perf_counter()
        datamodule.setup("fit")
        prep[what] = round(time.perf_counter() - start, 2)
        rec.set(prep=prep)
        return datamodule

    def clock() -> Clock:
        return Clock(device, args.batch_size, args.warmup, args.steps, args.repeats)

    default_cfg = Lazy(lambda: default_config(args, folder, work))

    def default_module():
        """The data module as ``python -m alexnet_lightning.train dataset=catsdogs`` builds it, defaults kept."""
        datamodule = prepared(default_datamodule(default_cfg.get()), "default: file check (+ cache build if picked)")
        picked = {
            "pipeline": datamodule.pipeline,
            "decode": datamodule.decode,
            "num_workers": datamodule.num_workers,
            "cache_size": datamodule.cache_size if datamodule.pipeline == "cache" else None,
        }
        rec.set(default=picked)
        return datamodule

    stream = Lazy(lambda: prepared(template_datamodule(args, folder, work / "cache", "stream"), "stream: file check"))
    cache = Lazy(
        lambda: prepared(
            template_datamodule(args, folder, work / "cache", "cache"), f"cache: build (PIL, {args.workers} threads)"
        )
    )
    nvjpeg = Lazy(
        lambda: prepared(
            template_datamodule(args, folder, work / "nvjpeg", "cache", decoder="nvjpeg"), "nvjpeg: cache build"
        )
    )
    default = Lazy(default_module)
    seed = Lazy(lambda: seed_loader(args, device, paths, labels))

    def needs_cuda() -> float:
        raise NotImplementedError("not measured: needs CUDA")

    def plain_row() -> float:
        batches = device_batches(cache.get(), args, device)
        return plain_loop(lambda: batches, device, clock(), augment=cache.get().device_augment)

    def default_plain_row() -> float:
        loader = default.get().train_dataloader()
        augment = default.get().device_augment if default.get().pipeline == "cache" else None
        return plain_loop(lambda: loader, device, clock(), augment=augment)

    def cache_batches():
        return device_batches(cache.get(), args, device) if cuda else cache.get().train_dataloader()

    rows: dict[str, Callable[[], float]] = {
        "limit": lambda: model_limit(args, device, clock()),
        "limit_fp32": lambda: model_limit(args, device, clock(), bf16=False, channels_last=False),
        "limit_bf16": lambda: model_limit(args, device, clock(), bf16=True, channels_last=False),
        "seed": lambda: plain_loop(seed.get, device, clock()),
        "stream": lambda: template_rate(args, device, stream.get(), clock()),
        "cache": lambda: template_rate(args, device, cache.get(), clock()),
        "plain": plain_row,
        "nvjpeg": (lambda: template_rate(args, device, nvjpeg.get(), clock())) if cuda else needs_cuda,
        "default": lambda: default_rate(args, device, default_cfg.get(), default.get(), clock()),
        "default_plain": default_plain_row,
        "data_seed": lambda: data_rate(seed.get(), device, clock()),
        "data_stream": lambda: data_rate(stream.get().train_dataloader(), device, clock()),
        "data_cache": lambda: data_rate(cache_batches(), device, clock(), cache.get().device_augment),
    }
    results: dict[str, dict[str, Any]] = {}
    for key in spec["rows"]:
        label = ROW_LABELS[key]
        left = spec["deadline"] - time.time()
        if left < spec["min_row_s"]:
            results[key] = {"label": label, "status": "skipped", "why": f"{left:.0f} s left of the part's budget"}
            rec.set(rows=results)
            continue
        print(f"[throughput] {label}", flush=True)
        start = time.perf_counter()
        try:
            rate = rows[key]()
            results[key] = {"label": label, "status": "ok", "images_per_s": round(rate, 1)}
        except NotImplementedError as e:
            results[key] = {"label": label, "status": "n/a", "why": str(e)}
        except Exception as e:
            traceback.print_exc()
            results[key] = {"label": label, "status": "error", "error": f"{type(e).__name__}: {e}"}
        results[key]["wall_s"] = round(time.perf_counter() - start, 2)
        if key in ("default", "default_plain") and default.value is not None:
            results[key]["label"] = f"{label}: picked pipeline={default.value.pipeline}"
        limit = results.get("limit", {}).get("images_per_s")
        for name, result in results.items():
            if limit and "images_per_s" in result and not name.startswith("data_"):
                result["of_limit"] = round(result["images_per_s"] / limit, 4)
        rec.set(rows=results)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    failed = [key for key, result in results.items() if result["status"] == "error"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(results)} rows failed: {', '.join(failed)} (errors in rows)")


class EpochLog(L.Callback):
    """After each validation: the epoch, seconds since training started, val/acc; with ``test_each_epoch``
    also the accuracy on the data module's test split, and the fit stops once it reaches ``target``.

    It writes to the running part's recorder, so a run stopped from outside keeps its epochs.
    """

    def __init__(self, target: float | None = None, test_each_epoch: bool = False) -> None:
        self.target, self.test_each_epoch = target, test_each_epoch
        self.rows: list[dict[str, Any]] = []
        self.reached: dict[str, Any] | None = None
        self.start = self.fit_start = 0.0
        self.test_loader = None

    def _record(self, **values: Any) -> None:
        if RECORDER is not None:
            RECORDER.set(epochs=self.rows, reached=self.reached, **values)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        self._record(fit_setup_s=round(self.start - self.fit_start, 2))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        val_acc = trainer.callback_metrics.get("val/acc")
        now = time.perf_counter()
        row = {
            "epoch": trainer.current_epoch + 1,
            "train_s": round(now - self.start, 2),  # since training began (after set-up and the sanity check)
            "run_s": round(now - RUN_START, 2),  # since train() began: data set-up, cache build included
            "val_acc": round(float(val_acc), 4) if val_acc is not None else None,
        }
        if self.test_each_epoch:
            row["test_acc"] = round(self.test_accuracy(trainer, pl_module), 4)
            row["test_eval_s"] = round(time.perf_counter() - now, 2)
            if self.target is not None and self.reached is None and row["test_acc"] >= self.target:
                self.reached = {k: row[k] for k in ("epoch", "train_s", "run_s", "test_acc")}
                trainer.should_stop = True
        self.rows.append(row)
        self._record()

    def test_accuracy(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        """The model on the test split, as trainer.test would feed it (device path: the eval view)."""
        datamodule = trainer.datamodule
        if self.test_loader is None:
            self.test_loader = datamodule.test_dataloader()
        correct = total = 0
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for batch in self.test_loader:
                batch = [t.to(pl_module.device, non_blocking=True) for t in batch]
                x, y = datamodule.on_after_batch_transfer(batch, 0)[:2]
                correct += int((pl_module(x).argmax(dim=1) == y).sum())
                total += len(y)
        return correct / max(1, total)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        stopping = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
        if self.reached is not None:
            why = "target"
        elif trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs:
            why = "max_epochs"
        elif timer is not None and (timer.time_remaining() or 0) <= 0:
            why = "max_time"
        elif any(c.stopped_epoch for c in stopping):
            why = "early_stopping"
        else:
            why = "other (limit_train_batches, max_steps or an error)"
        train_s = round(time.perf_counter() - self.start, 2)
        self._record(stopped_by=why, epochs_run=trainer.current_epoch, train_s=train_s)


def training(spec: dict[str, Any], rec: Recorder) -> None:
    """One training run of the template: ``python -m alexnet_lightning.train OVERRIDES``, with EpochLog added."""
    overrides = spec["overrides"]
    run_dir = Path(spec["work"]) / "run"
    recipe = compose_config("config", run_dir, spec["recipe_overrides"])  # the recipe alone: what was capped
    cfg = compose_config("config", run_dir, overrides)
    with open_dict(cfg):
        cfg.callbacks.gpu_check = {
            "_target_": f"{__name__}.EpochLog",
            "target": spec.get("target"),
            "test_each_epoch": bool(spec.get("test_each_epoch")),
        }
    max_time = OmegaConf.select(cfg, "trainer.max_time")
    rec.set(
        command="python -m alexnet_lightning.train " + " ".join(overrides),
        overrides=overrides,
        precision=cfg.trainer.precision,
        batch_size=cfg.data.batch_size,
        image_size=cfg.data.image_size,
        capped={
            "max_epochs": {
                "recipe": recipe.trainer.max_epochs,
                "run": cfg.trainer.max_epochs,
                "why": spec.get("epochs_why"),
            },
            "max_time": max_time,
        },
        target=spec.get("target"),
    )
    global RUN_START
    RUN_START = time.perf_counter()
    metrics = train(cfg)
    clean = {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in metrics.items()}
    rec.set(metrics=clean, run_s=round(time.perf_counter() - RUN_START, 2))


PARTS: dict[str, Callable[[dict[str, Any], Recorder], None]] = {
    "environment": environment,
    "throughput": throughput,
    "train": training,
}
