"""Reading a data set from the uint8 memmap cache versus decoding JPEG shards (WebDataset's layout).

The question of issue 20 for data larger than local disk: do streamed shards (litdata, WebDataset) serve
many nodes better than the memory-mapped cache? This measures, in one process and one thread, on the
scale study's generated 96x128 JPEGs (benchmarks/scale_study.py): the bytes each layout stores per
image, the time to build it, and the time to read one image back as a uint8 tensor, the cache's rows in
a random order, the shards in order (a shard is read whole, then its images decoded, as webdataset
does). Shards are plain tar files of ``<key>.jpg`` + ``<key>.cls`` members written with ``tarfile``:
what WebDataset reads, without adding the library. The page cache is warm for both (the files were
just written): this compares the CPU each needs, not the disk.

    python benchmarks/shards_vs_cache.py /tmp/scale/n20000 --images 5000
"""

from __future__ import annotations

import argparse
import io
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alexnet_lightning.data.cache import build_cache
from alexnet_lightning.data.decode import decode

SHARD = 1000
"""Images per shard (WebDataset suggests shards of 100 MB-1 GB; these are small images)."""


def _shards(paths: list[Path], out: Path) -> list[Path]:
    shards = []
    for start in range(0, len(paths), SHARD):
        shard = out / f"shard-{start // SHARD:05d}.tar"
        with tarfile.open(shard, "w") as tar:
            for path in paths[start : start + SHARD]:
                key = f"{path.parent.name}_{path.stem}"
                tar.add(path, arcname=f"{key}.jpg")
                label = path.parent.name.encode()
                info = tarfile.TarInfo(f"{key}.cls")
                info.size = len(label)
                tar.addfile(info, io.BytesIO(label))
        shards.append(shard)
    return shards


def _read_shards(shards: list[Path], size: int) -> int:
    count = 0
    for shard in shards:
        with tarfile.open(fileobj=io.BytesIO(shard.read_bytes())) as tar:  # one sequential read per shard
            for member in tar:
                if member.name.endswith(".jpg"):
                    image = decode(tar.extractfile(member).read(), min_size=size)
                    count += image.shape[0] > 0
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=128, help="the cache's side: twice the 64 px training size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = sorted(args.folder.rglob("*.jpg"))[: args.images]
    n = len(paths)
    jpeg_bytes = sum(p.stat().st_size for p in paths)
    work = Path(tempfile.mkdtemp(prefix="shards_vs_cache."))
    try:
        started = time.perf_counter()
        cache = build_cache(paths, work / "cache", size=args.size, workers=1, progress=False)
        build_cache_s = time.perf_counter() - started
        started = time.perf_counter()
        shards = _shards(paths, work)
        build_shards_s = time.perf_counter() - started
        images = cache.images()
        started = time.perf_counter()
        for row in np.random.default_rng(0).permutation(n):
            torch.from_numpy(np.array(images[row]))
        read_cache_s = time.perf_counter() - started
        started = time.perf_counter()
        assert _read_shards(shards, args.size) == n
        read_shards_s = time.perf_counter() - started
        shard_bytes = sum(s.stat().st_size for s in shards)
        print(f"{n} images of {args.folder}, one process, one thread")
        print("| layout | bytes an image | build, ms an image | read to a uint8 tensor, ms an image |")
        print("|---|---:|---:|---:|")
        print(f"| JPEG files | {jpeg_bytes / n:,.0f} | | |")
        print(
            f"| memmap cache, {args.size} px | {cache.path.stat().st_size / n:,.0f} | {1000 * build_cache_s / n:.2f} "
            f"| {1000 * read_cache_s / n:.3f} (random order) |"
        )
        print(
            f"| tar shards of {SHARD} JPEGs | {shard_bytes / n:,.0f} | {1000 * build_shards_s / n:.2f} "
            f"| {1000 * read_shards_s / n:.3f} (in order, decoded at >= {args.size} px) |"
        )
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
