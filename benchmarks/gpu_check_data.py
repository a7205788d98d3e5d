"""Prepare what the one-shot GPU check (benchmarks/gpu_check.py) carries to the GPU machine: 64 MiB at most.

python benchmarks/gpu_check_data.py              # gpu_data/ from ../shared/data, the wheels in .whl/, the stamp
python benchmarks/gpu_check_data.py --stamp-only # before each device call: the commit into gpu_data/commit.json

It writes two ignored folders at the repository root:

    gpu_data/
      dogs-vs-cats/train/    cat.0-999.jpg + dog.0-999.jpg (the issue's 2,000), re-encoded: short side at
                             most 256 px (the recipes train at 224/227 px from a 256 px cache), quality 85
      dogs-vs-cats/holdout/  the 400 labelled holdout photos (cat/dog.3000-3199), re-encoded alike
      MNIST/raw/             the four original IDX .gz files, copied (read in place by dataset=mnist)
      commit.json            the commit of the checkout that prepared it (the GPU machine gets no .git)
    .whl/                    hydra-core, omegaconf and antlr4-python3-runtime wheels, the versions installed
                             here; the GPU machine has torch, lightning, pandas, matplotlib, rich... but not these

The wheels' commands (what ``--wheels`` runs; antlr4 4.9.3 is a source package, so it is built here):

    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1
    python -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3

Re-encoding at quality 90 would make the data about 64 MB, too much beside the checkout; at 85 the data
is about 54 MB. The totals and the estimate of what a device call carries are printed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20
CARRY_LIMIT = 64 * MIB  # what one device call may carry: checkout + carried folders
MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
WHEELS = {"hydra-core": "download", "omegaconf": "download", "antlr4-python3-runtime": "build"}


def reencode(job: tuple[str, str, int, int]) -> int:
    """One JPEG, shrunk to ``short_side`` (never enlarged) and saved at ``quality``; returns its size."""
    source, dest, short_side, quality = job
    with Image.open(source) as image:
        image = image.convert("RGB")
        scale = short_side / min(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        image.save(dest, "JPEG", quality=quality, optimize=True)
    return Path(dest).stat().st_size


def photos(source: Path, dest: Path, names: list[str], short_side: int, quality: int, workers: int) -> None:
    """Re-encode the photos not yet in ``dest`` (a folder prepared with other settings is redone)."""
    settings = {"short_side": short_side, "quality": quality}
    marker = dest / ".settings.json"
    if dest.is_dir() and (not marker.is_file() or json.loads(marker.read_text()) != settings):
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not (dest / n).is_file()]
    absent = [n for n in missing if not (source / n).is_file()]
    if absent:
        sys.exit(f"error: {len(absent)} photos missing in {source}, e.g. {absent[0]}")
    jobs = [(str(source / n), str(dest / n), short_side, quality) for n in missing]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(reencode, jobs, chunksize=32))
    marker.write_text(json.dumps(settings))
    print(f"{dest}: {len(names)} photos ({len(missing)} re-encoded now), {folder_bytes(dest) / 1e6:.1f} MB")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def checkout_bytes() -> int:
    """What git tracks (the part of a device call's tree that is not carried)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())


def stamp(dest: Path) -> dict:
    """``commit.json``: the commit of this checkout and the files changed since (gpu_check.py reports it)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    record = {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "changed": git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "commit.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{dest / 'commit.json'}: commit {record['commit'][:7]}, {len(record['changed'])} changed files")
    return record


def wheels(folder: Path) -> None:
    """The packages the GPU machine lacks, in the versions installed here, as wheels in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, how in WHEELS.items():
        version = metadata.version(name)
        stem = name.replace("-", "_")
        if any(folder.glob(f"{stem}-{version}-*.whl")):
            continue
        pip = [sys.executable, "-m", "pip"]
        if how == "download":
            platform = ["--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64"]
            command = [*pip, "download", "--no-deps", "--only-binary=:all:", *platform, "-d", str(folder)]
        else:  # a source distribution only: build its (pure Python) wheel here
            command = [*pip, "wheel", "--no-deps", "-w", str(folder)]
        subprocess.run([*command, f"{name}=={version}"], check=True)
    for wheel in sorted(folder.glob("*.whl")):
        print(f"{wheel}: {wheel.stat().st_size / 1e3:.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared/data", help="../shared/data")
    parser.add_argument("--dest", type=Path, default=REPO / "gpu_data")
    parser.add_argument("--wheel-dir", type=Path, default=REPO / ".whl")
    parser.add_argument("--per-class", type=int, default=1000, help="cat.0..N-1 and dog.0..N-1")
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--max-mb", type=float, default=58.0, help="fail when the data folder is larger (MB)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-wheels", action="store_true")
    parser.add_argument("--stamp-only", action="store_true", help="only write gpu_data/commit.json")
    args = parser.parse_args()
    dest = args.dest.resolve()
    if not args.stamp_only:
        kaggle = args.source / "dogs-vs-cats"
        train = [f"{c}.{i}.jpg" for c in ("cat", "dog") for i in range(args.per_class)]
        holdout = sorted(p.name for p in (kaggle / "holdout").glob("*.jpg"))
        if not holdout:
            sys.exit(f"error: no photos in {kaggle / 'holdout'}")
        for name, names in (("train", train), ("holdout", holdout)):
            photos(kaggle / name, dest / "dogs-vs-cats" / name, names, args.short_side, args.quality, args.workers)
        raw = dest / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name in MNIST_FILES:
            if not (raw / name).is_file():
                shutil.copyfile(args.source / "MNIST" / "raw" / name, raw / name)
        print(f"{raw}: {folder_bytes(raw) / 1e6:.1f} MB")
        if not args.no_wheels:
            wheels(args.wheel_dir)
    stamp(dest)
    data = folder_bytes(dest)
    wheel_bytes = folder_bytes(args.wheel_dir) if args.wheel_dir.is_dir() else 0
    checkout = checkout_bytes()
    total = data + wheel_bytes + checkout
    print(
        f"data {data / 1e6:.1f} MB ({data / MIB:.1f} MiB), wheels {wheel_bytes / 1e6:.2f} MB, "
        f"checkout {checkout / 1e6:.2f} MB: a device call carries {total / MIB:.1f} MiB of its 64 MiB "
        "(plus any untracked, not ignored files)"
    )
    if data > args.max_mb * 1e6 or total > CARRY_LIMIT:
        sys.exit(f"error: too large: lower --quality or --short-side (data limit {args.max_mb} MB)")


if __name__ == "__main__":
    main()
