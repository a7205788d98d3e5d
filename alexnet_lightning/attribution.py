"""Where in an image a prediction comes from: Grad-CAM and occlusion maps, overlaid on the image.

Both methods come from captum (``LayerGradCam``, ``Occlusion``), PyTorch's maintained attribution
library: it implements them as the papers define them, handles the hooks, in-place activations and
batching that hand-written versions get subtly wrong, and is tested against each method's properties.

Grad-CAM (Selvaraju et al. 2017) weighs the last conv layer's maps by their gradients: cheap (one
backward pass), but only as fine as that layer, 3x3 at 64 px, 13x13 at 224 px. Occlusion (Zeiler &
Fergus 2014) hides one square at a time (with the data set's mean colour) and records how much the
class score drops: many forward passes, but as fine as its stride and faithful for any network.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch
import torchvision
from captum.attr import LayerAttribution, LayerGradCam, Occlusion
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import nn

from alexnet_lightning import plots
from alexnet_lightning.features import conv_activations, device_of
from alexnet_lightning.inference import Predictor
from alexnet_lightning.models.alexnet import AlexNet

OCCLUSION_STEPS = 16  # the occluding square is 4/16 of the image side and moves by 1/16: 13x13 positions
ALPHA = 0.5  # share of the heatmap's colour in an overlay


def gradcam(net: AlexNet, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of class ``targets[i]`` for image ``x[i]`` on the last conv layer, upsampled: N x H x W, >= 0."""
    device = device_of(net)
    maps = LayerGradCam(net, conv_activations(net)[-1]).attribute(
        x.to(device), target=targets.to(device), relu_attributions=True
    )
    return LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")[:, 0].detach().cpu()


def occlusion_square(side: int) -> tuple[int, int]:
    """The occluding square's side and step for images of ``side`` pixels (13x13 positions)."""
    stride = max(1, side // OCCLUSION_STEPS)
    return 4 * stride, stride


def occlusion(net: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """How much the score of ``targets[i]`` drops where a square of ``x[i]`` is hidden: N x H x W, >= 0.

    The square is filled with 0, which after normalization is the data set's mean colour.
    """
    device = device_of(net)
    channels = x.shape[1]
    window, stride = occlusion_square(x.shape[-1])
    attributions = Occlusion(net).attribute(
        x.to(device),
        target=targets.to(device),
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=0.0,
        perturbations_per_eval=64,
    )
    return attributions.mean(dim=1).clamp_min(0).detach().cpu()


METHODS = {"gradcam": gradcam, "occlusion": occlusion}
TITLES = {"gradcam": "Grad-CAM", "occlusion": "occlusion"}


def overlay(image: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """A heatmap (H x W, scaled to its maximum) in the jet colours over a [0, 1] image: 3 x H x W in [0, 1]."""
    heat = heat / heat.max() if heat.max() > 0 else heat
    colour = torch.from_numpy(colormaps["jet"](heat.numpy())[..., :3]).permute(2, 0, 1).to(image.dtype)
    return (1 - ALPHA) * image.expand(3, -1, -1) + ALPHA * colour


def overlays(predictor: Predictor, x: torch.Tensor, targets: torch.Tensor, method: str = "gradcam") -> torch.Tensor:
    """``method``'s maps of normalized images ``x`` for ``targets``, overlaid on the images: N x 3 x H x W."""
    heat = METHODS[method](predictor.model.net, x, targets)
    images = plots.denormalize(x.cpu(), predictor.mean, predictor.std)
    return torch.stack([overlay(image, h) for image, h in zip(images, heat, strict=True)])


def overlay_png(predictor: Predictor, x: torch.Tensor, method: str) -> bytes:
    """``method``'s map of the predicted class over one normalized image (C x H x W), as PNG bytes of H x W."""
    predicted = predictor.probabilities(x[None]).argmax(1)
    buffer = io.BytesIO()
    torchvision.utils.save_image(overlays(predictor, x[None], predicted, method)[0], buffer, format="png")
    return buffer.getvalue()


def gradcam_grid(
    predictor: Predictor, x: torch.Tensor, targets: torch.Tensor, titles: Sequence[str], colors: Sequence[str]
) -> Figure:
    """A labelled grid of the Grad-CAM overlays of the predicted ``targets`` (predict's and eval's companion figure)."""
    fig = plots.image_grid(list(overlays(predictor, x, targets)), titles, colors)
    fig.suptitle("Grad-CAM of the predicted class", y=1.02)
    return fig


def attribution_figure(
    predictor: Predictor, x: torch.Tensor, predicted: torch.Tensor, true: Sequence[int | None], titles: Sequence[str]
) -> Figure:
    """One row per image: the image (titled ``titles[i]``), then Grad-CAM and occlusion of the predicted class
    and, where it is known, of the true class (the same maps when the prediction is right)."""
    classes, right = predictor.class_names, [t == p for t, p in zip(true, predicted.tolist(), strict=True)]
    wrong = [i for i, t in enumerate(true) if t is not None and not right[i]]
    images = plots.denormalize(x.cpu(), predictor.mean, predictor.std)
    cells = {(row, 0): (image, titles[row]) for row, image in enumerate(images)}  # (row, column) -> image, title
    for m, method in enumerate(METHODS):
        for row, shown in enumerate(overlays(predictor, x, predicted, method)):
            cells[row, 1 + m] = (shown, f"{TITLES[method]}\npredicted: {classes[predicted[row]]}")
            if right[row]:
                cells[row, 3 + m] = (shown, f"{TITLES[method]}\ntrue: {classes[predicted[row]]} (right)")
        if wrong:
            targets = torch.tensor([true[i] for i in wrong])
            shown_wrong = overlays(predictor, x[wrong], targets, method)
            for row, target, shown in zip(wrong, targets.tolist(), shown_wrong, strict=True):
                cells[row, 3 + m] = (shown, f"{TITLES[method]}\ntrue: {classes[target]}")
    width = 3 if all(t is None for t in true) else 5
    blank = (torch.ones(3, *x.shape[-2:]), "true class unknown")
    grid = [cells.get((row, column), blank) for row in range(len(x)) for column in range(width)]
    return plots.image_grid([image for image, _ in grid], [title for _, title in grid], columns=width)
