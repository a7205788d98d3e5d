"""Evaluate a checkpoint on a data set's test (or val) split: report, confusion matrix, top losses, speed.

python -m alexnet_lightning.eval ckpt_path=outputs/train/DATE/TIME/checkpoints/best.ckpt [split=val] [data_dir=...]

Image size, channels, normalization and class names come from the checkpoint; the data set
config only says where the images are and how they are split (pass the training run's seed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from matplotlib.figure import Figure
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from alexnet_lightning import plots, speed
from alexnet_lightning.atomic import write_atomic, write_csv, write_json
from alexnet_lightning.attribution import gradcam_grid
from alexnet_lightning.command import hydra_command
from alexnet_lightning.config import check_config
from alexnet_lightning.console import shown_path
from alexnet_lightning.errors import UserError
from alexnet_lightning.inference import Predictor, checkpoint_datamodule, split_loader
from alexnet_lightning.module import accuracy_metrics


def precision_recall_f1(
    probs: torch.Tensor, targets: torch.Tensor, num_classes: int, average: Literal["macro", "weighted"] | None
) -> dict[str, torch.Tensor]:
    """Precision, recall and F1 per class (``average=None``) or averaged (``macro``, ``weighted``)."""
    return {
        name: fn(probs, targets, num_classes, average=average)
        for name, fn in (
            ("precision", multiclass_precision),
            ("recall", multiclass_recall),
            ("f1", multiclass_f1_score),
        )
    }


def classification_report(probs: torch.Tensor, targets: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """Accuracy (top-1, top-5), per-class and averaged precision/recall/F1 with support, confusion matrix."""
    n = len(class_names)
    confusion = multiclass_confusion_matrix(probs, targets, n)
    support = confusion.sum(dim=1)
    per_class = precision_recall_f1(probs, targets, n, average=None)
    rows = [
        {"class": c, **{k: float(v[i]) for k, v in per_class.items()}, "support": int(support[i])}
        for i, c in enumerate(class_names)
    ]
    for average in ("macro", "weighted"):
        scores = precision_recall_f1(probs, targets, n, average=average)
        rows.append({"class": f"{average} avg", **{k: float(v) for k, v in scores.items()}, "support": len(targets)})
    metrics = {name: float(value) for name, value in accuracy_metrics(n)(probs, targets).items()}
    metrics["loss"] = float(per_image_loss(probs, targets).mean())
    return {"metrics": metrics, "rows": rows, "confusion": confusion}


def report_text(rows: list[dict[str, Any]], metrics: dict[str, float]) -> str:
    width = max(12, *(len(r["class"]) for r in rows))
    lines = [f"{'':>{width}}  precision     recall         f1    support", ""]
    for r in rows:
        if r["class"] == "macro avg":
            lines += ["", f"{'accuracy':>{width}}  {'':>9}  {'':>9}  {metrics['acc']:>9.4f}  {rows[-1]['support']:>9}"]
        lines.append(
            f"{r['class']:>{width}}  {r['precision']:>9.4f}  {r['recall']:>9.4f}  {r['f1']:>9.4f}  {r['support']:>9}"
        )
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict[str, Any], class_names: list[str]) -> str:
    """The classification report (text and CSV) and the confusion matrix (CSV); returns the text."""
    text = report_text(report["rows"], report["metrics"])
    write_atomic(out / "classification_report.txt", text)
    header = ["class", "precision", "recall", "f1", "support"]
    write_csv(out / "classification_report.csv", header, [[r[h] for h in header] for r in report["rows"]])
    rows = [[c, *row] for c, row in zip(class_names, report["confusion"].tolist(), strict=True)]
    write_csv(out / "confusion_matrix.csv", ["true\\predicted", *class_names], rows)
    return text


def save_and_log(out: Path, metrics: dict[str, float], text: str, figures: dict[str, Figure]) -> None:
    """Figures as PNG files, and everything to TensorBoard (``out/tensorboard``)."""
    with SummaryWriter(str(out / "tensorboard")) as writer:
        for name, value in metrics.items():
            writer.add_scalar(f"eval/{name}", value, global_step=0)
        writer.add_text("eval/classification_report", "    " + text.replace("\n", "\n    "), global_step=0)
        for name, fig in figures.items():
            plots.save(fig, out / f"{name}.png", close=False)
            writer.add_figure(f"eval/{name}", fig, global_step=0, close=True)


def per_image_loss(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each image's cross-entropy: how confidently wrong it is."""
    return -probs.gather(1, targets[:, None]).squeeze(1).clamp_min(1e-12).log()


def top_losses_figures(
    predictor: Predictor, loader: DataLoader, probs: torch.Tensor, targets: torch.Tensor, k: int
) -> dict[str, Figure]:
    """The ``k`` wrong predictions with the highest loss (``top_losses``) and, beside them, the Grad-CAM maps
    of the classes predicted for them (``top_losses_gradcam``); none when every prediction is right."""
    losses = per_image_loss(probs, targets)
    wrong = (probs.argmax(1) != targets).nonzero().squeeze(1)
    if len(wrong) == 0 or k <= 0:
        return {}
    order = wrong[losses[wrong].argsort(descending=True)][:k].tolist()
    names = predictor.class_names
    x = torch.stack([loader.dataset[i][0] for i in order])
    titles = [
        f"Pred: {names[p.argmax()]} ({p.max():.2f})\nTrue: {names[t]} ({p[t]:.2f})"
        for p, t in ((probs[i], int(targets[i])) for i in order)
    ]
    colors = ["firebrick"] * len(order)
    images = [plots.denormalize(image, predictor.mean, predictor.std) for image in x]
    return {
        "top_losses": plots.image_grid(images, titles, colors),
        "top_losses_gradcam": gradcam_grid(predictor, x, probs[order].argmax(1), titles, colors),
    }


def check_split_matches_training(out: Path, ckpt_path: Path, split: str) -> None:
    """Warn when the evaluated items are not the training run's held-out ones (another seed or folder)."""
    trained = ckpt_path.resolve().parent.parent / "split.json"
    if not trained.is_file():
        return
    ours, theirs = json.loads((out / "split.json").read_text()), json.loads(trained.read_text())
    if ours.get(split) != theirs.get(split):
        print(
            f"warning: the {split} split differs from the training run's {trained}: "
            "if this is the same data set, pass the training run's seed=N"
        )


def evaluate(cfg: DictConfig) -> dict[str, float]:
    check_config(cfg)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.split not in ("test", "val"):
        raise UserError(f"split={cfg.split} is unknown: use test or val")
    predictor = Predictor.load(cfg.ckpt_path, cfg.device)
    hp = predictor.model.hparams
    datamodule = checkpoint_datamodule(
        predictor, cfg.get("data"), cfg.data_dir, cfg.seed, cfg.paths.cache_dir, cfg.num_workers
    )
    datamodule.write_run_files(out)
    check_split_matches_training(out, Path(cfg.ckpt_path), cfg.split)
    loader = split_loader(datamodule, cfg.split)

    probs, targets = predictor.predict_loader(loader)
    report = classification_report(probs, targets, list(hp.class_names))
    metrics = {f"{cfg.split}/{k}": v for k, v in report["metrics"].items()}
    text = write_report(out, report, list(hp.class_names))

    timing = speed.benchmark(predictor.model.net, predictor.input_shape, predictor.device, cfg.speed_seconds)
    metrics.update({f"speed/{k}": v for k, v in timing.items()})
    write_json(out / "metrics.json", {"samples": len(targets), **metrics})

    figures = {"confusion_matrix": plots.confusion(report["confusion"].numpy(), list(hp.class_names))}
    figures.update(top_losses_figures(predictor, loader, probs, targets, cfg.top_losses))
    save_and_log(out, metrics, text, figures)

    print(text)
    print(
        "  ".join(f"{k}: {v:.4f}" for k, v in metrics.items() if not k.startswith("speed/"))
        + f"  ({len(targets)} images)"
    )
    print(
        f"speed ({predictor.device.type}): {timing['batch1/images_per_s']:.1f} images/s at batch 1 "
        f"(p50 {timing['batch1/latency_p50_ms']:.2f} ms, p95 {timing['batch1/latency_p95_ms']:.2f} ms), "
        f"{timing['batch64/images_per_s']:.1f} images/s at batch 64; "
        + ", ".join(f"{k} {v:.0f}" for k, v in timing.items() if k.startswith("peak"))
    )
    print(f"run directory: {shown_path(out)}")
    return metrics


main = hydra_command("eval", evaluate)


if __name__ == "__main__":
    main()
