"""The device path: shapes, determinism, equality with v2 for fixed parameters, same distributions as v2."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from alexnet_lightning.data import transforms as T
from alexnet_lightning.data.datamodule import ImageDataModule
from alexnet_lightning.data.device_augment import AugmentParams, DeviceAugment, DeviceAugmentMixin
from alexnet_lightning.data.presets import OLD_NAMES, PRESET_SPECS, AugmentSpec, preset_spec, v2_augmentation
from alexnet_lightning.errors import UserError

H, W = 120, 180  # original (non-square) image size


def _image(channels: int = 3, height: int = H, width: int = W) -> torch.Tensor:
    """A smooth gradient with a bright off-center block, so that flips and rotations show."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([xx, yy, xx * yy])[:channels] * 255
    image[:, height // 6 : height // 3, width // 6 : width // 3] = 255
    return image.round().to(torch.uint8)


def _describe(t: v2.Transform) -> tuple:
    if isinstance(t, v2.RandomResizedCrop):
        return ("crop", t.size[0], tuple(t.scale))
    if isinstance(t, v2.RandomHorizontalFlip):
        return ("flip", t.p)
    if isinstance(t, v2.RandomRotation):
        return ("rotate", tuple(t.degrees))
    if isinstance(t, v2.ColorJitter):
        return ("jitter", *(tuple(x) if x else None for x in (t.brightness, t.contrast, t.saturation)))
    return (type(t).__name__,)


SEED_RECIPES = {  # the seed posts' pipelines, step by step (moderate rotates the whole image, then crops)
    "strong": [("crop", 64, (0.08, 1.0)), ("flip", 0.5), ("jitter", (0.8, 1.2), (0.8, 1.2), (0.8, 1.2)),
               ("rotate", (-15.0, 15.0))],
    "moderate": [("flip", 0.5), ("rotate", (-10.0, 10.0)), ("crop", 64, (0.8, 1.0)),
                 ("jitter", (0.8, 1.2), None, None)],
    "light": [("crop", 64, (0.6, 1.0)), ("flip", 0.5)],
    "imagenet": [("crop", 64, (0.08, 1.0)), ("flip", 0.5)],  # torchvision's ImageNet reference
    "none": [("Resize",), ("CenterCrop",)],
}  # fmt: skip


@pytest.mark.parametrize("preset", list(PRESET_SPECS))
def test_specs_build_the_seed_recipes_cpu_pipelines(preset: str) -> None:
    assert [_describe(t) for t in v2_augmentation(preset, 64, 3).transforms] == SEED_RECIPES[preset]
    gray = [_describe(t) for t in v2_augmentation(preset, 64, 1).transforms if isinstance(t, v2.ColorJitter)]
    assert all(step[3] is None for step in gray), "no saturation jitter on gray images"


def test_unknown_preset_is_a_user_error() -> None:
    with pytest.raises(UserError, match="augment='heavy' is unknown"):
        preset_spec("heavy")


@pytest.mark.parametrize(("old", "new"), [("seed000", "strong"), ("seed002", "moderate")])
def test_the_seed_posts_names_still_work_and_name_the_new_one(old: str, new: str, caplog) -> None:
    assert OLD_NAMES[old] == new and preset_spec(old) == PRESET_SPECS[new]
    assert f"augment={old} is now called augment={new}" in caplog.text
    caplog.clear()
    dm = ImageDataModule("digits", augment=old)
    assert dm.augment == new and caplog.text.count(f"augment={new}") == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("train", [True, False])
def test_output_shape_dtype_and_channels_last(train: bool, dtype: torch.dtype) -> None:
    augment = DeviceAugment("strong", 56, [0.5, 0.4, 0.3], [0.2, 0.2, 0.2], dtype=dtype)
    batch = torch.stack([_image(), _image().flip(-1)])
    resized = TF.resize(batch, [64, 64], antialias=True)
    out = augment(resized, train=train, sizes=torch.tensor([[H, W]] * 2))
    assert out.shape == (2, 3, 56, 56) and out.dtype == dtype
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(out.float()).all()


def test_rejects_float_input() -> None:
    with pytest.raises(ValueError, match="uint8 NCHW"):
        DeviceAugment("light", 32, [0], [1], channels=1)(torch.zeros(2, 1, 40, 40), train=True)


def test_same_seed_gives_the_same_batches() -> None:
    batch = _image().expand(8, -1, -1, -1).contiguous()
    first, second, other = (DeviceAugment("strong", 48, [0, 0, 0], [1, 1, 1], seed=s) for s in (7, 7, 8))
    for _ in range(2):  # the generator advances: batch 2 differs from batch 1, identically for equal seeds
        a, b, c = first(batch), second(batch), other(batch)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # per-sample parameters


@pytest.mark.parametrize("crop_fraction", [1.0, 0.875])  # 0.875: ImageNet's Resize(256) + CenterCrop(224)
def test_eval_view_equals_cpu_resize_and_center_crop(crop_fraction: float) -> None:
    image = _image()
    expected = T.eval_transform(64, [0, 0, 0], [1, 1, 1], crop_fraction)(image)
    assert T.eval_transform(64, [0], [1], crop_fraction).transforms[0].transforms[0].size == [round(64 / crop_fraction)]
    cache = TF.resize(image, [128, 128], antialias=True)[None]  # the cache squashes, sizes restore the aspect
    augment = DeviceAugment("moderate", 64, [0, 0, 0], [1, 1, 1], crop_fraction=crop_fraction)
    out = augment(cache, train=False, sizes=torch.tensor([[H, W]]))[0]
    assert (out - expected).abs().mean() < 0.01
    whole = T.eval_transform(64, [0, 0, 0], [1, 1, 1])(image)
    assert crop_fraction == 1.0 or (out - whole).abs().mean() > 0.03, "the crop shows less of the image"


@pytest.mark.parametrize("preset", ["strong", "moderate"])
def test_fixed_parameters_reproduce_the_v2_operations(preset: str) -> None:
    """Crop box, flip and rotation composed into one affine equal v2's crop -> flip -> rotate (in its order)."""
    image, size, (top, left, h, w), angle = _image(), 64, (10, 20, 80, 100), 12.0
    augment = DeviceAugment(preset, size, [0, 0, 0], [1, 1, 1])
    box = torch.tensor([[left + w / 2 - W / 2, top + h / 2 - H / 2, w, h]], dtype=torch.float32)
    flips, order = torch.tensor([True]), torch.tensor([[0, 1, 2]])
    params = AugmentParams(box, flips, torch.tensor([angle]), torch.ones(1, 3), order)
    out = augment.apply_params(image[None], torch.tensor([[H, W]], dtype=torch.float32), params, augment.spec)[0]

    def rotate(x: torch.Tensor) -> torch.Tensor:
        return TF.rotate(x, angle, interpolation=v2.InterpolationMode.BILINEAR)

    def crop(x: torch.Tensor) -> torch.Tensor:
        return TF.resized_crop(x, top, left, h, w, [size, size], antialias=True)

    flip = TF.horizontal_flip
    expected = crop(rotate(flip(image))) if augment.spec.rotate_first else rotate(flip(crop(image)))
    assert (out - expected.float() / 255).abs().mean() < 0.01
    params.angle = -params.angle  # the other direction is far off: the test sees the rotation's sign
    wrong = augment.apply_params(image[None], torch.tensor([[H, W]], dtype=torch.float32), params, augment.spec)[0]
    assert (wrong - expected.float() / 255).abs().mean() > 0.05


def test_color_jitter_matches_v2_for_given_factors_and_order() -> None:
    image = _image()
    augment = DeviceAugment("strong", 64, [0, 0, 0], [1, 1, 1])
    factors = torch.tensor([[1.15, 0.85, 1.2]])
    order = torch.tensor([[2, 0, 1]])
    x = TF.resize(image, [64, 64], antialias=True).float()[None] / 255
    params = AugmentParams(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1), factors, order)
    out = augment._jitter(x.clone(), params, augment.spec)
    expected = TF.adjust_saturation(x, 1.2)
    expected = TF.adjust_contrast(TF.adjust_brightness(expected, 1.15), 0.85)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    brightness_only = augment._jitter(x.clone(), params, AugmentSpec(brightness=0.2))  # the spec given, not its own
    torch.testing.assert_close(brightness_only, TF.adjust_brightness(x, 1.15), atol=1e-5, rtol=0)


def _cpu_draws(preset: str, n: int) -> dict[str, torch.Tensor]:
    """Parameters drawn by the v2 transforms of the CPU preset themselves (make_params)."""
    transforms = v2_augmentation(preset, 64, 3).transforms
    image = torch.zeros(3, H, W, dtype=torch.uint8)
    draws: dict[str, list[float]] = {"scale": [], "ratio": [], "flip": [], "brightness": [], "angle": []}
    for _ in range(n):
        for t in transforms:
            if isinstance(t, v2.RandomResizedCrop):
                box = t.make_params([image])
                draws["scale"].append(box["height"] * box["width"] / (H * W))
                draws["ratio"].append(box["width"] / box["height"])
            elif isinstance(t, v2.RandomHorizontalFlip):
                draws["flip"].append(float(torch.rand(1) < t.p))  # v2's own test in _RandomApplyTransform
            elif isinstance(t, v2.ColorJitter):
                draws["brightness"].append(t.make_params([image])["brightness_factor"])
            elif isinstance(t, v2.RandomRotation):
                draws["angle"].append(t.make_params([image])["angle"])
    return {k: torch.tensor(v) for k, v in draws.items() if v}


@pytest.mark.parametrize("preset", ["strong", "moderate", "light"])
def test_parameter_distributions_match_the_cpu_preset(preset: str) -> None:
    n = 3000
    torch.manual_seed(0)
    cpu = _cpu_draws(preset, n)
    augment = DeviceAugment(preset, 64, [0, 0, 0], [1, 1, 1], seed=0)
    params = augment.sample(augment.spec, torch.tensor([[H, W]], dtype=torch.float32).expand(n, 2))
    w, h = params.crop_size.unbind(1)
    gpu = {
        "scale": w * h / (H * W),
        "ratio": w / h,
        "flip": params.flip.float(),
        "brightness": params.factors[:, 0],
        "angle": params.angle,
    }
    assert set(cpu) <= set(gpu)
    quantiles = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    flips = cpu.pop("flip")
    assert abs(flips.mean() - 0.5) < 0.03 and abs(gpu["flip"].mean() - 0.5) < 0.03
    for name, values in cpu.items():
        spread = values.quantile(0.95) - values.quantile(0.05)
        gap = (values.quantile(quantiles) - gpu[name].quantile(quantiles)).abs().max() / spread
        assert gap < 0.06, f"{name}: quantiles differ by {gap:.3f} of the range"
        assert abs(values.mean() - gpu[name].mean()) < 0.04 * spread, name
    if "angle" not in cpu:
        assert (gpu["angle"] == 0).all()
    if "brightness" not in cpu:
        assert (gpu["brightness"] == 1).all()


def test_mixin_augments_while_training_and_gives_the_eval_view_otherwise() -> None:
    class Module(DeviceAugmentMixin):
        trainer = SimpleNamespace(training=True)

    module = Module()
    module.device_augment = DeviceAugment("light", 32, [0, 0, 0], [1, 1, 1])
    images = TF.resize(_image(), [40, 40], antialias=True).expand(4, -1, -1, -1).contiguous()
    labels, sizes = torch.arange(4), torch.tensor([[H, W]] * 4)
    x, y = module.on_after_batch_transfer((images, labels, sizes), 0)
    assert x.shape == (4, 3, 32, 32) and torch.equal(y, labels)
    module.trainer = SimpleNamespace(training=False)
    x1, _ = module.on_after_batch_transfer((images, labels, sizes), 0)
    x2, _ = module.on_after_batch_transfer((images, labels), 0)  # sizes optional: the stored aspect is used
    assert torch.equal(x1[0], x1[3])  # eval view: no randomness
    assert x2.shape == x1.shape
    assert module.on_after_batch_transfer(images, 0).shape == (4, 3, 32, 32)  # predict: images only


def test_eval_view_draws_no_random_numbers() -> None:
    """Validation between epochs must not change the training batches that follow."""
    batch = TF.resize(_image(), [48, 48], antialias=True).expand(4, -1, -1, -1).contiguous()
    plain, with_eval = (DeviceAugment("strong", 32, [0, 0, 0], [1, 1, 1], seed=5) for _ in range(2))
    with_eval(batch, train=False)
    assert torch.equal(plain(batch, train=True), with_eval(batch, train=True))


def test_lightning_fit_and_validate_through_the_mixin(tmp_path) -> None:
    """A real Trainer: uint8 cache batches become normalized float input in train and validation."""
    import lightning as L

    from alexnet_lightning.data.cache import CachedImages, DeviceBatches, build_cache
    from alexnet_lightning.module import AlexNetClassifier

    arrays = [_image(3, 60 + 4 * i, 90 - 3 * i) for i in range(8)]
    cache = build_cache(list(range(8)), tmp_path / "cache", size=80, load=arrays.__getitem__, progress=False)
    data = CachedImages(cache, range(8), [i % 2 for i in range(8)])
    seen: list[tuple[torch.dtype, tuple[int, ...], bool]] = []

    class Data(DeviceAugmentMixin, L.LightningDataModule):
        def train_dataloader(self):
            return DeviceBatches(data, batch_size=4, device=lambda: self.trainer.strategy.root_device)

        def val_dataloader(self):
            return torch.utils.data.DataLoader(data, batch_size=4)

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            seen.append((batch[0].dtype, tuple(batch[0].shape), trainer.training))

        def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:
            seen.append((batch[0].dtype, tuple(batch[0].shape), trainer.training))

    dm = Data()
    dm.device_augment = DeviceAugment("moderate", 72, [0.5] * 3, [0.25] * 3)
    model = AlexNetClassifier(
        model={"_target_": "alexnet_lightning.models.alexnet.build_alexnet", "head": "gap"},
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3},
        scheduler=None,
        class_names=["a", "b"],
        image_size=72,
        in_channels=3,
        mean=[0.5] * 3,
        std=[0.25] * 3,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Spy()],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert ((torch.float32, (4, 3, 72, 72), True) in seen) and ((torch.float32, (4, 3, 72, 72), False) in seen)
    assert "val/acc" in trainer.callback_metrics


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", list(PRESET_SPECS))
def test_cpu_train_transform_gives_normalized_float_images(preset: str, channels: int) -> None:
    image = _image(channels)
    out = T.train_transform(preset, 32, channels, [0.5] * channels, [0.25] * channels)(image)
    assert out.shape == (channels, 32, 32) and out.dtype == torch.float32
    assert float(out.min()) >= -2.0 - 1e-6 and float(out.max()) <= 2.0 + 1e-6  # (x - 0.5) / 0.25 for x in [0, 1]
