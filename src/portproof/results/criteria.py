"""A target judged by one criterion (criteria.py): pass or fail, and the measured quantities that decided it.
One cell of the verdict table (targets × criteria)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One measured quantity of a verdict: `quantity measured relation limit`, e.g. `cosine_similarity
    0.9871 < 0.99`. Without a relation it is context (the tolerances in force, a count); without a measured
    value it is a finding on its own ("shape differs")."""

    quantity: str
    measured: float | None = None
    relation: str = ""  # "≥", "<", "≤", ">", "=" or "" for context
    limit: float | None = None


@dataclass(frozen=True)
class CriterionVerdict:
    criterion: str  # a registered criterion's name: "portproof", "msprobe", "allclose", "polygraphy", "mlperf", ...
    passed: bool
    output: str | None  # the output whose figures decided (None for a task-level criterion)
    terms: tuple[Term, ...]  # the measured quantities that decided, the deciding one first

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"
