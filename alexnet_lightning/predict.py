"""Predict the classes of images: one file, a folder (recursive) or a glob -> CSV and a labelled grid.

python -m alexnet_lightning.predict ckpt_path=outputs/DATE/TIME/checkpoints/last.ckpt inputs=~/photos

When folder names (``cats/x.jpg``) or Kaggle file names (``cat.12.jpg``) name a class, the true
label is shown too, with the share of correct predictions. Unreadable files are listed, not fatal.
"""

from __future__ import annotations

import csv
import glob
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from alexnet_lightning import plots
from alexnet_lightning.checkpoint import load_classifier, pick_device
from alexnet_lightning.config import check_config
from alexnet_lightning.data.decode import BadImageError, decode, is_image_path, to_channels
from alexnet_lightning.data.transforms import eval_transform
from alexnet_lightning.errors import UserError, exit_on_user_error
from alexnet_lightning.module import AlexNetClassifier


class Predictor:
    """A classifier plus the preprocessing its checkpoint describes: bytes or files in, top-k out."""

    def __init__(self, model: AlexNetClassifier, device: torch.device) -> None:
        hp = model.hparams
        self.model, self.device = model.eval(), device
        self.class_names: list[str] = list(hp.class_names)
        self.channels: int = hp.in_channels
        self.transform = eval_transform(hp.image_size, hp.mean, hp.std)
        self.mean, self.std = list(hp.mean), list(hp.std)

    def preprocess(self, source: str | Path | bytes) -> torch.Tensor:
        """A normalized CxHxW float tensor; raises BadImageError for what is not a usable image."""
        return self.transform(to_channels(decode(source, self.channels), self.channels))

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device, non_blocking=True)).float().softmax(dim=1).cpu()

    def top_k(self, probs: torch.Tensor, k: int) -> list[tuple[str, float]]:
        values, indices = probs.topk(min(k, len(self.class_names)))
        return [(self.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]


def find_inputs(inputs: str) -> list[Path]:
    """Files named by an image path, a folder (its images, recursively) or a glob pattern."""
    if inputs in (None, "", "???"):
        raise UserError("no inputs given: pass inputs=IMAGE, inputs=FOLDER or inputs='photos/*.jpg'")
    path = Path(str(inputs)).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and is_image_path(p))
        if not files:
            raise UserError(f"no images in {path} (looked for {', '.join(('.jpg', '.png', '...'))} recursively)")
        return files
    if any(c in str(inputs) for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise UserError(f"no files match {inputs}")
        return files
    raise UserError(f"inputs={inputs} does not exist: pass an image, a folder or a glob pattern")


def label_from_path(path: Path, class_names: list[str]) -> int | None:
    """The class named by the file's folder (``cats/1.jpg``) or Kaggle-style name (``cat.12.jpg``)."""
    lookup = {c.lower(): i for i, c in enumerate(class_names)}
    for candidate in (path.parent.name, path.name.split(".")[0]):
        if candidate.lower() in lookup:
            return lookup[candidate.lower()]
    return None


class ImageFiles(Dataset):
    """Preprocessed images; an unreadable file yields its reason instead of an exception."""

    def __init__(self, files: list[Path], predictor: Predictor) -> None:
        self.files, self.predictor = files, predictor

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            return i, self.predictor.preprocess(self.files[i]), ""
        except BadImageError as e:
            return i, None, str(e)


def _keep_as_list(batch: list[Any]) -> list[Any]:
    return batch


def predict_files(
    predictor: Predictor, files: list[Path], batch_size: int, num_workers: int, keep: int
) -> tuple[list[torch.Tensor | None], list[str], dict[int, torch.Tensor]]:
    """Probabilities per file (None when unreadable), the reasons, and the first ``keep`` inputs for a grid."""
    probs: list[torch.Tensor | None] = [None] * len(files)
    errors = [""] * len(files)
    kept: dict[int, torch.Tensor] = {}
    loader = DataLoader(
        ImageFiles(files, predictor), batch_size=batch_size, num_workers=num_workers, collate_fn=_keep_as_list
    )
    for batch in loader:
        good = [(i, x) for i, x, _ in batch if x is not None]
        for i, _, reason in batch:
            errors[i] = reason
        if not good:
            continue
        out = predictor.probabilities(torch.stack([x for _, x in good]))
        for (i, x), p in zip(good, out, strict=True):
            probs[i] = p
            if len(kept) < keep:
                kept[i] = x
    return probs, errors, kept


def predict(cfg: DictConfig) -> dict[str, Any]:
    check_config(cfg)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    predictor = Predictor(load_classifier(cfg.ckpt_path, map_location=device), device)
    files = find_inputs(cfg.inputs)
    probs, errors, kept = predict_files(predictor, files, cfg.batch_size, cfg.num_workers, cfg.grid_max)
    names = predictor.class_names

    rows, labelled, correct = [], 0, 0
    for path, p, error in zip(files, probs, errors, strict=True):
        true = label_from_path(path, names)
        row = {"path": str(path), "predicted": "", "probability": "", "top_k": "", "true": "", "correct": ""}
        if true is not None:
            row["true"] = names[true]
        if p is not None:
            top = predictor.top_k(p, cfg.top_k)
            row.update(predicted=top[0][0], probability=f"{top[0][1]:.6f}")
            row["top_k"] = " ".join(f"{c}:{v:.4f}" for c, v in top)
            if true is not None:
                labelled += 1
                correct += int(p.argmax()) == true
                row["correct"] = str(int(p.argmax()) == true).lower()
        rows.append({**row, "error": error})
    with (out / "predictions.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    images, titles, colors = [], [], []
    for i, x in sorted(kept.items()):
        top_name, top_p = predictor.top_k(probs[i], 1)[0]
        title = f"Pred: {top_name} ({top_p:.2f})"
        color = "black"
        if rows[i]["true"]:
            title += f"\nTrue: {rows[i]['true']}"
            color = "darkgreen" if rows[i]["correct"] == "true" else "firebrick"
        images.append(plots.denormalize(x, predictor.mean, predictor.std))
        titles.append(title)
        colors.append(color)
    suptitle = f"{correct}/{labelled} correct ({correct / labelled:.1%})" if labelled else ""
    if images:
        fig = plots.image_grid(images, titles, colors)
        if suptitle:
            fig.suptitle(suptitle, y=1.02)
        plots.save(fig, out / "predictions.png")

    bad = [(f, e) for f, e in zip(files, errors, strict=True) if e]
    for path, reason in bad[:10]:
        print(f"unreadable: {path}: {reason}")
    if len(bad) > 10:
        print(f"... and {len(bad) - 10} more unreadable files (see the error column of predictions.csv)")
    print(f"predicted {len(files) - len(bad)} of {len(files)} files ({len(bad)} unreadable)")
    if labelled:
        print(f"correct: {correct}/{labelled} = {correct / labelled:.2%} (labels from folder or file names)")
    print(f"wrote {out / 'predictions.csv'}" + (f" and {out / 'predictions.png'}" if images else ""))
    return {"files": len(files), "unreadable": len(bad), "labelled": labelled, "correct": correct}


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
