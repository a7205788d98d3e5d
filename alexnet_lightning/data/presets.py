"""The augmentation presets as data, so that the CPU (v2) and device (device_augment.py) paths share one definition.

Each preset names the random geometry and color changes of one recipe, from strong to none;
``v2_augmentation`` turns a spec into the torchvision v2 pipeline (identical, draw for draw, to
transforms.py's presets), and ``device_augment.DeviceAugment`` derives its batched affine +
jitter from the same spec.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torchvision.transforms import v2

from alexnet_lightning.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentSpec:
    """Random training changes; all off means resize + center crop (the eval view)."""

    crop_scale: tuple[float, float] | None = None
    """RandomResizedCrop area fraction of the image; None: resize the short side, center crop."""
    center_crop: float = 1.0
    """Without crop_scale: the center crop's share of the short side (the eval view's crop_fraction)."""
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.0
    """Probability of a horizontal flip."""
    degrees: float = 0.0
    """Rotation angle drawn uniformly from [-degrees, degrees], corners filled with black."""
    rotate_first: bool = False
    """Rotate the whole image before cropping (moderate) instead of the crop after it (strong)."""
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    """ColorJitter strengths: factors uniform in [max(0, 1 - s), 1 + s], applied in random order."""

    @property
    def jitter(self) -> bool:
        return bool(self.brightness or self.contrast or self.saturation)


PRESET_SPECS: dict[str, AugmentSpec] = {
    # ImageNet's crop (8-100 % of the area) and flip, colour jitter, then the crop rotated
    "strong": AugmentSpec(crop_scale=(0.08, 1.0), flip=0.5, degrees=15, brightness=0.2, contrast=0.2, saturation=0.2),
    # flip and rotate the whole photo, then keep 80-100 % of it, brightness only
    "moderate": AugmentSpec(crop_scale=(0.8, 1.0), flip=0.5, degrees=10, rotate_first=True, brightness=0.2),
    "light": AugmentSpec(crop_scale=(0.6, 1.0), flip=0.5),
    # torchvision's ImageNet reference training: RandomResizedCrop (8-100 % of the area) and flip, nothing else
    "imagenet": AugmentSpec(crop_scale=(0.08, 1.0), flip=0.5),
    "none": AugmentSpec(),
}
OLD_NAMES = {"seed000": "strong", "seed002": "moderate"}
"""Names of the blog posts the recipes came from, as users and old configs typed them."""


def preset_name(preset: str) -> str:
    """The preset ``augment=preset`` means: old names give their new one, with a note; unknown names stop the run."""
    if preset in OLD_NAMES:
        log.warning("augment=%s is now called augment=%s: the same augmentation", preset, OLD_NAMES[preset])
        return OLD_NAMES[preset]
    if preset not in PRESET_SPECS:
        raise UserError(f"augment={preset!r} is unknown: use one of {', '.join(PRESET_SPECS)}")
    return preset


def preset_spec(preset: str, channels: int = 3) -> AugmentSpec:
    """The spec of ``augment=preset``; saturation is meaningless for gray images and is dropped."""
    spec = PRESET_SPECS[preset_name(preset)]
    if channels == 1 and spec.saturation:
        spec = AugmentSpec(**{**spec.__dict__, "saturation": 0.0})
    return spec


def resize_center_crop(size: int, crop_fraction: float = 1.0) -> v2.Transform:
    """The eval view (and preset ``none``): resize the short side to ``size / crop_fraction``, center crop ``size``.

    ``crop_fraction=0.875`` is ImageNet's Resize(256) + CenterCrop(224), the view that torchvision's
    reference accuracies are measured with; 1.0 keeps the whole short side.
    """
    return v2.Compose([v2.Resize(round(size / crop_fraction), antialias=True), v2.CenterCrop(size)])


def v2_augmentation(preset: str, size: int, channels: int) -> v2.Transform:
    """The uint8 -> uint8 torchvision v2 pipeline of a preset (the CPU path)."""
    spec = preset_spec(preset, channels)
    if spec.crop_scale is None:
        return resize_center_crop(size, spec.center_crop)
    crop = v2.RandomResizedCrop(size, scale=spec.crop_scale, ratio=spec.crop_ratio, antialias=True)
    flip = [v2.RandomHorizontalFlip(spec.flip)] if spec.flip else []
    rotate = [v2.RandomRotation(spec.degrees)] if spec.degrees else []
    jitter = [v2.ColorJitter(spec.brightness, spec.contrast, spec.saturation)] if spec.jitter else []
    if spec.rotate_first:
        return v2.Compose([*flip, *rotate, crop, *jitter])
    return v2.Compose([crop, *flip, *jitter, *rotate])
