"""Organize a flat Kaggle Dogs vs Cats folder into DST/<split>/<class>/ without ever losing a file.

python -m alexnet_lightning.prepare catsdogs SRC DST --mode copy|symlink|move [--val 0.1 --test 0.1] [--dry-run]

Training does not need this (``dataset=catsdogs`` reads the flat folder); it is for tools that
want class folders. The plan is computed over SRC plus what an earlier run already placed in
DST, with the same hash-based split as training, so a re-run (after an interruption, too)
makes the same plan and only finishes it. Files are written under a temporary name and renamed,
an existing different file is never overwritten, and the file count is checked at the end.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
from collections import Counter
from pathlib import Path

from alexnet_lightning.data.sources import catsdogs
from alexnet_lightning.data.split import stratified_split
from alexnet_lightning.errors import UserError, exit_on_user_error

MODES = ("copy", "symlink", "move")
SPLITS = ("train", "val", "test")


def _placed(dst: Path, classes: list[str]) -> dict[str, Path]:
    """Files an earlier run put into DST/<split>/<class>/, by name."""
    found: dict[str, Path] = {}
    for split in SPLITS:
        for cls in classes:
            folder = dst / split / cls
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if path.name in found:
                    raise UserError(f"{path.name} is in both {found[path.name].parent} and {folder}: remove one")
                if not path.name.endswith(".part"):
                    found[path.name] = path
    return found


def _same(a: Path, b: Path) -> bool:
    if b.is_symlink():
        return b.resolve() == a.resolve()
    return filecmp.cmp(a, b, shallow=False)


def _place(src: Path, target: Path, mode: str) -> None:
    """Put ``src`` at ``target`` atomically: the target name never holds a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(src.resolve(), target)
        return
    if mode == "move":
        try:
            os.rename(src, target)  # atomic within one file system
            return
        except OSError:
            pass  # another file system: copy, then remove the source below
    part = target.with_name(target.name + ".part")
    shutil.copy2(src, part)
    os.replace(part, target)
    if mode == "move":
        src.unlink()


def prepare_catsdogs(
    src: Path,
    dst: Path,
    mode: str,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
    seed: int = 0,
    dry_run: bool = False,
) -> Counter:
    """Copy, link or move SRC's cat.N.jpg / dog.N.jpg into DST/<split>/<class>/; return counts per action."""
    if mode not in MODES:
        raise UserError(f"--mode {mode!r} is unknown: use copy, symlink or move")
    if dst.resolve().is_relative_to(src.resolve()):
        raise UserError(f"DST {dst} must not be inside SRC {src}: choose a folder outside it")
    samples = catsdogs(str(src))
    classes = samples.classes
    if samples.skipped:
        print(f"left in SRC: {', '.join(f'{n} {why}' for why, n in sorted(samples.skipped.items()))}")
    placed = _placed(dst, classes) if dst.is_dir() else {}
    pending = {p.name: (p, label) for p, label in zip(samples.items, samples.labels, strict=True)}
    if len(pending) < len(samples.items):
        twice = sorted(n for n, k in Counter(p.name for p in samples.items).items() if k > 1)
        raise UserError(f"{len(twice)} names occur twice in {src}'s sub-folders (first: {twice[0]}): rename them")
    names = sorted(set(pending) | set(placed))
    if not names:
        raise UserError(f"no cat.N / dog.N images in {src} or {dst}: check SRC")
    labels = [pending[n][1] if n in pending else classes.index(placed[n].parent.name) for n in names]
    splits = stratified_split(labels, names, val_fraction, test_fraction, seed)
    where = {names[p]: (split, labels[p]) for split, positions in splits.items() for p in positions}

    plan: list[tuple[Path, Path, str]] = []  # (source, target, action); checked in full before any change
    for name in names:
        split, label = where[name]
        target = dst / split / classes[label] / name
        if name in placed and placed[name] != target:
            raise UserError(
                f"{placed[name]} was placed by a run with other fractions or seed (now: {target}); "
                "re-run with the same --val/--test/--seed or use a new DST"
            )
        if name not in pending:
            plan.append((target, target, "already there"))
        elif target.exists() or target.is_symlink():
            if mode == "move" and target.is_symlink():
                raise UserError(f"{target} is a link from a symlink run: move into a new DST, not over links")
            if not _same(pending[name][0], target):
                raise UserError(f"{target} exists and differs from {pending[name][0]}: not overwriting; remove one")
            plan.append((pending[name][0], target, "already there"))
        else:
            plan.append((pending[name][0], target, f"{mode} to {split}"))

    actions = Counter(action for _, _, action in plan)
    for source, target, action in [] if dry_run else plan:
        if action != "already there":
            _place(source, target, mode)
        elif mode == "move" and source != target:
            source.unlink()  # an interrupted move had copied it already: finish the move
    if not dry_run:
        after = _placed(dst, classes)  # the count after must equal the count before, name by name
        missing = sorted(set(names) - set(after))
        if missing:
            raise UserError(
                f"{len(names)} files before, {len(names) - len(missing)} after in {dst}; missing: {missing[:3]}: "
                "check SRC and DST before re-running"
            )
    return actions


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alexnet_lightning.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("layout", choices=["catsdogs"], help="the layout of SRC (Kaggle's flat cat.N.jpg / dog.N.jpg)")
    parser.add_argument("src", type=Path, help="the flat folder, e.g. ~/data/dogs-vs-cats/train")
    parser.add_argument("dst", type=Path, help="where DST/<split>/<class>/ is made")
    parser.add_argument("--mode", choices=MODES, default="copy", help="copy (default), symlink, or move the files")
    parser.add_argument("--val", type=float, default=0.0, help="fraction per class for DST/val (default 0)")
    parser.add_argument("--test", type=float, default=0.0, help="fraction per class for DST/test (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="the split seed (as training's seed)")
    parser.add_argument("--dry-run", action="store_true", help="print what would happen, change nothing")
    args = parser.parse_args(argv)
    if not args.src.expanduser().is_dir():
        raise UserError(f"SRC {args.src} is not a folder")
    actions = prepare_catsdogs(
        args.src.expanduser(), args.dst.expanduser(), args.mode, args.val, args.test, args.seed, args.dry_run
    )
    prefix = "would " if args.dry_run else ""
    print(", ".join(f"{prefix}{action}: {n}" for action, n in sorted(actions.items())) or "nothing to do")
    if not args.dry_run:
        made = [split for split in SPLITS if (args.dst.expanduser() / split).is_dir()]
        splits = made[0] if len(made) == 1 else "{" + ",".join(made) + "}"
        print(f"done: {sum(actions.values())} files in {args.dst}/{splits}/<class>/")


if __name__ == "__main__":
    main()
