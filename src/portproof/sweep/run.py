"""A sweep from start to end: reuse what an earlier run into the folder finished, run the rest (local
workers or Ray tasks), write each model's files as it finishes, and gather the matrix."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from ..changes import with_changes
from ..errors import SummaryError
from ..report import CHECK_FILES, write_files
from ..report.load import SUMMARY_FILE, load_directory
from ..results.sweep import BaselineInfo, ModelRow, SweepResult, cells_of, error_cells
from . import settings as sweep_settings
from .runner import ERROR_FILE, ModelOutcome, ModelTask, run_locally, settings_match
from .settings import SweepConfig


class SweepProgress(Protocol):
    """What the sweep tells its display (display.SweepDisplay)."""

    def begin(self, to_run: int, reused: int, where: str) -> None: ...
    def started(self, model: str) -> None: ...
    def step(self, model: str, message: str) -> None: ...
    def finished(self, row: ModelRow) -> None: ...


def run_sweep(sweep: SweepConfig, progress: SweepProgress, baseline: SweepResult | None = None) -> SweepResult:
    started_at, clock = _now(), time.perf_counter()
    if sweep.ray_address is None:
        sweep = sweep_settings.with_local_threads(sweep)
    rows: dict[str, ModelRow] = {}
    to_run = []
    for model in sweep.models:
        config = sweep.model_check(model)
        saved = None if sweep.force else _reusable(sweep, model)
        if saved is not None:
            rows[model] = saved
        else:
            to_run.append(config)
    if sweep.ray_address is not None:
        from . import on_ray

        where = f"Ray cluster {sweep.ray_address}"
        tasks = [ModelTask(c.model.name, c, sweep.timeout_per_model_s) for c in to_run]
        outcomes = on_ray.run_on_ray(tasks, sweep.accelerators(), sweep.check.threads or 1)
    else:
        workers = min(sweep_settings.local_workers(sweep), max(1, len(to_run)))
        where = f"{workers} local worker{'s' if workers > 1 else ''}"
        tasks = [ModelTask(c.model.name, c, sweep.timeout_per_model_s) for c in to_run]
        environments = [sweep_settings.slot_environment(sweep, slot, workers) for slot in range(workers)]
        outcomes = run_locally(tasks, workers, environments, progress.started, progress.step)
    progress.begin(len(to_run), len(rows), where)
    with contextlib.closing(outcomes):
        for outcome in outcomes:
            row = _record(sweep, outcome)
            rows[outcome.model] = row
            progress.finished(row)
    ordered = tuple(rows[model] for model in sweep.models)
    result = SweepResult(targets=sweep.targets, rows=ordered, settings=_settings(sweep), started_at=started_at,
                         finished_at=_now(), duration_s=time.perf_counter() - clock)
    return against_baseline(result, baseline, sweep) if baseline is not None else result


def against_baseline(result: SweepResult, baseline: SweepResult, sweep: SweepConfig) -> SweepResult:
    """`result` with every cell's change against the same model and target in `baseline`."""
    before = {row.model: {cell.target: cell for cell in row.cells} for row in baseline.rows}
    rows = tuple(replace(row, cells=with_changes(row.cells, before.get(row.model, {}), sweep.factors))
                 for row in result.rows)
    present = {(row.model, cell.target) for row in rows for cell in row.cells}
    missing = tuple(f"{row.model} on {cell.target}" for row in baseline.rows for cell in row.cells
                    if (row.model, cell.target) not in present)
    kinds = [cell.change.kind for row in rows for cell in row.cells if cell.change is not None]
    info = BaselineInfo(directory=sweep.baseline or "", rel_l2_factor=sweep.factors.rel_l2,
                        latency_factor=sweep.factors.latency, regressions=kinds.count("regression"),
                        fixes=kinds.count("fix"), changed=kinds.count("changed"), moved=kinds.count("moved"),
                        missing=missing)
    return replace(result, rows=rows, baseline=info)


def _reusable(sweep: SweepConfig, model: str) -> ModelRow | None:
    """The row of a check an earlier run into this folder finished with the same settings, or None."""
    run_dir = sweep.run_dir(model)
    try:
        saved = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        if not settings_match(saved.get("settings"), sweep.model_check(model)):
            return None
        result = load_directory(run_dir)
    except (OSError, ValueError, AttributeError, SummaryError):  # absent, unreadable or from another run
        return None
    return ModelRow(model, _relative(sweep, run_dir), cells_of(result), reused=True, duration_s=result.duration_s)


def _record(sweep: SweepConfig, outcome: ModelOutcome) -> ModelRow:
    """The outcome's files in its run folder (replacing whatever an earlier run left there), and its row."""
    run_dir = sweep.run_dir(outcome.model)
    write_files(outcome.files, run_dir, replaces=(*CHECK_FILES, ERROR_FILE))
    relative = _relative(sweep, run_dir)
    if outcome.error is not None:
        return ModelRow(outcome.model, relative, error_cells(sweep.targets, outcome.error), error=outcome.error,
                        duration_s=outcome.duration_s)
    result = load_directory(run_dir)
    return ModelRow(outcome.model, relative, cells_of(result), duration_s=result.duration_s)


def _relative(sweep: SweepConfig, run_dir: Path) -> str:
    return run_dir.relative_to(sweep.directory).as_posix()


def _settings(sweep: SweepConfig) -> dict:
    """What matrix.json records of how the sweep was asked for (the check settings are each summary's)."""
    from ..report.summary_json import to_jsonable

    check = to_jsonable(sweep.check)
    check.pop("model", None)
    check["output"].pop("directory", None)
    return {"models": sweep.models_spec, "count": len(sweep.models), "workers": sweep.workers,
            "timeout_per_model_s": sweep.timeout_per_model_s,
            "ray": sweep.ray_address, "force": sweep.force, "baseline": sweep.baseline,
            "rel_l2_factor": sweep.factors.rel_l2, "latency_factor": sweep.factors.latency, "check": check}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
