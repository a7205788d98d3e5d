"""The scale study: time and peak memory of the data set-up from 2,000 to 200,000 images (issue 20).

Generated folders of 96x128 JPEGs in 10 class folders; the default training command on each, from an
empty cache (the first run of a folder: listing, file check, split, statistics, then one epoch of 2
batches, 2 validation and 2 test batches), under ``../shared/tools/pss_peak.sh`` (the peak of the summed
PSS of every process of the command), while this script samples the same sum with timestamps so that
each phase of the set-up gets its own peak. The phases end at the data module's log lines.

    python benchmarks/scale_study.py folders 2000 20000 200000        # /tmp/scale/n<N>/class_<k>/*.jpg
    nice -n 19 python benchmarks/scale_study.py run 2000 20000 200000 --label after --repeats 2
    python benchmarks/scale_study.py table                             # markdown rows of scale_study.csv

The largest folder is generated once; the smaller ones are hard links to its first files, so that
every folder is the same kind of data.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PSS_PEAK = REPO.parent / "shared" / "tools" / "pss_peak.sh"
RESULTS = Path(__file__).resolve().parent / "scale_study.csv"
CLASSES = 10
SHAPE = (96, 128)  # height, width
COLUMNS = [
    "label", "images", "repeat", "status", "wall_s", "peak_pss_mb", "sampled_peak_mb", "anon_peak_mb", "processes_max",
    "phases", "load_before", "load_after", "commit", "command",
]  # fmt: skip

# log lines that end a phase of the set-up (the data module's), in order; a phase a version does not log
# is merged into the next one that it does
PHASE_ENDS = [
    ("start-up", re.compile(r"Seed set to")),  # imports and config, until train() seeds the run
    ("list", re.compile(r"listed \d+ files")),
    ("check", re.compile(r"checked \d+ image files")),
    ("split", re.compile(r": \d+ classes, train \d+")),
    ("stats", re.compile(r"normalization \(dataset\)")),
    ("cache", re.compile(r"cached \d+ images")),  # data.pipeline=cache (auto's choice for image files)
]
STAMP = re.compile(r"^\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3})\]")


def _image(index: int) -> bytes:
    """A 96x128 JPEG of about 3 KB: a smooth colour field of the class's hue with noise, seeded by ``index``."""
    rng = np.random.default_rng(index)
    label = index % CLASSES
    field = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    field[..., label % 3] = 40 + 20 * label
    image = Image.fromarray(field).resize(SHAPE[::-1], Image.BILINEAR)
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, (*SHAPE, 3))
    out = Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
    from io import BytesIO

    buffer = BytesIO()
    out.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def _name(root: Path, index: int) -> Path:
    return root / f"class_{index % CLASSES}" / f"img_{index:07d}.jpg"


def _write(job: tuple[Path, int, int]) -> None:
    root, start, stop = job
    for i in range(start, stop):
        path = _name(root, i)
        if not path.exists():
            path.write_bytes(_image(i))


def folders(sizes: list[int], root: Path) -> None:
    """The largest folder is generated (in a pool of every core); the others link to its first files."""
    sizes = sorted(sizes)
    largest = root / f"n{sizes[-1]}"
    for k in range(CLASSES):
        (largest / f"class_{k}").mkdir(parents=True, exist_ok=True)
    chunk = 2000
    jobs = [(largest, s, min(s + chunk, sizes[-1])) for s in range(0, sizes[-1], chunk)]
    started = time.time()
    with Pool(os.cpu_count()) as pool:
        for done, _ in enumerate(pool.imap_unordered(_write, jobs), 1):
            print(f"\r{largest}: {min(done * chunk, sizes[-1])} of {sizes[-1]} images", end="", flush=True)
    print(f" ({time.time() - started:.0f} s)")
    for n in sizes[:-1]:
        folder = root / f"n{n}"
        for i in range(n):
            target = _name(folder, i)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(_name(largest, i), target)
        print(f"{folder}: {n} images (hard links)")
    mb = sum(p.stat().st_size for p in largest.rglob("*.jpg")) / 2**20
    print(f"{largest}: {mb:.0f} MB, {mb * 1024 / sizes[-1]:.1f} KB an image")


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # it ended meanwhile
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += _tree(int(child))
    return found


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and of its children that have ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _pss_kb(pid: int) -> tuple[int, int]:
    """PSS and its anonymous part (heap, shared memory), which, unlike the part of mapped files, does not
    depend on how many other processes on the machine map the same libraries (torch's are 300 MB)."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            found[name] = int(value.split()[0]) if name.startswith("Pss") else 0
    except (OSError, ValueError, IndexError):
        return 0, 0
    return found.get("Pss", 0), found.get("Pss_Anon", 0) + found.get("Pss_Shmem", 0)


class Sampler(threading.Thread):
    """(time, summed PSS in KB, processes, CPU seconds so far, summed anonymous PSS in KB) of a process tree
    every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.samples = pid, interval, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = _tree(self.pid)
            pss = [_pss_kb(pid) for pid in pids]
            cpu = sum(map(_cpu_s, pids))
            self.samples.append((time.time(), sum(p for p, _ in pss), len(pids), cpu, sum(a for _, a in pss)))
            time.sleep(self.interval)


def _phase_ends(log: Path) -> list[tuple[str, float]]:
    """(phase, end time) from the run's log, in order of the phases."""
    found: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        stamp = STAMP.match(line)
        for phase, pattern in PHASE_ENDS:
            if stamp and phase not in found and pattern.search(line):
                found[phase] = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return [(phase, found[phase]) for phase, _ in PHASE_ENDS if phase in found]


def _phases(ends: list[tuple[str, float]], samples: list[tuple], start: float, end: float) -> str:
    """``phase seconds/peak MB/peak anonymous MB/CPU seconds`` for each phase, from the end of the one before
    (phases a version does not log are merged into the next one it does); the last, train+test, is one
    epoch of 2 batches, validation, test and the end of the run."""
    found = dict(ends)
    parts, merged, previous = [], [], start
    for name, stop in [(name, found.get(name)) for name, _ in PHASE_ENDS] + [("train+test", end)]:
        merged.append(name)
        if stop is None:
            continue
        peak = max((kb for t, kb, *_ in samples if previous <= t <= stop), default=0) / 1024
        anon = max((a for t, *_, a in samples if previous <= t <= stop), default=0) / 1024
        cpu = _cpu_at(samples, stop) - _cpu_at(samples, previous)
        parts.append(f"{'+'.join(merged)} {stop - previous:.1f}s/{peak:.0f}MB/anon{anon:.0f}MB/cpu{cpu:.1f}s")
        merged, previous = [], stop
    return "; ".join(parts)


def _cpu_at(samples: list[tuple], when: float) -> float:
    """The tree's CPU seconds at the last sample before ``when``."""
    return max((cpu for t, _, _, cpu, _ in samples if t <= when), default=0.0)


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _commit() -> str:
    git = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(git, cwd=REPO, capture_output=True, text=True).stdout.strip()


def run(sizes: list[int], root: Path, label: str, repeats: int, extra: list[str]) -> None:
    """The default command on each folder, from an empty cache each time; one CSV row per run."""
    new = not RESULTS.exists()
    for n in sizes:
        for repeat in range(repeats):
            work = root / "runs" / f"{label}-n{n}-{repeat}"
            subprocess.run(["rm", "-rf", str(work)], check=True)  # our own run folder, from an earlier try
            work.mkdir(parents=True)
            overrides = [
                "dataset=imagefolder",
                f"data_dir={root / f'n{n}'}",
                "trainer.max_epochs=1",
                "+trainer.limit_train_batches=2",
                "+trainer.limit_val_batches=2",
                "+trainer.limit_test_batches=2",
                f"paths.cache_dir={work / 'cache'}",
                f"hydra.run.dir={work / 'run'}",
                *extra,
            ]
            command = [sys.executable, "-m", "alexnet_lightning.train", *overrides]
            load_before = _loadavg()
            start = time.time()
            process = subprocess.Popen(
                ["bash", str(PSS_PEAK), str(work / "output.log"), *command], cwd=REPO, stdout=subprocess.PIPE, text=True
            )
            sampler = Sampler(process.pid)
            sampler.start()
            out, _ = process.communicate()
            end = time.time()
            sampler.stop.set()
            sampler.join()
            peak_kb = int(out.split()[-1]) if out.split() else 0
            samples = sampler.samples
            with (work / "pss.csv").open("w") as f:  # the time series behind the row, beside the run
                f.writelines(f"{t - start:.2f},{kb},{n},{cpu:.2f},{anon}\n" for t, kb, n, cpu, anon in samples)
            row = {
                "label": label,
                "images": n,
                "repeat": repeat,
                "status": "ok" if process.returncode == 0 else f"exit {process.returncode}",
                "wall_s": f"{end - start:.1f}",
                "peak_pss_mb": f"{peak_kb / 1024:.0f}",
                "sampled_peak_mb": f"{max((kb for _, kb, *_ in samples), default=0) / 1024:.0f}",
                "anon_peak_mb": f"{max((a for *_, a in samples), default=0) / 1024:.0f}",
                "processes_max": max((p for _, _, p, *_ in samples), default=0) - 1,  # less pss_peak.sh's bash
                "phases": _phases(_phase_ends(work / "run" / "train.log"), samples, start, end)
                if (work / "run" / "train.log").exists()
                else "",
                "load_before": load_before,
                "load_after": _loadavg(),
                "commit": _commit(),
                "command": "python -m alexnet_lightning.train " + " ".join(overrides),
            }
            print(row, flush=True)
            with RESULTS.open("a", newline="") as f:
                writer = csv.DictWriter(f, COLUMNS)
                if new:
                    writer.writeheader()
                    new = False
                writer.writerow(row)
            subprocess.run(["rm", "-rf", str(work / "cache")], check=True)  # the image cache of a large folder


def table() -> None:
    """One markdown row per run."""
    print("| label | images | run | wall | peak PSS | phases: seconds / peak summed PSS / CPU seconds | load |")
    print("|---|---:|---:|---:|---:|---|---|")
    with RESULTS.open() as f:
        for r in csv.DictReader(f):
            print(
                f"| {r['label']} | {int(r['images']):,} | {r['repeat']} | {r['wall_s']} s | {r['peak_pss_mb']} MB "
                f"| {r['phases']} | {r['load_before']} / {r['load_after']} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("folders")
    f.add_argument("sizes", type=int, nargs="+")
    f.add_argument("--root", type=Path, default=Path("/tmp/scale"))
    r = sub.add_parser("run")
    r.add_argument("sizes", type=int, nargs="+")
    r.add_argument("--root", type=Path, default=Path("/tmp/scale"))
    r.add_argument("--label", default="run")
    r.add_argument("--repeats", type=int, default=1)
    r.add_argument("--extra", nargs="*", default=[], help="more overrides, e.g. data.num_workers=4")
    sub.add_parser("table")
    args = parser.parse_args()
    if args.command == "folders":
        folders(args.sizes, args.root)
    elif args.command == "run":
        run(args.sizes, args.root, args.label, args.repeats, args.extra)
    else:
        table()


if __name__ == "__main__":
    main()
