"""The criteria a target can be judged by (`--criteria NAME`, README "Criteria"): portproof's own rules and
the presets of the tools reviewers use, each with its formula and its source. A criterion turns one target's
evidence (its output comparisons, the output tensors, its task accuracy) into one CriterionVerdict: pass or
fail, and the measured quantities that decided it. The first criterion asked for decides a target's status.

Criteria are registered by name (`register_criterion`); a plugin adds its own through the `portproof.criteria`
entry point group. Importing this module imports no torch: the report reads the registered names back, and
only judging a target (in the session) computes on tensors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Mapping, Protocol

from .config import Criteria
from .errors import ConfigError, PortproofError, describe
from .results import Accuracy, CriterionVerdict, OutputComparison, TargetAccuracy, Term
from .rules import rule_of

ENTRY_POINT_GROUP = "portproof.criteria"
_REGISTERED: dict[str, type] = {}

# torch.testing.assert_close's default (rtol, atol) by dtype (torch/testing/_comparison.py, `_DTYPE_PRECISIONS`;
# a dtype not listed gets (0, 0)). Held here, not read from torch's private table, so the report needs no torch.
TORCH_TESTING_TOLERANCES = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
                            "float64": (1e-7, 1e-7)}
POLYGRAPHY_TOLERANCE = 1e-5  # Polygraphy's default atol and rtol (polygraphy run --atol / --rtol)
# msprobe's accuracy judgement (Ascend, "计算精度评价指标"): not accurate when cosine < 0.99 with max abs error
# > 0.001, or cosine < 0.9, or max abs error > 1.
MSPROBE_COSINE, MSPROBE_COSINE_FLOOR, MSPROBE_ABS, MSPROBE_ABS_CEILING = 0.99, 0.9, 0.001, 1.0


@dataclass(frozen=True)
class Evidence:
    """What a target is judged on: its comparisons, the output tensors of both sides by name, and the
    accuracy of both sides on labelled inputs (None without them)."""

    comparisons: tuple[OutputComparison, ...]
    reference: Mapping[str, Any]
    target: Mapping[str, Any]
    reference_accuracy: Accuracy | None = None
    accuracy: TargetAccuracy | None = None


class Criterion(Protocol):
    name: ClassVar[str]
    needs_labels: ClassVar[bool]  # judged on task accuracy: the inputs must be labelled

    def judge(self, evidence: Evidence, settings: Criteria) -> CriterionVerdict:
        """The target's verdict under this criterion, with the figures that decided it."""


def register_criterion(cls: type) -> type:
    """Class decorator: a criterion, known by its `name`."""
    _REGISTERED[cls.name] = cls
    return cls


def registered() -> dict[str, type]:
    """Every criterion by name: the built-in ones and those registered from Python, then the plugins'."""
    return {**_REGISTERED, **_plugins()}


@cache
def _plugins() -> dict[str, type]:
    """The criteria of the `portproof.criteria` entry points, read once per process."""
    found = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[point.name] = point.load()
        except Exception as error:
            raise PortproofError(f"the criterion plugin {point.name!r} ({point.value}) cannot be loaded: "
                                 f"{describe(error)}; fix or uninstall it") from None
    return found


def require(settings: Criteria) -> None:
    """Refuse, before any work, criteria that are not registered (or none at all)."""
    known = registered()
    unknown = [name for name in settings.presets if name not in known]
    if unknown or not settings.presets:
        what = f"unknown criterion {unknown[0]!r}" if unknown else "no criterion given"
        raise ConfigError(f"{what}; choose from {', '.join(known)}")


def judge(evidence: Evidence, settings: Criteria) -> tuple[CriterionVerdict, ...]:
    """The target under every criterion of `settings.presets`, in that order."""
    known = registered()
    return tuple(known[name]().judge(evidence, settings) for name in settings.presets)


def needs_labels(settings: Criteria) -> list[str]:
    """The criteria asked for that judge task accuracy."""
    known = registered()
    return [name for name in settings.presets if known[name].needs_labels]


@register_criterion
class Portproof:
    """portproof's own rules (rules.py, README "Verdict"): shapes, NaN/Inf, cosine, rel_l2, tie-aware top-1."""

    name: ClassVar[str] = "portproof"
    needs_labels: ClassVar[bool] = False

    def judge(self, evidence: Evidence, settings: Criteria) -> CriterionVerdict:
        for c in evidence.comparisons:
            broken = [o for o in c.outcomes if not o.held]
            if broken:
                return CriterionVerdict(self.name, False, c.name, tuple(rule_of(o).term(o) for o in broken))
        closest = min(evidence.comparisons, key=lambda c: c.cosine_similarity)
        thresholds = {rule.name for rule in settings.threshold_rules()}
        return CriterionVerdict(self.name, True, closest.name,
                                tuple(rule_of(o).term(o) for o in closest.outcomes if o.rule in thresholds))


class _PerOutput(ABC):
    """A criterion applied to each output alone: a target fails when an output does. The cell shows the first
    output that failed, or, when all passed, the one closest to failing."""

    name: ClassVar[str]
    needs_labels: ClassVar[bool] = False

    def judge(self, evidence: Evidence, settings: Criteria) -> CriterionVerdict:
        judged = []
        for c in evidence.comparisons:
            if not c.shape_match:
                return CriterionVerdict(self.name, False, c.name, (Term("shape differs"),))
            passed, terms, closeness = self.judge_output(c, evidence.reference[c.name], evidence.target[c.name], settings)
            if not passed:
                return CriterionVerdict(self.name, False, c.name, terms)
            judged.append((closeness, c.name, terms))
        closeness, output, terms = max(judged, key=lambda entry: entry[0])
        return CriterionVerdict(self.name, True, output, terms)

    @abstractmethod
    def judge_output(self, c: OutputComparison, reference: Any, target: Any,
                     settings: Criteria) -> tuple[bool, tuple[Term, ...], float]:
        """(passed, the deciding terms, how close to failing: larger is closer) for one output."""


@register_criterion
class Msprobe(_PerOutput):
    """Ascend msprobe's per-tensor judgement: not accurate when cosine < 0.99 and max abs error > 0.001, or
    cosine < 0.9, or max abs error > 1. A NaN or Inf where the reference is finite is not accurate either."""

    name: ClassVar[str] = "msprobe"

    def judge_output(self, c: OutputComparison, reference: Any, target: Any,
                     settings: Criteria) -> tuple[bool, tuple[Term, ...], float]:
        if c.nonfinite_samples or c.cosine_similarity is None:
            broken = c.target_nonfinite_where_reference_finite.total
            return False, (Term("NaN/Inf where the reference is finite", broken, ">", 0) if broken
                           else Term("nothing finite to compare"),), 1.0
        cosine, max_abs = c.cosine_similarity, c.max_abs_diff
        if max_abs > MSPROBE_ABS_CEILING:
            return False, (Term("max_abs_diff", max_abs, ">", MSPROBE_ABS_CEILING),), 1.0
        if cosine < MSPROBE_COSINE_FLOOR:
            return False, (Term("cosine_similarity", cosine, "<", MSPROBE_COSINE_FLOOR),), 1.0
        if cosine < MSPROBE_COSINE and max_abs > MSPROBE_ABS:
            return False, (Term("cosine_similarity", cosine, "<", MSPROBE_COSINE),
                           Term("max_abs_diff", max_abs, ">", MSPROBE_ABS)), 1.0
        cosine_term = Term("cosine_similarity", cosine, "≥" if cosine >= MSPROBE_COSINE else "<", MSPROBE_COSINE)
        abs_limit = MSPROBE_ABS_CEILING if cosine >= MSPROBE_COSINE else MSPROBE_ABS
        return True, (cosine_term, Term("max_abs_diff", max_abs, "≤", abs_limit)), 1.0 - cosine


class _Elementwise(_PerOutput):
    """A tolerance every element must meet: the figure is the worst element's share of its tolerance (at most
    1 when all pass), with the number of elements outside it and the tolerances in force."""

    share_name: ClassVar[str]

    def judge_output(self, c: OutputComparison, reference: Any, target: Any,
                     settings: Criteria) -> tuple[bool, tuple[Term, ...], float]:
        atol, rtol = self.tolerances(reference, target, settings)
        worst, outside = self.figures(reference, target, atol, rtol)
        terms = (Term(self.share_name, worst, "≤" if not outside else ">", 1.0), Term("elements outside", outside),
                 Term("atol", atol), Term("rtol", rtol))
        return not outside, terms, worst


@register_criterion
class Allclose(_Elementwise):
    """torch.testing.assert_close: every element |t − r| ≤ atol + rtol·|r|, with the default tolerances of the
    two outputs' dtypes (the larger of the two, as assert_close takes them) unless --atol / --rtol are given."""

    name: ClassVar[str] = "allclose"
    share_name: ClassVar[str] = "max |t−r|/(atol+rtol·|r|)"

    def tolerances(self, reference: Any, target: Any, settings: Criteria) -> tuple[float, float]:
        defaults = [TORCH_TESTING_TOLERANCES.get(str(t.dtype).removeprefix("torch."), (0.0, 0.0))
                    for t in (reference, target)]
        rtol, atol = max(d[0] for d in defaults), max(d[1] for d in defaults)
        return (settings.atol if settings.atol is not None else atol,
                settings.rtol if settings.rtol is not None else rtol)

    def figures(self, reference: Any, target: Any, atol: float, rtol: float) -> tuple[float, int]:
        from .compare import allclose_figures

        return allclose_figures(reference, target, atol, rtol)


@register_criterion
class Polygraphy(_Elementwise):
    """Polygraphy's elementwise comparison: an element passes when |t − r| ≤ atol or |t − r| / |r| ≤ rtol."""

    name: ClassVar[str] = "polygraphy"
    share_name: ClassVar[str] = "max min(|t−r|/atol, |t−r|/(rtol·|r|))"

    def tolerances(self, reference: Any, target: Any, settings: Criteria) -> tuple[float, float]:
        return (settings.atol if settings.atol is not None else POLYGRAPHY_TOLERANCE,
                settings.rtol if settings.rtol is not None else POLYGRAPHY_TOLERANCE)

    def figures(self, reference: Any, target: Any, atol: float, rtol: float) -> tuple[float, int]:
        from .compare import polygraphy_figures

        return polygraphy_figures(reference, target, atol, rtol)


@register_criterion
class Mlperf:
    """MLPerf Inference's accuracy target: the target's top-1 accuracy on the labelled inputs is at least
    `mlperf_ratio` (99%, or 99.9% for the strict variant) of the reference's."""

    name: ClassVar[str] = "mlperf"
    needs_labels: ClassVar[bool] = True

    def judge(self, evidence: Evidence, settings: Criteria) -> CriterionVerdict:
        target, reference = evidence.accuracy, evidence.reference_accuracy
        # in whole samples, with the ratio as the decimal it was written as: 99 of 100 right is 0.99 exactly
        ratio = Fraction(repr(settings.mlperf_ratio))
        passed = target.accuracy.correct_top1 * ratio.denominator >= reference.correct_top1 * ratio.numerator
        return CriterionVerdict(self.name, passed, None, (
            Term("top-1 ratio", target.ratio, "≥" if passed else "<", settings.mlperf_ratio),
            Term("top-1", target.accuracy.top1), Term("reference top-1", reference.top1)))
