"""What the layers respond to: feature maps, first-layer filters, penultimate features and their neighbours.

The 2012 AlexNet paper's figures 3 and 4: the first layer's filters (edges, colour blobs) and, for a
query image, the training images nearest to it in the last hidden layer's feature space. Nearest
neighbours there, not in pixel space, show what the network treats as alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import cast

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torch import nn

from alexnet_lightning.models.alexnet import AlexNet

MIN_TILE = 32  # pixels: tiles are enlarged (nearest neighbour) to at least this side, so a 3x3 map stays visible


def conv_activations(net: AlexNet) -> list[nn.Module]:
    """The activation after each convolution of ``net.features``: what the next layer sees."""
    layers = list(net.features)
    return [
        next(m for m in layers[i + 1 :] if isinstance(m, nn.ReLU | nn.LeakyReLU))
        for i, layer in enumerate(layers)
        if isinstance(layer, nn.Conv2d)
    ]


@torch.no_grad()
def feature_maps(net: AlexNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Each conv layer's activations (C x h x w) for one normalized image ``x`` (C x H x W)."""
    seen: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _in, out: seen.append(out[0].cpu().clone())) for m in conv_activations(net)
    ]
    try:
        net(x[None].to(device_of(net)))
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def tile_grid(tiles: torch.Tensor) -> torch.Tensor:
    """N x C x h x w tiles (C = 1 or 3), each contrast-stretched on its own, in a square grid: 3 x H x W in [0, 1].

    Tiles smaller than MIN_TILE pixels are enlarged by a whole factor; a one-pixel white line separates them.
    """
    tiles = tiles.detach().float().cpu()
    scale = max(1, math.ceil(MIN_TILE / tiles.shape[-1]))
    tiles = F.interpolate(tiles, scale_factor=scale, mode="nearest")
    columns = math.ceil(math.sqrt(len(tiles)))
    return torchvision.utils.make_grid(tiles, nrow=columns, padding=1, normalize=True, scale_each=True, pad_value=1.0)


def first_layer_filters(net: AlexNet) -> torch.Tensor:
    """The first convolution's filters as one RGB (or gray) grid, as in the AlexNet paper's Figure 3."""
    conv = next(m for m in net.features if isinstance(m, nn.Conv2d))
    return tile_grid(conv.weight)


def device_of(net: nn.Module) -> torch.device:
    """Where the network's weights are: inputs go there, results come back to the CPU."""
    return next(net.parameters()).device


@torch.no_grad()
def penultimate(net: AlexNet, x: torch.Tensor) -> torch.Tensor:
    """The input of the last linear layer (the last hidden layer, or the pooled conv features of the gap head)."""
    seen: list[torch.Tensor] = []
    hook = net.classifier[-1].register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
    try:
        net(x.to(device_of(net)))
    finally:
        hook.remove()
    return seen[0].float().cpu()


def penultimate_of_loader(
    net: AlexNet, loader: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features and targets of every batch of a ``(images, targets)`` loader, in order."""
    features, targets = zip(*((penultimate(net, x), torch.as_tensor(y)) for x, y in loader), strict=True)
    return torch.cat(features), torch.cat(targets)


def nearest(queries: torch.Tensor, bank: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances and indices of the ``k`` rows of ``bank`` nearest to each query, nearest first."""
    distances = torch.cdist(queries.double(), bank.double())  # float64: an image's distance to itself is 0
    found = distances.topk(min(k, len(bank)), dim=1, largest=False)
    return found.values.float(), found.indices


def embedding_figure(
    features: torch.Tensor,
    labels: Sequence[int],
    class_names: Sequence[str],
    queries: torch.Tensor | None = None,
    seed: int = 0,
) -> Figure:
    """A t-SNE map of ``features`` coloured by class; ``queries`` (explained images) are drawn as black stars.

    Features are first reduced to 50 dimensions by PCA, the usual step that keeps t-SNE fast on 4096-d features.
    """
    points = (features if queries is None else torch.cat([features, queries])).double().numpy()
    if points.shape[1] > 50 and len(points) > 50:
        points = PCA(50, random_state=seed).fit_transform(points)
    perplexity = min(30.0, max(1.0, (len(points) - 1) / 3))
    xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    fig, ax = plt.subplots(figsize=(8, 7))
    n = len(class_names)
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "turbo")
    colours = cmap(labels) if n <= 20 else cmap(np.asarray(labels) / (n - 1))
    ax.scatter(xy[: len(labels), 0], xy[: len(labels), 1], c=colours, s=8, alpha=0.8)
    if n <= 20:  # a legend of more classes would hide the plot
        for c, name in enumerate(class_names):
            ax.scatter([], [], color=cmap(c), label=name, s=20)
    if queries is not None:
        ax.scatter(xy[len(labels) :, 0], xy[len(labels) :, 1], marker="*", s=160, c="black", label="explained")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, markerscale=1.2, loc="best")
    ax.set_title(f"t-SNE of the penultimate features ({len(labels)} images)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


class FirstLayerFilters(L.Callback):
    """The first layer's filters in TensorBoard after every training epoch (``filters/conv1``).

    Filters that stay noise after a few epochs mean the first layer does not learn (too high a
    learning rate, dead units); edges and colour blobs appearing is the paper's Figure 3 forming.
    Does nothing without a TensorBoardLogger.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if tb is not None and trainer.is_global_zero:
            net = cast(AlexNet, pl_module.net)  # nn.Module types a submodule attribute as Tensor | Module
            tb.experiment.add_image("filters/conv1", first_layer_filters(net), trainer.current_epoch)
