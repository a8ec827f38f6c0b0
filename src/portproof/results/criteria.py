"""A target judged by one criterion (criteria.py): pass or fail, and the measured quantities that decided it.
One cell of the verdict table (targets × criteria)."""

from __future__ import annotations

import math
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

    def text(self) -> str:
        if self.measured is None:
            return self.quantity
        shown = f"{self.quantity} {_number(self.measured)}"
        return f"{shown} {self.relation} {_number(self.limit)}" if self.relation and self.limit is not None else shown


@dataclass(frozen=True)
class CriterionVerdict:
    criterion: str  # a registered criterion's name: "portproof", "msprobe", "allclose", "polygraphy", "mlperf", ...
    passed: bool
    output: str | None  # the output whose figures decided (None for a task-level criterion)
    terms: tuple[Term, ...]  # the measured quantities that decided, the deciding one first

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def figures(self) -> str:
        """The deciding figures in one line, the same in every language (metric names are summary.json's)."""
        text = ", ".join(term.text() for term in self.terms)
        return f"{self.output}: {text}" if self.output else text


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.6g}"
