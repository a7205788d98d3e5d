r"""One-shot GPU check (issue 17, point 5): the throughput table, MNIST's time to 0.993, the two dogs-vs-cats recipes.

In at most 8 minutes on one H100/H200 with 16 CPU cores, from gpu_data/ (56 MB, made by
benchmarks/gpu_check_data.py), it writes ONE JSON file (``--out``: a file, or a folder that gets
gpu_check.json) and beside it gpu_check.md, the Markdown rows for benchmarks/RESULTS.md (each with the
commit, the device, torch and the command), and gpu_check.log, the parts' output.

Parts, each in a child process with a time budget (printed; a part past it is stopped, what it had
measured is kept, and the next part starts):

- environment: versions, the device, a first CUDA operation;
- throughput: throughput.py's rows on the GPU (model limit, seed-style PIL loop, template pipeline=stream,
  pipeline=cache, the plain loop over the cache, nvJPEG decode, the data paths alone) at batch 256, 224 px,
  bf16 autocast + channels_last; the model limit also in fp32 and in bf16 without channels_last; and
  row 6, "default": the data module as ``dataset=catsdogs`` builds it with ``data.pipeline=auto`` (and the
  other auto settings), through the same Lightning loop;
- mnist: ``experiment=mnist trainer=gpu trainer.precision=bf16-mixed`` on the four .gz files; after each
  validation a callback (gpu_check_parts.EpochLog) runs the official 10,000-image test split and stops
  the fit at 0.993 test accuracy (the recipe's 10 epochs and the budget are the caps);
- catsdogs, catsdogs_best: ``experiment=catsdogs`` (the seed-002 recipe, its 30 epochs) and
  ``experiment=catsdogs_best`` (its 60 epochs capped to what fits its budget at the seed-002 run's
  seconds an epoch: its one-cycle schedule is compressed, not cut) on cat.0-999 + dog.0-999,
  ``data.options.test_dir=`` the 400-photo holdout, ``trainer=gpu``; each also gets
  ``+trainer.max_time=`` its budget less a margin, so a slow machine ends the fit early (the JSON
  says which cap stopped it) and still tests the best checkpoint.

Training runs call ``train(cfg)`` on the config that ``python -m alexnet_lightning.train OVERRIDES``
composes (the command in the rows), from a cold image cache (``XDG_CACHE_HOME`` in the work folder).

``--tiny``: the same code on the CPU in under a minute: generated data (tests/fixtures.py) in the work
folder, 1-2 steps per throughput row at 64 px, one epoch of 2 batches per recipe, ``trainer=cpu``.

Device command (the device tool's ``run``; carry [".whl", "gpu_data"], timeout_s 600; prepare both
here first with ``python benchmarks/gpu_check_data.py``, which also stamps the commit):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site || exit; \
        PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --data gpu_data --out $OUT

(``bash benchmarks/gpu_check.sh`` runs the same.) The wheels (0.39 MB) are the only packages the template
imports that the machine lacks; it has the rest (torch, torchvision, lightning, torchmetrics, tensorboard,
pandas, matplotlib, rich, scikit-learn). gpu_check_data.py fetches them into .whl/ (ignored) with

    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1
    python -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3

What travels: the checkout (1.1 MB), gpu_data/ (55.8 MB), .whl/ (0.39 MB): 54.7 MiB of the 64 MiB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
TARGET = 0.993  # MNIST test accuracy
# part: (planned seconds on the GPU, the least worth starting). The environment part includes the
# start of the process server (torch, Lightning and the template imported once, about 10 s).
PLAN: dict[str, tuple[float, float]] = {
    "environment": (60, 20),
    "throughput": (120, 30),
    "mnist": (100, 40),
    "catsdogs": (80, 40),
    "catsdogs_best": (100, 40),
}
TINY_PLAN: dict[str, tuple[float, float]] = {name: (120, 10) for name in PLAN}
RESERVE_S = 15  # for writing the results after the last part
TRAIN_MARGIN_S = 30  # a training part's budget less its fit's max_time: data set-up before, the test after
THROUGHPUT_ROWS = (
    "limit,limit_fp32,limit_bf16,seed,stream,cache,plain,nvjpeg,default,default_plain,data_seed,data_stream,data_cache"
)
QUIET = ["callbacks.progress_bar=null", "+trainer.enable_progress_bar=false"]  # no progress bars in the logs
RECIPES = {  # part: (experiment, what the rows call it)
    "mnist": ("mnist", f"MNIST, time to {TARGET} test accuracy (experiment=mnist, {{precision}})"),
    "catsdogs": ("catsdogs", "dogs-vs-cats 2,000, seed-002 recipe (experiment=catsdogs)"),
    "catsdogs_best": ("catsdogs_best", "dogs-vs-cats 2,000, best recipe (experiment=catsdogs_best)"),
}


def _child(name: str, spec: dict[str, Any], result_path: str, log_path: str) -> None:
    """A part's process: gpu_check_parts (torch, Lightning, the template) is already imported by the server."""
    import gpu_check_parts

    gpu_check_parts.run_part(name, spec, result_path, log_path)


def commit_of(data: Path) -> dict[str, Any]:
    """The checkout's commit: from git where there is a .git, else gpu_data/commit.json (the GPU machine's case)."""
    try:
        git = ["git", "-C", str(REPO)]
        sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        return {"commit": sha, "source": "git", "changed": changed}
    except (OSError, subprocess.CalledProcessError):
        pass
    stamp = data / "commit.json"
    if stamp.is_file():
        record = json.loads(stamp.read_text())
        return {
            "commit": record["commit"],
            "source": f"{stamp} (written {record.get('written')} by gpu_check_data.py)",
            "changed": record.get("changed", []),
        }
    return {"commit": "unknown", "source": "no .git and no commit.json", "changed": []}


def tiny_data(root: Path) -> Path:
    """gpu_data's layout with generated images: 12 + 12 photos, a 4 + 4 holdout, a fake MNIST (64 + 32)."""
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures import class_image, make_catsdogs_folder, make_fake_mnist

    make_catsdogs_folder(root / "dogs-vs-cats" / "train", n_per_class=12, size=(72, 64))
    holdout = root / "dogs-vs-cats" / "holdout"
    holdout.mkdir(parents=True)
    for label, name in enumerate(("cat", "dog")):
        for i in range(100, 104):
            class_image(label, i, (72, 64)).save(holdout / f"{name}.{i}.jpg", quality=90)
    make_fake_mnist(root, n_train=64, n_test=32, compressed=True)
    return root


def photo_settings(data: Path) -> dict[str, Any] | None:
    """How gpu_check_data.py re-encoded the photos (short side, JPEG quality), where it did."""
    marker = data / "dogs-vs-cats" / "train" / ".settings.json"
    return json.loads(marker.read_text()) if marker.is_file() else None


def max_time(seconds: float) -> str:
    """Lightning's ``max_time`` as DD:HH:MM:SS."""
    s = max(10, int(seconds))
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def specs(args: argparse.Namespace, data: Path, work: Path) -> dict[str, dict[str, Any]]:
    """What each part runs; a training part's ``+trainer.max_time`` is added once its budget is known."""
    tiny = args.tiny
    kaggle = data / "dogs-vs-cats"
    throughput_args = {
        "data_dir": str(kaggle / "train"),
        "per_class": 12 if tiny else 1000,  # 12: the template rows' 5 % validation split gets one a class
        "batch_size": 4 if tiny else 256,
        "image_size": 64 if tiny else 224,
        "cache_size": 64 if tiny else 256,
        "augment": "moderate",
        "warmup": 0 if tiny else 10,
        "steps": 1 if tiny else args.steps,
        "repeats": 1 if tiny else 3,
        "workers": 1 if tiny else os.cpu_count(),
        "device": "cpu" if tiny else "cuda",
        "seed": 0,
    }
    trainer = ["trainer=cpu"] if tiny else ["trainer=gpu"]
    tiny_model = ["data.image_size=72", "model.head=gap"]  # the 11x11/4 stem (from 67 px), no 4096-wide layers
    scale = []
    if tiny:  # one epoch of two batches, no loader processes: seconds on a CPU
        scale = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1"]
        scale += ["+trainer.limit_test_batches=1", "data.num_workers=0", "data.batch_size=8"]
    epochs = {"mnist": args.mnist_epochs, "catsdogs": args.catsdogs_epochs, "catsdogs_best": args.best_epochs}
    result: dict[str, dict[str, Any]] = {
        "environment": {"kind": "environment", "require_cuda": not tiny},
        "throughput": {
            "kind": "throughput",
            "args": throughput_args,
            "rows": args.rows.split(","),
            "min_row_s": 0 if tiny else 8,
        },
    }
    for part, (experiment, _) in RECIPES.items():
        if part == "mnist":
            recipe = [f"experiment={experiment}", f"data_dir={data}", *trainer]
            extra = [] if tiny else ["trainer.precision=bf16-mixed"]  # bf16 convolutions crawl on a CPU
        else:
            recipe = [
                f"experiment={experiment}",
                f"data_dir={kaggle / 'train'}",
                f"data.options.test_dir={kaggle / 'holdout'}",
                *trainer,
            ]
            extra = []
        if epochs[part] and not tiny:
            extra.append(f"trainer.max_epochs={epochs[part]}")
        result[part] = {
            "kind": "train",
            "recipe_overrides": recipe,
            "overrides": [*recipe, *extra, *QUIET, *scale, *(tiny_model if tiny and part != "mnist" else [])],
            "target": TARGET if part == "mnist" else None,
            "test_each_epoch": part == "mnist",
            "env": {"XDG_CACHE_HOME": str(work / part / "cache")},  # a cold image cache, as a first run has
        }
    for part, spec in result.items():
        spec["work"] = str(work / part)
    return result


def part_budget(plan: dict[str, tuple[float, float]], name: str, left: float) -> float:
    """A part's seconds: its plan plus what earlier parts left over (at most 1.5 x its plan), keeping the
    later parts' plans; when earlier parts ran long, the later parts' least instead."""
    names = list(plan)
    later = names[names.index(name) + 1 :]
    planned, least = plan[name]
    budget = min(1.5 * planned, left - sum(plan[n][0] for n in later))
    if budget < least:
        budget = min(planned, left - sum(plan[n][1] for n in later))
    return budget


def best_epochs(seed_epochs: list[dict[str, Any]], fit_s: float) -> tuple[int, str]:
    """catsdogs_best's epochs (and why): what fits ``fit_s`` at the seed-002 run's seconds an epoch, 10 to 60.

    Fewer epochs compress its one-cycle schedule; max_time would cut it off at a high learning rate."""
    if not seed_epochs:
        return 30, "the seed-002 run's epoch time is unknown: 30 of the recipe's 60"
    per_epoch = seed_epochs[0]["train_s"]
    if len(seed_epochs) > 1:  # after the first epoch (cuDNN's autotuning, the first checkpoints)
        per_epoch = (seed_epochs[-1]["train_s"] - seed_epochs[0]["train_s"]) / (len(seed_epochs) - 1)
    epochs = int(max(10, min(60, 0.85 * fit_s / max(per_epoch, 1e-3))))
    return epochs, f"85 % of {fit_s:.0f} s of fit at {per_epoch:.2f} s an epoch (the seed-002 run's), within 10-60"


class Check:
    """Runs the parts in turn within the total budget and keeps the JSON and Markdown up to date."""

    def __init__(self, args: argparse.Namespace, out: Path, work: Path, data: Path) -> None:
        self.args, self.out, self.work, self.data = args, out, work, data
        self.start = time.time()
        self.deadline = self.start + args.budget - RESERVE_S
        self.plan = {k: v for k, v in (TINY_PLAN if args.tiny else PLAN).items() if k in args.parts}
        self.context = multiprocessing.get_context(args.start)
        if args.start == "forkserver":
            self.context.set_forkserver_preload(["gpu_check_parts"])
        commit = commit_of(data)
        self.report: dict[str, Any] = {
            "schema": "gpu_check/1",
            "tiny": args.tiny,
            "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/gpu_check.py", *sys.argv[1:]]),
            "commit": commit["commit"],
            "commit_source": commit["source"],
            "changed_files": commit["changed"],
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "budget_s": args.budget,
            "data": str(data),
            "data_settings": photo_settings(data),
            "plan_s": {k: v[0] for k, v in self.plan.items()},
            "parts": {},
        }

    def run(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        planned, least = self.plan[name]
        left = self.deadline - time.time()
        budget = part_budget(self.plan, name, left)
        if budget < least:
            print(f"== {name}: skipped, {budget:.0f} s of budget for it (it needs {least:.0f} s)", flush=True)
            return {"status": "skipped", "error": f"no time left: {budget:.0f} s < {least:.0f} s", "result": {}}
        spec = dict(spec, deadline=time.time() + budget)
        if spec["kind"] == "train":
            fit_s = budget - (0 if self.args.tiny else TRAIN_MARGIN_S)
            spec["overrides"] = [*spec["overrides"], f"+trainer.max_time={max_time(fit_s)}"]
            if name == "catsdogs_best" and not self.args.tiny and self.args.best_epochs is None:
                seed_epochs = self.report["parts"].get("catsdogs", {}).get("result", {}).get("epochs", [])
                epochs, spec["epochs_why"] = best_epochs(seed_epochs, fit_s)
                spec["overrides"].append(f"trainer.max_epochs={epochs}")
        print(f"== {name}: budget {budget:.0f} s (planned {planned:.0f}; {left:.0f} s left in all)", flush=True)
        Path(spec["work"]).mkdir(parents=True, exist_ok=True)
        result_path, log_path = self.work / f"{name}.json", self.work / f"{name}.log"
        start = time.time()
        process = self.context.Process(target=_child, args=(name, spec, str(result_path), str(log_path)))
        process.start()
        process.join(budget)
        timed_out = process.is_alive()
        if timed_out:
            stop(process)
        wall = time.time() - start
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
        status, error = result.pop("status", None), result.pop("error", None)
        if timed_out:
            status, error = "timeout", f"stopped at the end of its budget ({budget:.0f} s); partial results kept"
        elif status in (None, "running"):
            status, error = "error", f"its process ended (exit code {process.exitcode}) before it wrote a result"
        print(f"-> {name}: {status} in {wall:.1f} s" + (f": {error}" if error else ""), flush=True)
        if status != "ok" and log_path.is_file():
            print("   " + "\n   ".join(log_path.read_text(errors="replace").splitlines()[-15:]), flush=True)
        return {"status": status, "error": error, "budget_s": round(budget), "wall_s": round(wall, 1), "result": result}

    def main(self) -> None:
        all_specs = specs(self.args, self.data, self.work)
        print("time budget per part (s): " + ", ".join(f"{k} {v[0]:.0f}" for k, v in self.plan.items()), flush=True)
        print(f"  of {self.args.budget:.0f} s in all ({RESERVE_S} s kept for the report); work folder {self.work}")
        for name in self.plan:
            self.report["parts"][name] = self.run(name, all_specs[name])
            self.write()
        self.write()
        print(Path(self.md_path).read_text())
        statuses = {k: v["status"] for k, v in self.report["parts"].items()}
        summary = ", ".join(f"{k} {v}" for k, v in statuses.items())
        print(f"wrote {self.out} ({self.report['wall_s']:.0f} s): {summary}")

    @property
    def md_path(self) -> Path:
        return self.out.with_suffix(".md")

    def write(self) -> None:
        self.report["wall_s"] = round(time.time() - self.start, 1)
        env = self.report["parts"].get("environment", {}).get("result", {})
        self.report["device"], self.report["torch"] = env.get("device", "unknown"), env.get("torch", "unknown")
        self.out.write_text(json.dumps(self.report, indent=2, default=str) + "\n")
        self.md_path.write_text(markdown(self.report))
        with open(self.out.with_suffix(".log"), "w") as log:
            for name in self.report["parts"]:
                path = self.work / f"{name}.log"
                if path.is_file():
                    text = path.read_text(errors="replace")
                    log.write(f"===== {name} =====\n{text[-200_000:]}\n")


def stop(process: multiprocessing.process.BaseProcess) -> None:
    """The part's process group (its DataLoader workers too): SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # not yet its own group: the process alone
            process.kill()
        process.join(wait)
        if not process.is_alive():
            return


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _rate(row: dict[str, Any]) -> str:
    if row["status"] == "ok":
        return f"{row['images_per_s']:,.1f}"
    return _cell(f"{row['status']}: {row.get('why') or row.get('error')}")


def markdown(report: dict[str, Any]) -> str:
    """The rows for benchmarks/RESULTS.md: one throughput table, one training table, each row self-describing."""
    parts = report["parts"]
    commit, device, torch = f"`{report['commit'][:7]}`", report["device"], report["torch"]
    env = parts.get("environment", {}).get("result", {})
    lines = [
        f"<!-- benchmarks/gpu_check.py{' --tiny' if report['tiny'] else ''}, {report['started']}: "
        f"{report['wall_s']:.0f} s of a {report['budget_s']:.0f} s budget -->",
        f"Machine: {device}, {env.get('cpu_cores', '?')} CPU cores ({env.get('cpu', '?')}), torch {torch}, "
        f"torchvision {env.get('torchvision', '?')}, lightning {env.get('lightning', '?')}, "
        f"CUDA {env.get('cuda', '?')}, Python {env.get('python', '?')}; commit {commit}"
        + (f" + {len(report['changed_files'])} changed files" if report["changed_files"] else "")
        + ".",
        "",
    ]
    if "throughput" in parts:
        lines += throughput_lines(parts["throughput"], device, torch, commit, f"`{report['command']}`")
    if any(part in parts for part in RECIPES):
        lines += training_lines(parts, device, torch, commit, report["tiny"], report.get("data_settings"))
    return "\n".join(lines) + "\n"


def throughput_lines(tp: dict[str, Any], device: str, torch: str, commit: str, command: str) -> list[str]:
    result = tp.get("result", {})
    s = result.get("settings", {})
    lines = [
        f"GPU check, throughput: {s.get('images', '?')} JPEGs, batch {s.get('batch_size', '?')}, "
        f"{s.get('image_size', '?')} px, augment={s.get('augment', '?')}, {s.get('workers', '?')} workers, "
        f"{s.get('precision', '?')}, median of {s.get('repeats', '?')} x {s.get('steps', '?')} steps "
        f"after {s.get('warmup', '?')} (part status: {tp.get('status', 'not run')}).",
        "",
        "| row | images/s | of the model limit | device | torch | commit | command |",
        "|---|---:|---:|---|---|---|---|",
    ]
    rows = result.get("rows", {})
    data_rows = {k: v for k, v in rows.items() if k.startswith("data_")}
    for key, row in rows.items():
        if key in data_rows:
            continue
        share = f"{row['of_limit']:.0%}" if "of_limit" in row else ""
        lines.append(f"| {_cell(row['label'])} | {_rate(row)} | {share} | {device} | {torch} | {commit} | {command} |")
    if data_rows:
        lines += ["", "| data path alone (no model) | images/s | device | torch | commit | command |"]
        lines += ["|---|---:|---|---|---|---|"]
        for row in data_rows.values():
            lines.append(f"| {_cell(row['label'])} | {_rate(row)} | {device} | {torch} | {commit} | {command} |")
    if result.get("prep"):
        lines += ["", "Set-up: " + "; ".join(f"{k} {v:.1f} s" for k, v in result["prep"].items()) + "."]
    if result.get("default"):
        d = result["default"]
        lines += [
            f"Row 6 picked pipeline={d['pipeline']}, decode={d['decode']}, num_workers={d['num_workers']}, "
            f"cache_size={d['cache_size']}."
        ]
    return lines


def training_lines(
    parts: dict[str, Any], device: str, torch: str, commit: str, tiny: bool, photos: dict[str, Any] | None
) -> list[str]:
    if tiny:
        data = "--tiny: generated data, one epoch of 2 batches"
    else:
        data = "gpu_data/: dogs-vs-cats cat.0-999 + dog.0-999, test = the 400-photo holdout"
        if photos:
            data += f" (re-encoded: short side <= {photos['short_side']} px, JPEG quality {photos['quality']})"
        data += "; MNIST's four .gz files"
    lines = [
        "",
        f"GPU check, training ({data}); cold image cache; wall time = the whole run (set-up, fit, test).",
        "",
        "| run | result | epochs | wall time | device | torch | commit | command |",
        "|---|---|---|---:|---|---|---|---|",
    ]
    for part, (_, title) in RECIPES.items():
        if part not in parts:
            continue
        record = parts[part]
        r = record.get("result", {})
        lines.append(
            f"| {title.format(precision=r.get('precision', '?'))} | {_cell(training_result(part, record))} | "
            f"{_cell(epochs_cell(r))} | "
            f"{r.get('run_s', record.get('wall_s', '?'))} s | {device} | {torch} | {commit} | "
            f"`{_cell(r.get('command', '?'))}` |"
        )
    return lines


def training_result(part: str, record: dict[str, Any]) -> str:
    r = record.get("result", {})
    metrics = r.get("metrics", {})
    text = []
    if record["status"] != "ok":
        text.append(f"{record['status']}: {record.get('error')}")
    if part == "mnist":
        reached = r.get("reached")
        tests = [e["test_acc"] for e in r.get("epochs", []) if "test_acc" in e]
        if reached:
            text.append(
                f"{TARGET} reached after {reached['train_s']:.1f} s of training ({reached['run_s']:.1f} s with "
                f"data set-up), epoch {reached['epoch']} (test acc {reached['test_acc']:.4f})"
            )
        elif tests:
            text.append(f"{TARGET} not reached: best test acc {max(tests):.4f} in {len(tests)} epochs")
        if "test/acc" in metrics:
            text.append(f"best checkpoint's test acc {metrics['test/acc']:.4f}")
    else:
        if "val/acc_best" in metrics:
            text.append(f"best val acc {metrics['val/acc_best']:.4f}")
        if "test/acc" in metrics:
            text.append(f"holdout test acc {metrics['test/acc']:.4f}")
    return "; ".join(text) or "no result"


def epochs_cell(r: dict[str, Any]) -> str:
    capped = r.get("capped", {}).get("max_epochs", {})
    if "epochs_run" not in r:
        return f"? of {capped.get('run', '?')}"
    text = f"{r['epochs_run']} of {capped.get('run', '?')}"
    if capped.get("recipe") != capped.get("run"):
        text += f" (recipe: {capped.get('recipe')})"
    return text + f", stopped by {r.get('stopped_by', '?')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("gpu_data"), help="made by gpu_check_data.py")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "gpu_check", help="a .json file or a folder")
    parser.add_argument("--tiny", action="store_true", help="generated data on the CPU, 1-2 steps: under a minute")
    parser.add_argument("--budget", type=float, default=None, help="seconds in all (480; --tiny: 600)")
    parser.add_argument("--parts", default=",".join(PLAN), help="comma-separated subset of " + ", ".join(PLAN))
    parser.add_argument("--rows", default=THROUGHPUT_ROWS, help="throughput rows")
    parser.add_argument("--steps", type=int, default=30, help="steps per timed window (3 windows)")
    parser.add_argument("--mnist-epochs", type=int, default=None, help="default: the recipe's 10")
    parser.add_argument("--catsdogs-epochs", type=int, default=None, help="default: the recipe's 30")
    parser.add_argument(
        "--best-epochs", type=int, default=None, help="catsdogs_best's epochs (recipe: 60; default: what fits)"
    )
    parser.add_argument("--work", type=Path, default=None, help="runs and caches (default: a temporary folder)")
    parser.add_argument("--start", choices=["forkserver", "spawn"], default="forkserver", help="how parts start")
    args = parser.parse_args()
    args.budget = args.budget or (600.0 if args.tiny else 480.0)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = set(args.parts) - set(PLAN)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    out = args.out if args.out.suffix == ".json" else args.out / "gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    # The parts' module and the template for the process server (Python 3.11's ignores the parent's sys.path)
    # and for the parts; an existing PYTHONPATH (the carried wheels' /tmp/site) stays.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), str(REPO), os.environ.get("PYTHONPATH")]))
    sys.path[:0] = [str(BENCH), str(REPO)]
    data = tiny_data(work / "tiny_data") if args.tiny else args.data
    try:
        Check(args, out.resolve(), work, data).main()
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
