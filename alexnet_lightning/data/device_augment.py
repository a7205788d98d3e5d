"""Batched augmentation on the device: the whole geometry in one ``grid_sample``, then jitter and normalize.

AlexNet is so light that per-image PIL/v2 work on the CPU, not the GPU, sets the training speed.
Here a batch of uint8 images (the fixed-size cache of cache.py, already on the device) becomes
the model's float input in a handful of batched kernels: crop, aspect, flip and rotation of
every sample are composed into one 2x3 affine matrix, so the image is resampled once; color
jitter and normalization are elementwise. The random parameters follow presets.py's specs, so
they have the same distributions as the CPU presets, and are drawn on the device from a
generator seeded with the run's seed. It runs on any device, CPU tensors included.

The cache stores each image squashed to ``S x S``; passing the original ``(height, width)`` of
each image lets crops keep the original aspect ratio and area fractions, exactly as on the CPU.
Known small differences from the v2 path: bilinear sampling everywhere (v2 rotates with nearest
and resizes with antialiasing), and ``strong`` applies contrast after rotation, so its black
corners count towards the contrast mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from alexnet_lightning.data.presets import AugmentSpec, preset_spec

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


@dataclass
class AugmentParams:
    """Per-sample parameters of one batch, in original-image pixels (inspectable by tests)."""

    box: torch.Tensor
    """(N, 4): crop center x, center y (relative to the image center), width, height."""
    flip: torch.Tensor
    """(N,) bool."""
    angle: torch.Tensor
    """(N,) degrees, counter-clockwise."""
    factors: torch.Tensor
    """(N, 3): brightness, contrast, saturation factors (1 = unchanged)."""
    order: torch.Tensor
    """(N, 3): the order in which brightness (0), contrast (1) and saturation (2) are applied."""

    @property
    def crop_size(self) -> torch.Tensor:
        return self.box[:, 2:]


class DeviceAugment(nn.Module):
    """``augment(images_uint8, train, sizes) -> normalized float batch`` in channels_last.

    images: (N, C, H, W) uint8 on any device; sizes: optional (N, 2) original (height, width)
    of each image (default: the stored size). ``train=False`` gives the eval view: resize the
    short side and center crop ``crop_fraction`` of it, as transforms.eval_transform does.
    """

    mean: torch.Tensor  # buffers (register_buffer), which nn.Module's types cannot see
    std: torch.Tensor

    def __init__(
        self,
        preset: str,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        channels: int = 3,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        crop_fraction: float = 1.0,
    ) -> None:
        super().__init__()
        self.spec: AugmentSpec = preset_spec(preset, channels)
        self.eval_spec = AugmentSpec(center_crop=crop_fraction)
        self.size, self.channels, self.seed, self.dtype = size, channels, seed, dtype
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self._generator: torch.Generator | None = None

    def generator(self, device: torch.device) -> torch.Generator:
        """One generator per module on the batch's device, seeded once: the same seed gives the same batches."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        return self._generator

    def forward(self, images: torch.Tensor, train: bool = True, sizes: torch.Tensor | None = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected a uint8 NCHW batch, got {images.dtype} with shape {tuple(images.shape)}")
        if sizes is None:
            sizes = torch.tensor(images.shape[-2:], device=images.device).expand(len(images), 2)
        sizes = sizes.to(device=images.device, dtype=torch.float32)
        if self.mean.device != images.device:
            self.to(images.device)
        spec = self.spec if train else self.eval_spec
        return self.apply_params(images, sizes, self.sample(spec, sizes), spec)

    # parameters ---------------------------------------------------------------------------------

    def sample(self, spec: AugmentSpec, sizes: torch.Tensor) -> AugmentParams:
        """Draw every sample's parameters at once, with the distributions of the v2 transforms.

        Only what the spec uses is drawn, so the eval view consumes no random numbers and
        validation does not change the training batches.
        """
        n, device = len(sizes), sizes.device
        g = self.generator(device)
        box = self._crop_boxes(spec, sizes, g)
        flip = torch.rand(n, device=device, generator=g) < spec.flip if spec.flip else torch.zeros(n, device=device)
        angle = torch.zeros(n, device=device)
        if spec.degrees:
            angle = (torch.rand(n, device=device, generator=g) * 2 - 1) * spec.degrees
        factors, order = torch.ones(n, 3, device=device), torch.arange(3, device=device).expand(n, 3)
        if spec.jitter:
            strengths = torch.tensor([spec.brightness, spec.contrast, spec.saturation], device=device)
            low = (1 - strengths).clamp(min=0)
            factors = low + torch.rand(n, 3, device=device, generator=g) * (1 + strengths - low)
            order = torch.rand(n, 3, device=device, generator=g).argsort(dim=1)
        return AugmentParams(box=box, flip=flip.bool(), angle=angle, factors=factors, order=order)

    def _crop_boxes(self, spec: AugmentSpec, sizes: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """RandomResizedCrop.make_params for a whole batch: 10 tries each, first valid wins, else center."""
        height, width = sizes[:, 0], sizes[:, 1]
        zeros = torch.zeros_like(height)
        if spec.crop_scale is None:  # Resize(size / center_crop) + CenterCrop(size): the central square
            side = torch.minimum(height, width) * spec.center_crop
            return torch.stack([zeros, zeros, side, side], dim=1)
        n, tries, device = len(sizes), 10, sizes.device
        lo, hi = spec.crop_scale
        log_lo, log_hi = math.log(spec.crop_ratio[0]), math.log(spec.crop_ratio[1])
        area = (height * width)[:, None] * (lo + torch.rand(n, tries, device=device, generator=g) * (hi - lo))
        ratio = torch.exp(log_lo + torch.rand(n, tries, device=device, generator=g) * (log_hi - log_lo))
        w = torch.sqrt(area * ratio).round()
        h = torch.sqrt(area / ratio).round()
        ok = (w > 0) & (w <= width[:, None]) & (h > 0) & (h <= height[:, None])
        first = ok.int().argmax(dim=1, keepdim=True)
        found = ok.any(dim=1)
        w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
        top = torch.floor(torch.rand(n, device=device, generator=g) * (height - h + 1))
        left = torch.floor(torch.rand(n, device=device, generator=g) * (width - w + 1))
        # fallback: the largest central crop within the ratio range
        in_ratio = width / height
        fw = torch.where(in_ratio > max(spec.crop_ratio), (height * max(spec.crop_ratio)).round(), width)
        fh = torch.where(in_ratio < min(spec.crop_ratio), (width / min(spec.crop_ratio)).round(), height)
        w, h = torch.where(found, w, fw), torch.where(found, h, fh)
        top = torch.where(found, top, torch.div(height - h, 2, rounding_mode="floor"))
        left = torch.where(found, left, torch.div(width - w, 2, rounding_mode="floor"))
        return torch.stack([left + w / 2 - width / 2, top + h / 2 - height / 2, w, h], dim=1)

    # application --------------------------------------------------------------------------------

    def theta(self, spec: AugmentSpec, sizes: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """(N, 2, 3) maps from output to source coordinates (affine_grid's convention, align_corners=False)."""
        n, device = len(sizes), sizes.device
        eye = torch.eye(2, device=device).expand(n, 2, 2)
        half_out = torch.full((n,), self.size / 2, device=device)
        out = torch.diag_embed(torch.stack([half_out, half_out], dim=1))  # normalized output -> pixels
        crop = torch.diag_embed(params.crop_size / self.size)  # crop output pixels -> image pixels
        flip = torch.diag_embed(torch.stack([1 - 2 * params.flip.float(), torch.ones(n, device=device)], dim=1))
        unrotate = _unrotation(params.angle) if spec.degrees else eye
        to_source = torch.diag_embed(2 / sizes.flip(1))  # image pixels (x, y) -> normalized source
        center = params.box[:, :2, None]
        if spec.rotate_first:  # flip -> rotate the whole image -> crop
            linear = to_source @ flip @ unrotate @ crop @ out
            shift = to_source @ flip @ unrotate @ center
        else:  # crop -> flip -> rotate the crop
            linear = to_source @ crop @ flip @ unrotate @ out
            shift = to_source @ center
        return torch.cat([linear, shift], dim=2)

    def apply_params(
        self, images: torch.Tensor, sizes: torch.Tensor, params: AugmentParams, spec: AugmentSpec
    ) -> torch.Tensor:
        """Resample once, jitter, normalize; returns ``self.dtype`` in channels_last.

        The grid stays float32 (bf16 coordinates would be off by a pixel at 256 px); on CUDA the
        elementwise work after resampling runs in ``self.dtype``.
        """
        compute = self.dtype if images.is_cuda else torch.float32
        theta = self.theta(spec, sizes, params)
        grid = F.affine_grid(theta, [len(images), images.shape[1], self.size, self.size], align_corners=False)
        x = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if spec.degrees and not spec.rotate_first:  # the rotated crop's corners are black, not the image around it
            x = x.mul_(self._inside_crop(params, len(images), x.dtype))
        x = x.to(compute).mul_(1 / 255)
        if spec.jitter:
            x = self._jitter(x, params, spec)
        mean, std = self.mean.to(compute), self.std.to(compute)
        x = x.sub_(mean).div_(std)
        return x.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def _inside_crop(self, params: AugmentParams, n: int, dtype: torch.dtype) -> torch.Tensor:
        """(N, 1, S, S) mask of output pixels whose un-rotated position lies inside the crop."""
        unrotate = F.pad(_unrotation(params.angle), (0, 1))  # (N, 2, 3): no shift
        grid = F.affine_grid(unrotate.to(dtype), [n, 1, self.size, self.size], align_corners=False)
        return (grid.abs() <= 1).all(dim=-1).unsqueeze(1).to(dtype)

    def _jitter(self, x: torch.Tensor, params: AugmentParams, spec: AugmentSpec) -> torch.Tensor:
        """ColorJitter with per-sample factors and per-sample order (factor 1 is a no-op, so masks are factors)."""
        ops = [(0, spec.brightness, _brightness), (1, spec.contrast, _contrast)]
        if x.shape[1] == 3:
            ops.append((2, spec.saturation, _saturation))
        for step in range(3):
            for index, strength, op in ops:
                if strength:
                    chosen = params.order[:, step] == index
                    factor = torch.where(chosen, params.factors[:, index], 1.0).to(x.dtype).view(-1, 1, 1, 1)
                    x = op(x, factor)
        return x


def _unrotation(angle: torch.Tensor) -> torch.Tensor:
    """(N, 2, 2) inverse of a counter-clockwise rotation by ``angle`` degrees on screen (y points down)."""
    rad = torch.deg2rad(angle)
    cos, sin = torch.cos(rad), torch.sin(rad)
    return torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (r * GRAY_WEIGHTS[0] + g * GRAY_WEIGHTS[1] + b * GRAY_WEIGHTS[2]).unsqueeze(1)


def _brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * factor).clamp_(0, 1)


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return (x * factor + mean * (1 - factor)).clamp_(0, 1)


def _saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * factor + _gray(x) * (1 - factor)).clamp_(0, 1)


class DeviceAugmentMixin:
    """For a LightningDataModule whose loaders yield uint8 ``(images, labels[, sizes])``.

    Lightning calls ``on_after_batch_transfer`` once the batch is on the device; the mixin
    turns it into the model's normalized float input: random augmentation while fitting,
    the eval view in validation, test and predict. Set ``self.device_augment`` in setup().
    """

    device_augment: DeviceAugment | None = None

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.device_augment is None:
            return batch
        images, rest = (batch[0], list(batch[1:])) if isinstance(batch, (tuple, list)) else (batch, [])
        sizes = rest.pop() if len(rest) == 2 else None
        trainer = getattr(self, "trainer", None)
        train = bool(trainer is not None and trainer.training)
        images = self.device_augment(images, train=train, sizes=sizes)
        return (images, *rest) if rest else images
