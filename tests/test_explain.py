"""Explanations checked where the right answer is known: only a small square decides the class.

The images are dim noise with one square of a quarter of the side, anywhere; its colour (red or
green) is the class. A trained network's maps must put most of their mass on the square; the same
network with re-initialized weights must not (the model-randomization check of Adebayo et al.,
"Sanity Checks for Saliency Maps", 2018): a map that survives it shows the image, not the model.

Why colour and not position (top-left vs bottom-right square): Grad-CAM weighs each channel by its
gradient averaged over the map, so evidence that is only about where cancels out; and the default
global-average-pool head sees position only through the image border. Why 128 px for Grad-CAM: at
64 px AlexNet's last conv layer is 3x3 and each cell sees the whole image, so its map cannot point
anywhere (measured: 0.29 of the mass on the square, 0.23 for random weights); at 128 px it is 7x7.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config, run_cli
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from alexnet_lightning.attribution import gradcam, occlusion, overlay
from alexnet_lightning.errors import UserError
from alexnet_lightning.explain import explain
from alexnet_lightning.features import (
    FirstLayerFilters,
    feature_maps,
    first_layer_filters,
    nearest,
    penultimate,
)
from alexnet_lightning.models.alexnet import LAYOUTS, build_alexnet, min_input_size
from alexnet_lightning.module import AlexNetClassifier

CLASSES = ["green", "red"]  # sorted, as the image folder lists them
CHANNEL = {"green": 1, "red": 0}
MEAN, STD = 0.5, 0.25


def square_images(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """uint8 images (n x 3 x size x size), their classes, and each square's top-left corner."""
    g = torch.Generator().manual_seed(seed)
    side = size // 4
    images = torch.rand(n, 3, size, size, generator=g) * 0.5
    labels = torch.arange(n) % 2
    corners = []
    for image, label in zip(images, labels.tolist(), strict=True):
        r, c = torch.randint(0, size - side + 1, (2,), generator=g).tolist()
        image[:, r : r + side, c : c + side] = 0.1
        image[CHANNEL[CLASSES[label]], r : r + side, c : c + side] = 1.0
        corners.append((r, c))
    return (images * 255).round().to(torch.uint8), labels, corners


def normalize(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - MEAN) / STD


def train(size: int, seed: int = 0, n: int = 192) -> nn.Module:
    """The template's default network (BatchNorm, global-average-pool head) after two epochs on ``n`` images
    (one epoch left one seed in four at chance)."""
    torch.manual_seed(seed)
    net = build_alexnet(2, norm="batchnorm", head="gap")
    images, labels, _ = square_images(n, size, seed=seed)
    x = normalize(images)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.train()
    for batch in [*torch.randperm(n).split(32), *torch.randperm(n).split(32)]:
        loss = F.cross_entropy(net(x[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


def randomized(net: nn.Module) -> nn.Module:
    """The same architecture with every layer re-initialized (all weights and statistics)."""
    copy_ = copy.deepcopy(net)
    for module in copy_.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return copy_.eval()


def share_on_square(maps: torch.Tensor, corners: list[tuple[int, int]]) -> torch.Tensor:
    """Each map's share of its mass inside the square grown by half its side (a quarter of the image)."""
    side = maps.shape[-1] // 4
    shares = []
    for m, (r, c) in zip(maps, corners, strict=True):
        inside = m[max(0, r - side // 2) : r + side + side // 2, max(0, c - side // 2) : c + side + side // 2]
        shares.append(inside.sum() / m.sum().clamp_min(1e-12))
    return torch.stack(shares)


@pytest.fixture(scope="module")
def net64() -> nn.Module:
    return train(64)


@pytest.mark.parametrize(
    ("method", "size", "trained_min", "random_max"),
    [
        # measured over training seeds 0-4: trained 0.56-0.59 of the mass on the square, random 0.00-0.27
        (gradcam, 128, 0.5, 0.35),
        # trained 0.74-0.90, random 0.21-0.47 (hiding a bright square moves a random network's scores too,
        # but not mostly there)
        (occlusion, 64, 0.7, 0.5),
    ],
    ids=["gradcam", "occlusion"],
)
def test_the_map_points_at_the_square_and_random_weights_do_not(
    method, size: int, trained_min: float, random_max: float, net64: nn.Module
) -> None:
    net = net64 if size == 64 else train(size)
    images, labels, corners = square_images(12, size, seed=1)
    x = normalize(images)
    assert (net(x).argmax(1) == labels).float().mean() >= 0.9
    trained = share_on_square(method(net, x, labels), corners)
    random = share_on_square(method(randomized(net), x, labels), corners)
    assert trained.mean() > trained_min, trained
    assert random.mean() < random_max, random


def save_checkpoint(path: Path, net: nn.Module | None = None, channels: int = 3, **options: str) -> Path:
    """A checkpoint as training writes it (plain hyperparameters and weights), 64 px, of ``net`` when given."""
    model = AlexNetClassifier(
        model={"_target_": "alexnet_lightning.models.alexnet.build_alexnet", "norm": "batchnorm", "head": "gap",
               **options},
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3},
        scheduler=None, class_names=CLASSES, image_size=64, in_channels=channels, mean=[MEAN] * channels,
        std=[STD] * channels,
    )  # fmt: skip
    if net is not None:
        model.net.load_state_dict(net.state_dict())
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(net64: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.ckpt", net64)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/green/*.png`` and ``root/red/*.png``: 80 images of 64 px."""
    root = tmp_path_factory.mktemp("squares")
    images, labels, _ = square_images(80, 64, seed=2)
    for k, (image, label) in enumerate(zip(images, labels.tolist(), strict=True)):
        (root / CLASSES[label]).mkdir(exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / CLASSES[label] / f"{k:03d}.png")
    return root


def run_explain(tmp_path: Path, ckpt: Path, *overrides: str) -> tuple[dict, Path]:
    out = tmp_path / "run"
    return explain(compose_config("explain", out, f"ckpt_path={ckpt}", "device=cpu", *overrides)), out


def data(folder: Path, tmp_path: Path) -> list[str]:
    return ["dataset=imagefolder", f"data_dir={folder}", f"paths.cache_dir={tmp_path / 'cache'}", "data.num_workers=0"]


def grid_size(tiles: int, side: int) -> tuple[int, int]:
    """The size of a grid of ``tiles`` square tiles: as square as possible, tiles enlarged by a whole factor to
    at least 32 px, one-pixel lines between and around them."""
    tile = side * math.ceil(32 / side)
    columns = math.ceil(math.sqrt(tiles))
    rows = math.ceil(tiles / columns)
    return columns * (tile + 1) + 1, rows * (tile + 1) + 1


# AlexNet (torchvision layout, 64 px): channels and side of each conv layer's output, and conv1's kernel
CONV_AT_64 = [(64, 15), (192, 7), (384, 3), (256, 3), (256, 3)]


def test_a_split_s_top_losses_every_file_an_image_of_its_size(checkpoint: Path, folder: Path, tmp_path: Path,
                                                               capsys) -> None:  # fmt: skip
    result, out = run_explain(tmp_path, checkpoint, *data(folder, tmp_path), "split=test", "top=4", "neighbours=3")
    feature_files = [f"feature_maps/conv{k}.png" for k in range(1, 6)]
    pictures = ["attributions.png", *feature_files, "filters.png", "neighbours.png", "embedding.png"]
    assert result == {"explained": 4, "files": [*pictures, "explanations.csv"]}
    sizes = {name: grid_size(tiles, side) for name, (tiles, side) in zip(feature_files, CONV_AT_64, strict=True)}
    sizes["filters.png"] = grid_size(64, 11)
    for name in pictures:
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            if name in sizes:
                assert image.size == sizes[name], name
                assert image.mode == "RGB"
            else:
                assert image.width > 400 and image.height > 200, name

    with (out / "explanations.csv").open() as f:
        rows = list(csv.DictReader(f))
    test_items = json.loads((out / "split.json").read_text())["test"]
    assert len(rows) == 4 and all(r["source"] in test_items for r in rows)
    assert all(r["true"] == Path(r["source"]).parent.name for r in rows)  # the split's labels
    assert all(r["neighbour3"] and "neighbour4" not in r for r in rows)
    printed = capsys.readouterr().out
    assert (
        "Grad-CAM is as fine as the last conv layer: 3x3 at 64 px; occlusion hides 16 px squares every 4 px" in printed
    )


def test_the_nearest_training_image_of_a_training_image_is_itself(checkpoint: Path, folder: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    _, out = run_explain(tmp_path / "a", checkpoint, *data(folder, tmp_path), "top=1", "neighbours=0", "embed_max=0")
    train_items = json.loads((out / "split.json").read_text())["train"]
    chosen = train_items[::9]  # a handful from both classes, named relative to the folder
    queries = tmp_path / "queries"
    for k, item in enumerate(chosen):
        (queries / Path(item).parent.name).mkdir(parents=True, exist_ok=True)
        (queries / Path(item).parent.name / f"{k}.png").write_bytes((folder / item).read_bytes())
    result, out = run_explain(tmp_path / "b", checkpoint, *data(folder, tmp_path), f"inputs={queries}",
                              "neighbours=5", "embed_max=0")  # fmt: skip
    assert "neighbours.png" in result["files"]
    with (out / "explanations.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(chosen)
    for row in rows:
        neighbours = [row[f"neighbour{k}"] for k in range(1, 6)]
        original = chosen[int(Path(row["source"]).stem)]
        assert neighbours[0] == original
        assert row["true"] == Path(row["source"]).parent.name  # labelled by its folder
        # the trained network's feature space groups by the colour that decides the class
        assert sum(Path(n).parent.name == row["true"] for n in neighbours) >= 4


def test_nearest_puts_each_row_first_at_distance_zero(net64: nn.Module) -> None:
    images, _, _ = square_images(20, 64, seed=3)
    bank = penultimate(net64, normalize(images))
    distances, indices = nearest(bank[[4, 11]], bank, k=3)
    assert indices[:, 0].tolist() == [4, 11]
    assert distances[:, 0].tolist() == [0.0, 0.0] and (distances[:, 1:] > 0).all()
    assert (distances.diff(dim=1) >= 0).all()


def test_cli_on_a_checkpoint_alone_and_one_image(checkpoint: Path, folder: Path, tmp_path: Path) -> None:
    image = next((folder / "red").glob("*.png"))
    result = run_cli("alexnet_lightning.explain", f"ckpt_path={checkpoint}", f"inputs={image}", "device=cpu",
                     f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "neighbours and embedding skipped: pass data_dir=DIR (the checkpoint's data)" in result.stdout
    for name in ("attributions.png", "filters.png", "feature_maps/conv5.png", "explanations.csv"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "neighbours.png").exists()
    with (tmp_path / "explanations.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["true"] == "red" and row["predicted"] == "red" and "neighbour1" not in row


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("data_dir=/somewhere",), "does not record its data .*: pass dataset=PRESET data_dir=FOLDER"),
        (("inputs=/no/such/file.png",), "does not exist"),
        (("inputs=x.png", "top=0"), "top=0 is invalid"),
        (("inputs=x.png", "split=train"), "split=train is unknown"),
    ],
)
def test_bad_requests_are_one_line(checkpoint: Path, tmp_path: Path, overrides: tuple[str, ...], message: str) -> None:
    with pytest.raises(UserError, match=message):
        run_explain(tmp_path, checkpoint, *overrides)


def test_a_data_set_of_other_classes_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="differ from the checkpoint's"):
        run_explain(tmp_path, checkpoint, "dataset=digits")


@pytest.mark.parametrize("head", ["fc", "gap"])
@pytest.mark.parametrize("layout", ["torchvision", "original"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_variant_gets_maps_of_its_input_size(channels: int, layout: str, head: str) -> None:
    torch.manual_seed(0)
    norm = "lrn" if layout == "original" else "batchnorm"
    net = build_alexnet(3, in_channels=channels, layout=layout, head=head, norm=norm).eval()
    size = max(64, min_input_size(layout))
    x = torch.randn(2, channels, size, size)
    targets = torch.tensor([0, 2])
    heat = gradcam(net, x, targets)
    assert heat.shape == (2, size, size) and (heat >= 0).all() and heat.isfinite().all()
    heat = occlusion(net, x[:1], targets[:1])  # 169 forward passes per image
    assert heat.shape == (1, size, size) and (heat >= 0).all() and heat.isfinite().all()
    shown = overlay(x[0].sigmoid(), heat[0])
    assert shown.shape == (3, size, size) and shown.min() >= 0 and shown.max() <= 1

    layers = feature_maps(net, x[0])
    assert [m.shape[0] for m in layers] == [out for out, *_ in LAYOUTS[layout]]
    filters = first_layer_filters(net)
    assert filters.shape == (3, *grid_size(LAYOUTS[layout][0][0], 11)[::-1])
    assert torch.equal(filters[0], filters[1]) == (channels == 1)  # gray filters for gray input
    assert penultimate(net, x).shape == (2, 4096 if head == "fc" else LAYOUTS[layout][-1][0])


def test_first_layer_filters_reach_tensorboard_each_epoch(tmp_path: Path) -> None:
    logger = TensorBoardLogger(str(tmp_path), name="", version="")
    module = SimpleNamespace(net=build_alexnet(2))
    for epoch in (0, 1):
        trainer = SimpleNamespace(loggers=[logger], is_global_zero=True, current_epoch=epoch)
        FirstLayerFilters().on_train_epoch_end(trainer, module)
    logger.experiment.flush()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    images = events.Images("filters/conv1")
    assert [i.step for i in images] == [0, 1]
    assert (images[0].width, images[0].height) == grid_size(64, 11)
