"""The layer pass's findings (layers.py computes them): per module output, metrics in two modes."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Criteria

MODES = ("accumulated", "local")  # the layer pass's two ways of comparing (layers.py says what each is)


@dataclass(frozen=True)
class LayerMetrics:
    """One module output of one mode. Metric fields are None when the module raised or was not reached."""

    cosine: float | None = None
    rel_l2: float | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    reference_nonfinite: int = 0
    target_nonfinite: int = 0
    target_shape: tuple[int, ...] = ()
    target_dtype: str = ""
    error: str | None = None  # the module raised (its message), or why it was not compared
    reference_norm: float | None = None  # ‖reference output‖₂ over the finite elements: the scale of the errors

    def diverges(self, criteria: Criteria) -> bool:
        """The verdict's threshold rules (rules.py), applied to this module output."""
        if self.error is not None:
            return not self.error.startswith("not ")  # it raised or changed shape; "not reached" is no verdict
        if self.target_nonfinite > self.reference_nonfinite or self.cosine is None:
            return True
        return not all(rule.holds(getattr(self, rule.layer_metric)) for rule in criteria.threshold_rules())


@dataclass(frozen=True)
class LayerRow:
    order: int  # when the module's output was produced, from 0
    name: str  # qualified module name, `name#k` for the k-th call
    element: str  # "" for a tensor output; "[0]", "[1]" or "[key]" for a tuple / dict element
    module_type: str
    shape: tuple[int, ...]
    dtype: str
    accumulated: LayerMetrics
    local: LayerMetrics

    @property
    def label(self) -> str:
        return self.name + self.element


@dataclass(frozen=True)
class LayerReport:
    target: str
    samples: int
    criteria: Criteria
    rows: tuple[LayerRow, ...]
    first_divergent: str | None  # local mode: the culprit
    first_divergent_accumulated: str | None
    worst_local: tuple[str, ...]  # up to TOP_COUNT labels, largest local rel_l2 first
    notes: tuple[str, ...] = ()

    def row(self, label: str) -> LayerRow | None:
        return next((r for r in self.rows if r.label == label), None)
