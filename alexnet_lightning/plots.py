"""Figures for people: training curves, confusion matrices and labelled image grids (PNG).

Every function returns a matplotlib Figure, so callers can both save it and send it to
TensorBoard (``SummaryWriter.add_figure``). The Agg backend needs no display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alexnet_lightning.atomic import atomic_path

Series = Mapping[str, Sequence[tuple[int, float]]]


def save(fig: Figure, path: Path, close: bool = True) -> Path:
    """The figure as a PNG file, written atomically (``close=False`` keeps it open, e.g. for TensorBoard)."""
    with atomic_path(path) as partial:
        fig.savefig(partial, format="png", dpi=110, bbox_inches="tight")
    if close:
        plt.close(fig)
    return path


def save_image(image: torch.Tensor, path: Path) -> Path:
    """A CxHxW [0, 1] tensor as a PNG file of exactly HxW pixels, written atomically (no figure, no margins)."""
    with atomic_path(path) as partial:
        torchvision.utils.save_image(image, partial, format="png")
    return path


def curves(series: Series) -> Figure:
    """Loss, accuracy and learning rate per epoch; ``series`` maps a metric name to (epoch, value)."""
    panels = [("loss", "loss"), ("accuracy", "acc"), ("learning rate", "lr")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (title, suffix) in zip(axes, panels, strict=True):
        for name, points in sorted(series.items()):
            if points and (name.endswith(f"/{suffix}") or (suffix == "lr" and name == "lr")):
                epochs, values = zip(*points, strict=True)
                ax.plot(epochs, values, marker="o", markersize=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        if suffix == "acc":
            ax.set_ylim(0, 1.01)
    fig.tight_layout()
    return fig


def confusion(matrix: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Counts and row-normalized shares side by side (rows: true class, columns: predicted)."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    n = len(class_names)
    side = min(4 + 0.45 * n, 22)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1, side))
    annotate = n <= 30
    for ax, values, title, fmt in ((axes[0], matrix, "counts", "d"), (axes[1], shares, "row-normalized", ".2f")):
        image = ax.imshow(values, cmap="Blues", vmin=0)
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set_title(title)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ticks = np.arange(n)
        ax.set_xticks(ticks, labels=class_names, rotation=90 if n > 10 else 0, fontsize=8)
        ax.set_yticks(ticks, labels=class_names, fontsize=8)
        if annotate:
            high = values.max() / 2 if values.max() > 0 else 1
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=7,
                            color="white" if values[i, j] > high else "black")  # fmt: skip
    fig.tight_layout()
    return fig


def image_grid(
    images: Sequence[torch.Tensor], titles: Sequence[str], colors: Sequence[str] | None = None, columns: int = 8
) -> Figure:
    """uint8 (or [0, 1] float) CxHxW images in a grid, each with its title (e.g. ``Pred: cat``)."""
    count = max(len(images), 1)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.4 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        image = images[k].detach().cpu()
        if image.dtype != torch.uint8:
            image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        array = image.permute(1, 2, 0).numpy()
        ax.imshow(array[..., 0] if array.shape[2] == 1 else array, cmap="gray" if array.shape[2] == 1 else None)
        ax.set_title(titles[k], fontsize=8, color=colors[k] if colors else "black")
    fig.tight_layout()
    return fig


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo ``Normalize`` for display: back to [0, 1]."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)
