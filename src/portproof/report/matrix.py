"""A sweep's matrix files: matrix.json (every row and cell, the counts, the settings, the baseline's
summary) and matrix.csv (one line per model and target, for spreadsheets and pandas); and matrix.json read
back, as the --baseline of a later sweep."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import SummaryError
from ..results.sweep import SweepResult
from .load import _build, _Place, _read_json
from .summary_json import to_jsonable

MATRIX_JSON, MATRIX_CSV, INDEX_HTML = "matrix.json", "matrix.csv", "index.html"
CSV_COLUMNS = ("model", "target", "verdict", "cosine", "rel_l2", "top1", "median_ms", "speedup", "first_divergent",
               "error", "change", "change_detail", "baseline_verdict", "rel_l2_factor", "latency_factor", "reused",
               "report")


def render_json(result: SweepResult) -> str:
    document: dict[str, Any] = {
        "schema_version": result.schema_version,
        "targets": result.targets,
        "counts": {target: result.counts(target) for target in result.targets},
        "regressions": result.regressions if result.baseline is not None else None,
        **{name: value for name, value in vars(result).items() if name not in ("schema_version", "targets")},
    }
    return json.dumps(to_jsonable(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_csv(result: SweepResult) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in result.rows:
        report = "" if row.error else f"{row.run_dir}/report.html"
        for cell in row.cells:
            change = cell.change
            values = (row.model, cell.target, cell.verdict, cell.cosine, cell.rel_l2, cell.top1, cell.median_ms,
                      cell.speedup, cell.first_divergent, cell.error, change.kind if change else None,
                      change.words if change else None, change.baseline_verdict if change else None,
                      change.rel_l2_factor if change else None, change.latency_factor if change else None,
                      row.reused, report)
            writer.writerow(["" if value is None else repr(value) if isinstance(value, float) else value
                             for value in values])
    return stream.getvalue()


def load_matrix(directory: str | Path) -> SweepResult:
    """The matrix an earlier sweep wrote into `directory` (its matrix.json)."""
    path = Path(directory) / MATRIX_JSON
    if not path.is_file():
        raise SummaryError(f"{path} does not exist; give the folder of an earlier, finished sweep",
                           cli_hint="--baseline DIR")
    data = _read_json(path)
    if not isinstance(data, dict):
        raise SummaryError(f"{path} does not hold a JSON object")
    return _build(SweepResult, data, _Place(MATRIX_JSON))
