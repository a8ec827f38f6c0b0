"""A sweep's matrix: one row per model, one cell per target, and what changed against a baseline sweep.

Torch-free like every result: the matrix of a thousand models is read, diffed and rendered without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .check import CheckResult, TargetResult

CHANGE_KINDS = ("regression", "fix", "changed", "moved", "new")


@dataclass(frozen=True)
class Change:
    """How a cell differs from the same model and target in a baseline. `kind`: "regression" (PASS before,
    FAIL or ERROR now), "fix" (not PASS before, PASS now), "changed" (FAIL and ERROR swapped), "moved" (same
    verdict, but rel_l2 or the median latency moved by more than its factor), "new" (no such cell before)."""

    kind: str
    words: str  # "PASS → FAIL; rel_l2 ×12.0", what the terminal and index.html show
    baseline_verdict: str | None = None
    rel_l2_factor: float | None = None  # now / before, when both are above 0
    latency_factor: float | None = None


@dataclass(frozen=True)
class Cell:
    """One model on one target, as its check's summary.json says (the main output: the classifier's, or
    the first)."""

    target: str
    verdict: str  # "PASS" | "FAIL" | "ERROR"
    cosine: float | None = None
    rel_l2: float | None = None
    top1: float | None = None  # tie-aware top-1 agreement (share of samples), for a classifier
    median_ms: float | None = None
    speedup: float | None = None  # the reference's median latency / this target's
    first_divergent: str | None = None  # the layer pass's first divergent module (local mode), when it ran
    error: str | None = None
    change: Change | None = None


@dataclass(frozen=True)
class ModelRow:
    model: str
    run_dir: str  # the check's folder, relative to the sweep's: runs/<name>
    cells: tuple[Cell, ...]
    error: str | None = None  # the check could not run at all (unknown model, crash, timeout): every cell is ERROR
    reused: bool = False  # its summary.json was kept from an earlier run into the same folder (resumed)
    duration_s: float | None = None  # the check's own wall time (from its summary), or the time until it failed

    def cell(self, target: str) -> Cell | None:
        return next((c for c in self.cells if c.target == target), None)


@dataclass(frozen=True)
class BaselineInfo:
    directory: str
    rel_l2_factor: float
    latency_factor: float
    regressions: int
    fixes: int
    changed: int
    moved: int
    missing: tuple[str, ...] = ()  # "model on target" cells of the baseline that this sweep does not hold


@dataclass(frozen=True)
class SweepResult:
    targets: tuple[str, ...]
    rows: tuple[ModelRow, ...]
    settings: dict
    started_at: str
    finished_at: str
    duration_s: float
    baseline: BaselineInfo | None = None
    schema_version: str = "1.0"

    def counts(self, target: str) -> dict[str, int]:
        found = [row.cell(target) for row in self.rows]
        return {status: sum(c is not None and c.verdict == status for c in found) for status in ("PASS", "FAIL", "ERROR")}

    @property
    def regressions(self) -> int:
        return sum(c.change is not None and c.change.kind == "regression" for row in self.rows for c in row.cells)

    @property
    def all_passed(self) -> bool:
        return all(c.verdict == "PASS" for row in self.rows for c in row.cells)


def cells_of(result: CheckResult) -> tuple[Cell, ...]:
    """A check's targets as matrix cells."""
    output = result.model.classifier_output or result.model.output_names[0]
    return tuple(_cell(target, output) for target in result.targets)


def _cell(target: TargetResult, output: str) -> Cell:
    comparison = target.comparison(output)
    topk = comparison.topk if comparison else None
    layers = target.layers
    return Cell(target=target.label, verdict=target.status,
                cosine=comparison.cosine_similarity if comparison else None,
                rel_l2=comparison.rel_l2 if comparison else None,
                top1=topk.tie_aware_top1_agreement if topk else None,
                median_ms=target.latency.median_ms if target.latency else None,
                speedup=target.speedup,
                first_divergent=layers.first_divergent if layers is not None else None,
                error=target.error)


def error_cells(targets: tuple[str, ...], message: str) -> tuple[Cell, ...]:
    """Every target ERROR with one message: the check could not run."""
    return tuple(Cell(target=label, verdict="ERROR", error=message) for label in targets)
