"""layers.csv and layers.json: every module row of every target's layer pass; and the short form of a
layer pass that summary.json carries (the first divergent modules and the worst ten)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..results import SCHEMA_VERSION, CheckResult, LayerMetrics, LayerReport

METRIC_FIELDS = ("cosine", "rel_l2", "max_abs_diff", "mean_abs_diff", "reference_norm", "reference_nonfinite",
                 "target_nonfinite", "error")


def has_layers(result: CheckResult) -> bool:
    return any(t.layers is not None for t in result.targets)


def render_csv(result: CheckResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["target", "order", "module", "element", "type", "shape", "dtype",
                     *(f"accumulated_{f}" for f in METRIC_FIELDS), *(f"local_{f}" for f in METRIC_FIELDS), "target_dtype"])
    for target in result.targets:
        for row in target.layers.rows if target.layers else ():
            writer.writerow([
                target.label, row.order, row.name, row.element, row.module_type, "x".join(map(str, row.shape)), row.dtype,
                *_metric_cells(row.accumulated), *_metric_cells(row.local), row.local.target_dtype or row.accumulated.target_dtype,
            ])
    return buffer.getvalue()


def render_json(result: CheckResult) -> str:
    from .summary_json import to_jsonable

    document = {"schema_version": SCHEMA_VERSION,
                "targets": [{**layer_summary(t.layers), "rows": [_row(r) for r in t.layers.rows]}
                            for t in result.targets if t.layers is not None]}
    return json.dumps(to_jsonable(document), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def layer_summary(report: LayerReport) -> dict[str, Any]:
    """What summary.json says of a layer pass; the rows themselves are in layers.json."""
    return {
        "target": report.target,
        "samples": report.samples,
        "criteria": report.criteria,
        "modules_compared": len(report.rows),
        "first_divergent": report.first_divergent,
        "first_divergent_accumulated": report.first_divergent_accumulated,
        "worst_local": [{"module": label, **_metrics(report.row(label).local)} for label in report.worst_local],
        "notes": report.notes,
    }


def _row(row) -> dict[str, Any]:
    return {"order": row.order, "module": row.name, "element": row.element, "type": row.module_type,
            "shape": row.shape, "dtype": row.dtype, "accumulated": _metrics(row.accumulated), "local": _metrics(row.local)}


def _metrics(metrics: LayerMetrics) -> dict[str, Any]:
    return {field: getattr(metrics, field) for field in (*METRIC_FIELDS, "target_shape", "target_dtype")}


def _metric_cells(metrics: LayerMetrics) -> list:
    return ["" if getattr(metrics, f) is None else getattr(metrics, f) for f in METRIC_FIELDS]
