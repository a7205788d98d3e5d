"""A few digits as PNG files in class folders, to try predict and serve on after ``make train``.

python -m alexnet_lightning.samples [OUT] [--per-class 3]      (OUT: outputs/samples/digits)

The default data set, scikit-learn's digits, lives in memory: a first run leaves no image files.
These are images of the test split that training holds out (dataset=digits with the default seed),
written as OUT/<class>/<n>.png, so predict reads each one's true class from its folder. A rerun
writes only what is missing; files already there, and any other file in OUT, are left as they are.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import hydra
from PIL import Image

from alexnet_lightning.atomic import atomic_path
from alexnet_lightning.config import compose_config
from alexnet_lightning.errors import UserError, exit_on_user_error

DEFAULT_OUT = Path("outputs/samples/digits")


def write_samples(out: Path, per_class: int = 3) -> Counter:
    """Write ``per_class`` test-split digits per class into ``out/<class>/<n>.png``; count written / already there."""
    cfg = compose_config("config", out, ["dataset=digits"])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.load_samples()  # the split training makes; no statistics, no loaders
    taken: Counter = Counter()
    done: Counter = Counter()
    for item, label in zip(*datamodule.split_items("test"), strict=True):
        name = datamodule.classes[label]
        if taken[name] == per_class:
            continue
        target = out / name / f"{taken[name]}.png"
        taken[name] += 1
        if target.exists():
            done["already there"] += 1
            continue
        image = datamodule.samples.load(item)  # uint8, 1 x 8 x 8: the pixels training reads
        with atomic_path(target) as partial:
            Image.fromarray(image[0].numpy(), mode="L").save(partial, format="PNG")
        done["written"] += 1
    return done


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alexnet_lightning.samples", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=DEFAULT_OUT, help=f"the folder (default {DEFAULT_OUT})")
    parser.add_argument("--per-class", type=int, default=3, help="images per class (default 3)")
    args = parser.parse_args(argv)
    if args.per_class < 1:
        raise UserError(f"--per-class {args.per_class} is invalid: it must be a whole number >= 1")
    done = write_samples(args.out.expanduser(), args.per_class)
    print(
        f"sample digits: {sum(done.values())} PNG files in {args.out}/<class>/ "
        f"({done['written']} written, {done['already there']} already there); try:\n"
        f"  python -m alexnet_lightning.predict ckpt_path=<run directory>/checkpoints/best.ckpt inputs={args.out}"
    )


if __name__ == "__main__":
    main()
