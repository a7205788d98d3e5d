"""The AlexNet family: torchvision's layout, the 2012 original, and the variants users ask for.

One class builds every variant from a handful of switches, so a Hydra override such as
``model.head=gap`` or ``model.stem=small`` changes the network without new code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from alexnet_lightning.errors import UserError

Layout = Literal["torchvision", "original"]
Norm = Literal["none", "lrn", "batchnorm"]
Stem = Literal["imagenet", "small"]
Activation = Literal["relu", "leaky_relu"]
Head = Literal["fc", "gap"]
Init = Literal["default", "kaiming", "xavier"]

# (out_channels, kernel, stride, padding) of conv1..conv5, and after which convs a max-pool follows.
LAYOUTS: dict[str, list[tuple[int, int, int, int]]] = {
    "torchvision": [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)],
    "original": [(96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1)],
}
POOL_AFTER = (0, 1, 4)
TORCHVISION_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"


def min_input_size(layout: str = "torchvision", stem: str = "imagenet") -> int:
    """The smallest square image the feature extractor turns into at least one pixel."""
    if layout not in LAYOUTS:
        raise UserError(f"model.layout={layout!r} is unknown: use torchvision or original")
    for size in range(1, 512):
        side = size
        for i, (_, kernel, stride, padding) in enumerate(LAYOUTS[layout]):
            if i == 0 and stem == "small":
                kernel, stride, padding = 3, 1, 1
            side = (side + 2 * padding - kernel) // stride + 1
            if i in POOL_AFTER and not (i == 0 and stem == "small"):
                side = (side - 3) // 2 + 1
            if side < 1:
                break
        else:
            return size
    raise UserError(f"no image size fits model.layout={layout}, model.stem={stem}")


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    raise UserError(f"model.activation={name!r} is unknown: use relu or leaky_relu")


class AlexNet(nn.Module):
    """AlexNet with switchable stem, normalization, activation and head.

    ``stem='small'`` replaces the 11x11/4 first convolution with 3x3/1 and drops the first
    max-pool, so 28-32 px images (MNIST, CIFAR) keep enough spatial resolution.
    ``head='gap'`` replaces the 58M-parameter classifier with global average pooling and one
    linear layer.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        layout: Layout = "torchvision",
        stem: Stem = "imagenet",
        norm: Norm = "none",
        activation: str = "relu",
        head: Head = "fc",
        dropout: float = 0.5,
        hidden: int = 4096,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise UserError(f"model.layout={layout!r} is unknown: use torchvision or original")
        if stem not in ("imagenet", "small"):
            raise UserError(f"model.stem={stem!r} is unknown: use imagenet or small")
        if norm not in ("none", "lrn", "batchnorm"):
            raise UserError(f"model.norm={norm!r} is unknown: use none, lrn or batchnorm")
        if head not in ("fc", "gap"):
            raise UserError(f"model.head={head!r} is unknown: use fc or gap")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"model.dropout={dropout} must be in [0, 1)")

        layers: list[nn.Module] = []
        channels = in_channels
        for i, (out, kernel, stride, padding) in enumerate(LAYOUTS[layout]):
            if i == 0 and stem == "small":
                kernel, stride, padding = 3, 1, 1
            layers.append(nn.Conv2d(channels, out, kernel, stride, padding))
            if norm == "batchnorm":
                layers.append(nn.BatchNorm2d(out))
            layers.append(_activation(activation))
            if norm == "lrn" and i < 2:
                layers.append(nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
            if i in POOL_AFTER and not (i == 0 and stem == "small"):
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            channels = out
        self.features = nn.Sequential(*layers)

        if head == "fc":
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(
                nn.Dropout(p=dropout),
                nn.Linear(channels * 6 * 6, hidden),
                _activation(activation),
                nn.Dropout(p=dropout),
                nn.Linear(hidden, hidden),
                _activation(activation),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


def init_weights(model: nn.Module, scheme: str) -> None:
    """Kaiming for convolutions and N(0, 0.01) for linear layers (the 2012 recipe), or Xavier."""
    if scheme not in ("kaiming", "xavier", "default"):
        raise UserError(f"model.init={scheme!r} is unknown: use kaiming, xavier or default")
    if scheme == "default":
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if scheme == "kaiming":
                nn.init.normal_(m.weight, 0.0, 0.01)
            else:
                nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def _find_pretrained(path: str | None) -> Path:
    candidates = [Path(path).expanduser()] if path else []
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_WEIGHTS_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(
        f"pretrained AlexNet weights not found (looked in {', '.join(map(str, candidates))}): "
        f"download {TORCHVISION_WEIGHTS_FILE} from torchvision's AlexNet_Weights.IMAGENET1K_V1 "
        f"and pass model.pretrained_path=FILE or put it in {candidates[-1].parent}"
    )


def load_pretrained(model: AlexNet, path: str | None = None) -> None:
    """Load torchvision's IMAGENET1K_V1 weights, adapting conv1 and the last layer when needed.

    A 1-channel conv1 gets the sum of the RGB filters (a gray image is R=G=B); a classifier
    with another number of classes keeps its fresh initialisation.
    """
    state = torch.load(_find_pretrained(path), map_location="cpu", weights_only=True)
    own = model.state_dict()
    adapted = {}
    for key, value in state.items():
        if key not in own:
            raise UserError(
                f"pretrained weights do not fit this AlexNet (unexpected {key}): they need "
                "model.layout=torchvision, model.norm=none and model.head=fc"
            )
        if value.shape == own[key].shape:
            adapted[key] = value
        elif key == "features.0.weight" and value.shape[1] == 3 and own[key].shape[1] == 1:
            adapted[key] = value.sum(dim=1, keepdim=True)
        elif key.startswith("classifier.6."):
            continue
        else:
            raise UserError(
                f"pretrained weight {key} has shape {tuple(value.shape)}, the model needs "
                f"{tuple(own[key].shape)}: pretrained weights need model.stem=imagenet"
            )
    model.load_state_dict(adapted, strict=False)


def build_alexnet(
    num_classes: int,
    in_channels: int = 3,
    layout: Layout = "torchvision",
    stem: Stem = "imagenet",
    norm: Norm = "none",
    activation: Activation = "relu",
    head: Head = "fc",
    dropout: float = 0.5,
    init: Init = "default",
    pretrained: bool = False,
    pretrained_path: str | None = None,
) -> AlexNet:
    """Build the network from the plain ``model`` options saved in every checkpoint.

    Its signature is the allow-list of those options (alexnet_lightning.hparams checks them against it).
    """
    model = AlexNet(num_classes, in_channels, layout, stem, norm, activation, head, dropout)
    init_weights(model, init)
    if pretrained:
        load_pretrained(model, pretrained_path)
    return model
