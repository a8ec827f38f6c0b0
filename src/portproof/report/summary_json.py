"""summary.json: every field of the result, plus the original report's flat scoring fields on top."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from ..results import RANDOM_WEIGHTS_BANNER, CheckResult, TargetResult
from .layers_files import layer_summary


def render(result: CheckResult) -> str:
    return json.dumps(to_jsonable(summary(result)), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def summary(result: CheckResult) -> dict[str, Any]:
    return {
        "schema_version": result.schema_version,
        **scoring_fields(result),
        "all_passed": result.all_passed,
        "warning": RANDOM_WEIGHTS_BANNER if result.random_weights else None,
        "notes": result.notes,
        "model": result.model,
        "weights": result.weights,
        "inputs": result.inputs,
        "criteria": result.config.criteria,
        "reference": result.reference,
        "targets": [target_entry(t) for t in result.targets],
        "rescue": None if result.rescue is None else {**to_jsonable(result.rescue),
                                                      "latency_cost": result.rescue.latency_cost},
        "environment": result.environment,
        "settings": result.config,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "duration_s": result.duration_s,
    }


def scoring_fields(result: CheckResult) -> dict[str, Any]:
    """The original adaptation report's flat fields, for the first target's main output."""
    target = result.targets[0]
    output = result.model.classifier_output or result.model.output_names[0]
    comparison = target.comparison(output)
    topk = comparison.topk if comparison else None
    return {
        "status": "ERROR" if target.status == "ERROR" else "SUCCESS",
        "verdict": target.status,
        "scoring_target": target.label,
        "scoring_output": output,
        "output_shape": list(comparison.target_shape) if comparison else None,
        "latency_ms": target.latency.mean_ms if target.latency else None,
        "pretrained_used": result.weights.pretrained_used,
        "local_weight_used": result.weights.local_weight_used,
        "weight_path": result.weights.path,
        "max_abs_diff": comparison.max_abs_diff if comparison else None,
        "mean_abs_diff": comparison.mean_abs_diff if comparison else None,
        "cosine_similarity": comparison.cosine_similarity if comparison else None,
        "top1_match": topk.top1_match if topk else None,
        "top5_match": topk.topk_match if topk else None,
        "match_within_1_percent": target.verdict.match_within_1_percent if target.verdict else False,
        "match_basis": target.verdict.basis if target.verdict else f"not compared: {target.error}",
    }


def target_entry(target: TargetResult) -> dict[str, Any]:
    entry = dataclasses.asdict(target)
    entry["comparisons"] = [{**dataclasses.asdict(c), "shape_match": c.shape_match} for c in target.comparisons]
    entry["layers"] = layer_summary(target.layers) if target.layers else None  # the rows are in layers.json
    return entry


def to_jsonable(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists; a float that is NaN or infinite becomes null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.repr})
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
