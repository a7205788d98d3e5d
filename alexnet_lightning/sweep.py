"""Sweeps: each run records what it did in ``metrics.json``; the sweep ends with a summary of all runs.

A run that fails inside a ``-m`` sweep is recorded with its error and returns NaN, so Hydra's
launchers and the Optuna sweeper go on with the next run instead of aborting the whole sweep;
the sweep then exits with status 1 once its summary is written.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from alexnet_lightning.atomic import atomic_path, write_atomic
from alexnet_lightning.errors import find_user_error

log = logging.getLogger(__name__)

RECORD = "metrics.json"
COLUMNS = ["val/acc_best", "val/acc", "val/loss", "test/acc", "test/loss"]


@dataclass
class RunRecord:
    """What ``record_run`` fills in: the metrics of ``train()`` and, from them, the sweepers' objective."""

    metrics: dict[str, Any] = field(default_factory=dict)
    objective: float = math.nan  # the value of cfg.optimized_metric; NaN for a failed run


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null: JSON has no such numbers (Python would write a bare ``NaN``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _number(value: Any) -> float:
    """A number of metrics.json: null (NaN in files written before it was valid JSON) as NaN."""
    return math.nan if value is None else float(value)


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextmanager
def record_run(cfg: DictConfig) -> Iterator[RunRecord]:
    """Time the run and write ``metrics.json`` in its directory, also when it fails.

    Inside a sweep a failure is logged and swallowed (the sweep goes on); in a single run it propagates.
    """
    record = RunRecord()
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    start = time.perf_counter()
    error: str | None
    error = "interrupted"  # until the run completes or raises an Exception (KeyboardInterrupt, SIGTERM: stays)
    try:
        yield record
        error = None
        record.objective = record.metrics.get(cfg.optimized_metric, math.nan)
    except Exception as e:
        user_error = find_user_error(e)
        error = str(user_error) if user_error else f"{type(e).__name__}: {e}".splitlines()[0]
        if not _in_sweep():
            raise
        if user_error:
            print(f"error: {user_error}", file=sys.stderr)
        else:
            log.error("run failed, the sweep goes on:\n%s", traceback.format_exc())
    finally:
        if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # Lightning sets the attribute at import
            out = Path(cfg.paths.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            payload = {
                "status": "failed" if error else "ok",
                "error": error,
                "overrides": overrides,
                "metrics": record.metrics,
                "objective": record.objective,
                "wall_s": round(time.perf_counter() - start, 2),
                "run_dir": str(out),
            }
            write_atomic(out / RECORD, json.dumps(_json_safe(payload), indent=2, allow_nan=False))


def drop_resume_checkpoint(cfg: DictConfig) -> Path | None:
    """In a sweep, remove a finished run's ``last.ckpt`` unless ``sweep_keeps_last``; returns what it removed.

    It is the run's only checkpoint with optimizer state (3x ``best.ckpt`` with AdamW: 7 GB for a 10-run
    sweep of torchvision's network), and nothing after the run needs it: the summary, eval, predict,
    export and serve use ``best.ckpt``, and a sweep's run is not resumed (a run to continue is rerun
    alone with ``ckpt_path=``, or the sweep with ``sweep_keeps_last=true``). Only the file that this
    run's ``callbacks.last_checkpoint`` writes is touched.
    """
    last = (cfg.get("callbacks") or {}).get("last_checkpoint")
    if not _in_sweep() or cfg.get("sweep_keeps_last", False) or not last or rank_zero_only.rank != 0:  # type: ignore[attr-defined]
        return None
    path = Path(last.dirpath) / f"{last.filename}.ckpt"
    if not path.is_file() or path.is_symlink():
        return None
    path.unlink()
    return path


def _row(path: Path, sweep_dir: Path) -> dict[str, Any]:
    rec = json.loads(path.read_text())  # Python's reader also takes the NaN of older files
    metrics = rec.get("metrics", {})
    return {
        "run": path.parent.relative_to(sweep_dir).as_posix(),
        "overrides": " ".join(rec.get("overrides", [])),
        "status": rec["status"],
        "objective": _number(rec["objective"]),
        **{c: _number(metrics.get(c)) for c in COLUMNS},
        "epochs": _number(metrics.get("epochs")),
        "wall_s": rec["wall_s"],
        "run_dir": rec["run_dir"],
        "error": rec.get("error") or "",
    }


def _run_order(path: Path) -> tuple[int, str]:
    name = path.parent.name
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def summarize(sweep_dir: Path, metric: str, maximize: bool) -> pd.DataFrame:
    """One row per run of the sweep (failed runs included), in launch order."""
    records = sorted(sweep_dir.glob(f"*/{RECORD}"), key=_run_order)
    frame = pd.DataFrame([_row(p, sweep_dir) for p in records])
    frame.attrs.update(metric=metric, maximize=maximize)
    return frame


def swept_parameters(frame: pd.DataFrame) -> pd.DataFrame:
    """One column per override key that takes more than one value in the sweep (numbers as numbers)."""
    rows = [dict(o.split("=", 1) for o in str(line).split() if "=" in o) for line in frame.overrides.fillna("")]
    params = pd.DataFrame(rows, index=frame.index)
    for key in params.columns:
        numbers = pd.to_numeric(params[key], errors="coerce")
        if numbers.notna().all():
            params[key] = numbers
    return params.loc[:, params.nunique() > 1]


def best_run(frame: pd.DataFrame) -> pd.Series | None:
    ok = frame[(frame.status == "ok") & frame.objective.notna()]
    if ok.empty:
        return None
    return ok.loc[ok.objective.idxmax() if frame.attrs["maximize"] else ok.objective.idxmin()]


def _markdown(frame: pd.DataFrame, best: pd.Series | None, extra: dict[str, Any]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return str(v).replace("|", "\\|")

    lines = [f"# Sweep summary: {len(frame)} runs, objective `{frame.attrs['metric']}`", ""]
    if best is not None:
        lines += [f"Best run: **{best.run}** (`{best.overrides}`), objective {best.objective:.4f}", ""]
    lines += ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    for title, value in extra.items():
        lines += ["", f"## {title}", "", "```yaml", OmegaConf.to_yaml(value).strip(), "```"]
    return "\n".join(lines) + "\n"


def _plot(frame: pd.DataFrame, best: pd.Series | None, path: Path) -> None:
    fig = Figure(figsize=(max(6, 0.6 * len(frame) + 2), 4))
    ax = fig.subplots()
    values = frame.objective.fillna(0.0)
    colors = ["tab:red" if s != "ok" else "tab:blue" for s in frame.status]
    if best is not None:
        colors[frame.index.get_loc(best.name)] = "tab:green"
    positions = range(len(frame))
    ax.bar(positions, values, color=colors)
    ax.set_xticks(positions, frame.run.astype(str))
    ax.set_xlabel("run (red: failed, green: best)")
    ax.set_ylabel(frame.attrs["metric"])
    ax.set_title("objective per run")
    fig.tight_layout()
    with atomic_path(path) as partial:
        fig.savefig(partial, format="png", dpi=110, bbox_inches="tight")


def write_summary(sweep_dir: Path, metric: str, maximize: bool) -> pd.DataFrame:
    """Write summary.csv, summary.md and summary.png into the sweep directory and name the best run."""
    frame = summarize(sweep_dir, metric, maximize)
    if frame.empty:
        log.warning("no run of the sweep in %s wrote %s: nothing to summarize", sweep_dir, RECORD)
        return frame
    best = best_run(frame)
    extra = {}
    optuna_results = sweep_dir / "optimization_results.yaml"
    if optuna_results.is_file():
        extra["Optuna's best parameters"] = OmegaConf.load(optuna_results)
    write_atomic(sweep_dir / "summary.csv", frame.to_csv(index=False))
    write_atomic(sweep_dir / "summary.md", _markdown(frame, best, extra))
    _plot(frame, best, sweep_dir / "summary.png")
    failed = int((frame.status != "ok").sum())
    where = sweep_dir / "summary.md"
    if best is None:
        print(f"sweep: all {len(frame)} runs failed; see {where}")
    else:
        print(
            f"sweep: {len(frame)} runs ({failed} failed); best run {best.run} ({best.overrides}) "
            f"{metric}={best.objective:.4f} in {best.run_dir}; summary: {where}"
        )
    return frame


class SweepSummary(Callback):
    """Hydra callback: at the end of a ``-m`` sweep, summarize its runs into the sweep directory.

    A sweep with failed runs then exits with status 1, so that scripts and CI notice them.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        metric = config.optimized_metric
        direction = OmegaConf.select(config, "hydra.sweeper.direction", default=None)
        maximize = direction != "minimize" if direction else "loss" not in metric
        sweep_dir = Path(config.hydra.sweep.dir)
        frame = write_summary(sweep_dir, metric, maximize)
        failed = 0 if frame.empty else int((frame.status != "ok").sum())
        if failed:
            where = sweep_dir / "summary.md"
            print(f"sweep: {failed} of {len(frame)} runs failed; their errors are in {where}", file=sys.stderr)
            sys.exit(1)
