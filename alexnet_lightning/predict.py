"""Predict the classes of images: one file, a folder (recursive) or a glob -> CSV and a labelled grid.

python -m alexnet_lightning.predict ckpt_path=outputs/train/DATE/TIME/checkpoints/best.ckpt inputs=~/photos

When folder names (``cats/x.jpg``) or Kaggle file names (``cat.12.jpg``) name a class, the true
label is shown too, with the share of correct predictions. Unreadable files are listed, not fatal.
``explain=true`` adds predictions_gradcam.png: the same grid with the Grad-CAM map of each predicted class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from alexnet_lightning import plots, sizing
from alexnet_lightning.atomic import write_csv
from alexnet_lightning.attribution import gradcam_grid
from alexnet_lightning.command import hydra_command
from alexnet_lightning.config import check_config
from alexnet_lightning.console import shown_path
from alexnet_lightning.data.decode import ImageSource
from alexnet_lightning.data.sources import label_from_name
from alexnet_lightning.inference import Predictor, find_inputs, predict_files

COLUMNS = ("path", "predicted", "probability", "top_k", "true", "correct", "error")  # of predictions.csv


def prediction_rows(
    predictor: Predictor, inputs: Sequence[ImageSource], probs: list[torch.Tensor | None], errors: list[str], k: int
) -> list[dict[str, Any]]:
    """One row per input (COLUMNS), None where a value is unknown: what predictions.csv and the Python API hold.

    ``path`` is None for an image given in memory; ``top_k`` lists (class, probability) pairs, most likely
    first; ``true`` and ``correct`` need a folder or file name that names a class (``cats/1.jpg``, ``cat.1.jpg``).
    """
    names = predictor.class_names
    rows = []
    for source, p, error in zip(inputs, probs, errors, strict=True):
        path = Path(source) if isinstance(source, (str, Path)) else None
        true = label_from_name(path, names) if path is not None else None
        top = predictor.top_k(p, k) if p is not None else []
        rows.append(
            {
                "path": str(path) if path is not None else None,
                "predicted": top[0][0] if top else None,
                "probability": top[0][1] if top else None,
                "top_k": top,
                "true": names[true] if true is not None else None,
                "correct": int(p.argmax()) == true if p is not None and true is not None else None,
                "error": error,
            }
        )
    return rows


def _csv_cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "probability":
        return f"{value:.6f}"
    if column == "top_k":
        return " ".join(f"{c}:{v:.4f}" for c, v in value)
    if column == "correct":
        return str(value).lower()
    return str(value)


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Predict every input file; write predictions.csv, predictions.png (and predictions_gradcam.png); return counts."""
    check_config(cfg)
    out = Path(cfg.paths.output_dir)
    predictor = Predictor.load(cfg.ckpt_path, cfg.device)
    files = find_inputs(cfg.inputs)
    workers = sizing.workers().value if sizing.is_auto(cfg.num_workers) else cfg.num_workers
    probs, errors, kept = predict_files(predictor, files, cfg.batch_size, workers, cfg.grid_max)
    rows = prediction_rows(predictor, files, probs, errors, cfg.top_k)
    write_csv(out / "predictions.csv", list(COLUMNS), [[_csv_cell(c, r[c]) for c in COLUMNS] for r in rows])
    labelled = sum(r["correct"] is not None for r in rows)
    correct = sum(r["correct"] is True for r in rows)

    kept_probs = {i: p for i, p in enumerate(probs) if i in kept and p is not None}  # kept inputs were read
    images, titles, colors = [], [], []
    for i, x in sorted(kept.items()):
        top_name, top_p = predictor.top_k(kept_probs[i], 1)[0]
        title = f"Pred: {top_name} ({top_p:.2f})"
        color = "black"
        if rows[i]["true"] is not None:
            title += f"\nTrue: {rows[i]['true']}"
            color = "darkgreen" if rows[i]["correct"] else "firebrick"
        images.append(plots.denormalize(x, predictor.mean, predictor.std))
        titles.append(title)
        colors.append(color)
    suptitle = f"{correct}/{labelled} correct ({correct / labelled:.1%})" if labelled else ""
    if images:
        fig = plots.image_grid(images, titles, colors)
        if suptitle:
            fig.suptitle(suptitle, y=1.02)
        plots.save(fig, out / "predictions.png")
    if images and cfg.explain:
        x = torch.stack([kept[i] for i in sorted(kept)])
        predicted = torch.stack([kept_probs[i] for i in sorted(kept)]).argmax(1)
        plots.save(gradcam_grid(predictor, x, predicted, titles, colors), out / "predictions_gradcam.png")

    bad = [(f, e) for f, e in zip(files, errors, strict=True) if e]
    for path, reason in bad[:10]:
        print(f"unreadable: {path}: {reason}")
    if len(bad) > 10:
        print(f"... and {len(bad) - 10} more unreadable files (see the error column of predictions.csv)")
    print(f"predicted {len(files) - len(bad)} of {len(files)} files ({len(bad)} unreadable)")
    if labelled:
        print(f"correct: {correct}/{labelled} = {correct / labelled:.2%} (labels from folder or file names)")
    written = ["predictions.csv", *(["predictions.png"] if images else [])]
    written += ["predictions_gradcam.png"] if images and cfg.explain else []
    print("wrote " + " and ".join(shown_path(out / name) for name in written))
    return {"files": len(files), "unreadable": len(bad), "labelled": labelled, "correct": correct}


main = hydra_command("predict", predict)


if __name__ == "__main__":
    main()
