"""See what the network learned: heatmaps, feature maps, first-layer filters, nearest training images, t-SNE.

python -m alexnet_lightning.explain ckpt_path=FILE inputs=photo.jpg           # the checkpoint alone
python -m alexnet_lightning.explain ckpt_path=FILE dataset=... [data_dir=...] [split=test] [top=16]

Without ``inputs`` the split's images with the highest loss are explained. With a data set (the one
the model was trained on, and the training run's seed), each explained image also gets its nearest
training images and the split is drawn as a t-SNE map. Files go into the run directory:

- attributions.png: per image, Grad-CAM and occlusion maps of the predicted and (where known) true class
- feature_maps/conv1.png ... conv5.png: every channel of every conv layer for the first image
- filters.png: the first layer's filters; neighbours.png, embedding.png: with a data set
- explanations.csv: per image its source, prediction, true class and nearest training images, nearest first
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Subset

from alexnet_lightning import plots
from alexnet_lightning.atomic import write_csv
from alexnet_lightning.attribution import attribution_figure, occlusion_square
from alexnet_lightning.command import hydra_command
from alexnet_lightning.config import check_config
from alexnet_lightning.console import shown_path
from alexnet_lightning.data.datamodule import ImageDataModule, ImageDataset
from alexnet_lightning.data.decode import BadImageError
from alexnet_lightning.data.sources import label_from_name
from alexnet_lightning.errors import UserError
from alexnet_lightning.eval import check_split_matches_training, per_image_loss
from alexnet_lightning.features import (
    embedding_figure,
    feature_maps,
    first_layer_filters,
    nearest,
    penultimate,
    penultimate_of_loader,
    tile_grid,
)
from alexnet_lightning.inference import Predictor, checkpoint_datamodule, find_inputs, split_loader

Queries = tuple[torch.Tensor, list[int | None], list[str]]  # normalized images, true classes, names


def _check(cfg: DictConfig) -> None:
    for key in ("top", "neighbours", "embed_max"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "top" else 0):
            raise UserError(f"{key}={value!r} is invalid: it must be a whole number >= {1 if key == 'top' else 0}")
    if cfg.split not in ("test", "val"):
        raise UserError(f"split={cfg.split} is unknown: use test or val")


def input_queries(predictor: Predictor, inputs: str, limit: int) -> Queries:
    """Up to ``limit`` readable images of ``inputs``, with the class their folder or file name gives."""
    images, true, names = [], [], []
    for path in find_inputs(inputs):
        try:
            images.append(predictor.preprocess(path))
        except BadImageError as e:
            print(f"unreadable: {path}: {e}")
            continue
        true.append(label_from_name(path, predictor.class_names))
        names.append(str(path))
        if len(images) == limit:
            break
    if not images:
        raise UserError(f"no readable images in inputs={inputs}")
    return torch.stack(images), true, names


def top_loss_queries(predictor: Predictor, datamodule: ImageDataModule, loader: DataLoader, top: int) -> Queries:
    """The ``top`` images of the loader's split with the highest loss (wrong or right), highest first."""
    probs, targets = predictor.predict_loader(loader)
    order = per_image_loss(probs, targets).argsort(descending=True)[:top].tolist()
    dataset = cast(ImageDataset, loader.dataset)  # DataLoader's type does not carry its dataset's
    images = torch.stack([dataset[i][0] for i in order])
    names = [datamodule.samples.describe(dataset.positions[i]) for i in order]
    return images, [int(targets[i]) for i in order], names


def write_neighbours(
    out: Path, predictor: Predictor, datamodule: ImageDataModule, x: torch.Tensor, k: int
) -> list[list[str]]:
    """neighbours.png: each image and its ``k`` nearest training images; returns the neighbours' names."""
    train = ImageDataset(datamodule.samples, datamodule.splits["train"], predictor.channels, predictor.transform)
    loader = DataLoader(train, batch_size=datamodule.batch_size, num_workers=datamodule.num_workers)
    net = predictor.model.net
    distances, indices = nearest(penultimate(net, x), penultimate_of_loader(net, loader)[0], k)
    classes = predictor.class_names
    images, titles = [], []
    for query, row_distances, row in zip(x, distances, indices.tolist(), strict=True):
        images.append(plots.denormalize(query, predictor.mean, predictor.std))
        titles.append("explained")
        for distance, i in zip(row_distances.tolist(), row, strict=True):
            image, label = train[i]
            images.append(plots.denormalize(image, predictor.mean, predictor.std))
            titles.append(f"{classes[label]}\ndistance {distance:.1f}")
    plots.save(plots.image_grid(images, titles, columns=k + 1), out / "neighbours.png")
    return [[datamodule.samples.describe(train.positions[i]) for i in row] for row in indices.tolist()]


def write_embedding(out: Path, predictor: Predictor, loader: DataLoader, x: torch.Tensor, limit: int, seed: int) -> int:
    """embedding.png: t-SNE of at most ``limit`` images of the split (a seeded sample), the explained ones as stars."""
    dataset = cast(ImageDataset, loader.dataset)
    chosen = sorted(random.Random(seed).sample(range(len(dataset)), min(limit, len(dataset))))
    if len(chosen) < 5:
        print(f"embedding skipped: the split has {len(chosen)} images to draw (embed_max={limit}), t-SNE needs 5")
        return 0
    sample = DataLoader(Subset(dataset, chosen), batch_size=loader.batch_size, num_workers=loader.num_workers)
    net = predictor.model.net
    features, labels = penultimate_of_loader(net, sample)
    figure = embedding_figure(features, labels.tolist(), predictor.class_names, penultimate(net, x), seed)
    plots.save(figure, out / "embedding.png")
    return len(chosen)


def write_layers(out: Path, predictor: Predictor, x: torch.Tensor) -> list[str]:
    """feature_maps/convN.png for one image and filters.png; says how fine the two heatmaps are."""
    net, written = predictor.model.net, []
    maps = feature_maps(net, x)
    for k, layer in enumerate(maps, start=1):
        plots.save_image(tile_grid(layer[:, None]), out / "feature_maps" / f"conv{k}.png")
        written.append(f"feature_maps/conv{k}.png")
    plots.save_image(first_layer_filters(net), out / "filters.png")
    window, stride = occlusion_square(predictor.image_size)
    print(
        f"Grad-CAM is as fine as the last conv layer: {maps[-1].shape[-2]}x{maps[-1].shape[-1]} at "
        f"{predictor.image_size} px; occlusion hides {window} px squares every {stride} px"
    )
    return [*written, "filters.png"]


def explain(cfg: DictConfig) -> dict[str, Any]:
    """Explain the inputs (or the split's top losses); returns what was written."""
    check_config(cfg)
    _check(cfg)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor.load(cfg.ckpt_path, cfg.device)
    datamodule = loader = None
    if cfg.get("data") is not None or cfg.data_dir is not None or not cfg.inputs:  # no inputs: the checkpoint's data
        datamodule = checkpoint_datamodule(
            predictor, cfg.get("data"), cfg.data_dir, cfg.seed, cfg.paths.cache_dir, cfg.num_workers
        )
        datamodule.write_run_files(out)
        check_split_matches_training(out, Path(cfg.ckpt_path), cfg.split)
        loader = split_loader(datamodule, cfg.split)
    if cfg.inputs:
        x, true, names = input_queries(predictor, cfg.inputs, cfg.top)
    else:
        assert datamodule is not None and loader is not None  # no inputs: the checkpoint's data
        x, true, names = top_loss_queries(predictor, datamodule, loader, cfg.top)

    probs = predictor.probabilities(x)
    predicted = probs.argmax(1)
    classes = predictor.class_names
    shown = zip(names, predicted.tolist(), probs.amax(1).tolist(), strict=True)
    titles = [f"{Path(name).name[-24:]}\n{classes[p]} ({confidence:.2f})" for name, p, confidence in shown]
    plots.save(attribution_figure(predictor, x, predicted, true, titles), out / "attributions.png")
    written = ["attributions.png", *write_layers(out, predictor, x[0])]

    neighbours: list[list[str]] = [[] for _ in names]
    if datamodule is None or loader is None:
        print(
            "neighbours and embedding skipped: pass data_dir=DIR (the checkpoint's data) or dataset=NAME data_dir=DIR"
        )
    else:
        if cfg.neighbours:
            neighbours = write_neighbours(out, predictor, datamodule, x, cfg.neighbours)
            written.append("neighbours.png")
        if cfg.embed_max and write_embedding(out, predictor, loader, x, cfg.embed_max, datamodule.seed):
            written.append("embedding.png")

    rows = [
        [name, classes[p], f"{probs[i, p]:.6f}", "" if t is None else classes[t], *neighbours[i]]
        for i, (name, p, t) in enumerate(zip(names, predicted.tolist(), true, strict=True))
    ]
    header = ["source", "predicted", "probability", "true", *(f"neighbour{k + 1}" for k in range(len(neighbours[0])))]
    write_csv(out / "explanations.csv", header, rows)
    written.append("explanations.csv")
    print(
        f"images explained: {len(names)} ({'inputs' if cfg.inputs else f'top losses of the {cfg.split} split'}); "
        f"feature maps of {names[0]}"
    )
    print(f"wrote {', '.join(written)} in {shown_path(out)}")
    return {"explained": len(names), "files": written}


main = hydra_command("explain", explain)


if __name__ == "__main__":
    main()
