"""What changed between two runs of a cell: verdict changes by kind, metrics moved beyond their factors."""

from __future__ import annotations

from portproof.changes import MoveFactors, compare_cell
from portproof.results.sweep import Cell

FACTORS = MoveFactors(rel_l2=2.0, latency=1.5)


def cell(verdict: str, rel_l2: float | None = 1e-3, median_ms: float | None = 10.0) -> Cell:
    return Cell(target="cpu/bf16", verdict=verdict, rel_l2=rel_l2, median_ms=median_ms)


def test_pass_to_fail_or_error_is_a_regression_and_back_a_fix():
    assert compare_cell(cell("PASS"), cell("FAIL"), FACTORS).kind == "regression"
    assert compare_cell(cell("PASS"), cell("ERROR", None, None), FACTORS).kind == "regression"
    assert compare_cell(cell("FAIL"), cell("PASS"), FACTORS).kind == "fix"
    assert compare_cell(cell("ERROR"), cell("PASS"), FACTORS).kind == "fix"
    changed = compare_cell(cell("FAIL"), cell("ERROR"), FACTORS)
    assert changed.kind == "changed" and changed.words == "FAIL → ERROR" and changed.baseline_verdict == "FAIL"


def test_metrics_within_their_factors_are_no_change():
    assert compare_cell(cell("PASS"), cell("PASS", rel_l2=1.9e-3, median_ms=14.9), FACTORS) is None
    assert compare_cell(cell("PASS"), cell("PASS", rel_l2=0.51e-3, median_ms=6.7), FACTORS) is None


def test_metrics_beyond_their_factors_moved_either_way():
    worse = compare_cell(cell("PASS"), cell("PASS", rel_l2=5e-3), FACTORS)
    assert worse.kind == "moved" and worse.rel_l2_factor == 5.0 and "rel_l2 ×5" in worse.words
    faster = compare_cell(cell("PASS"), cell("PASS", median_ms=5.0), FACTORS)
    assert faster.kind == "moved" and faster.latency_factor == 0.5 and "faster" in faster.words
    both = compare_cell(cell("PASS"), cell("FAIL", rel_l2=3e-2, median_ms=20.0), FACTORS)
    assert both.kind == "regression" and both.words.count(";") == 2 and "slower" in both.words


def test_a_metric_missing_or_zero_on_either_side_is_not_a_move():
    assert compare_cell(cell("PASS", rel_l2=0.0), cell("PASS", rel_l2=1e-3), FACTORS) is None
    assert compare_cell(cell("PASS", median_ms=None), cell("PASS", median_ms=99.0), FACTORS) is None


def test_a_cell_without_a_baseline_is_new():
    assert compare_cell(None, cell("FAIL"), FACTORS).kind == "new"
