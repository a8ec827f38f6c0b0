"""The verdict's rules, each defined once: when it applies, what it measures, when it holds, how it is worded.

A rule applied to one output's comparison gives an Outcome (rule name, measured value, limit, held or
not). compare.assess builds an output's failures and basis from the outcomes; the reports word them
through `reasons`; the layer pass asks the threshold rules whether a module diverges; the plots draw
the threshold rules' limits. Criteria.rules() lists the rules in force. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from .results.comparison import Outcome, OutputComparison
from .results.criteria import Term


class Rule(Protocol):
    name: ClassVar[str]

    def evaluate(self, c: OutputComparison) -> Outcome | None:
        """The rule applied to one output; None when it does not apply to it (no metrics, no classes)."""

    def basis(self, o: Outcome, c: OutputComparison) -> str | None:
        """The outcome as a part of the English `basis` (None: it adds nothing there)."""

    def failure(self, o: Outcome, c: OutputComparison) -> str:
        """The English sentence of a broken rule."""

    def sentence_zh(self, o: Outcome, c: OutputComparison) -> str | None:
        """The Chinese sentence of the outcome (None: nothing to say when it held)."""

    def term(self, o: Outcome) -> Term:
        """The outcome as a cell of the verdict table (criteria.py)."""


@dataclass(frozen=True)
class SameShape:
    name: ClassVar[str] = "shape"

    def evaluate(self, c: OutputComparison) -> Outcome:
        return Outcome(self.name, c.name, c.shape_match)

    def basis(self, o: Outcome, c: OutputComparison) -> str | None:
        return None if o.held else "shapes differ"

    def failure(self, o: Outcome, c: OutputComparison) -> str:
        return f"{c.name}: shape {list(c.target_shape)} differs from reference {list(c.reference_shape)}"

    def sentence_zh(self, o: Outcome, c: OutputComparison) -> str | None:
        return None if o.held else f"{c.name}：形状 {list(c.target_shape)} 与参考端 {list(c.reference_shape)} 不一致"

    def term(self, o: Outcome) -> Term:
        return Term("shape equal" if o.held else "shape differs")


@dataclass(frozen=True)
class FiniteWhereReferenceFinite:
    """No NaN or Inf in the target where the reference is finite."""

    name: ClassVar[str] = "finite"

    def evaluate(self, c: OutputComparison) -> Outcome | None:
        if not c.shape_match:
            return None
        return Outcome(self.name, c.name, not c.nonfinite_samples,
                       measured=float(c.target_nonfinite_where_reference_finite.total), limit=0.0,
                       samples=c.nonfinite_samples)

    def basis(self, o: Outcome, c: OutputComparison) -> str | None:
        return None

    def failure(self, o: Outcome, c: OutputComparison) -> str:
        broken = c.target_nonfinite_where_reference_finite
        return (f"{c.name}: {broken.nan} NaN and {broken.inf} Inf in the target where the reference is finite "
                f"(samples {list_samples(c.nonfinite_samples)})")

    def sentence_zh(self, o: Outcome, c: OutputComparison) -> str | None:
        if o.held:
            return None
        broken = c.target_nonfinite_where_reference_finite
        return (f"{c.name}：参考端为有限值处，目标端出现 {broken.nan} 个 NaN、{broken.inf} 个 Inf"
                f"（样本 {list_samples_zh(c.nonfinite_samples)}）")

    def term(self, o: Outcome) -> Term:
        return Term("NaN/Inf where the reference is finite", o.measured, "=" if o.held else ">", o.limit)


@dataclass(frozen=True)
class Comparable:
    """Some element is finite on both sides, so there are metrics to judge."""

    name: ClassVar[str] = "comparable"

    def evaluate(self, c: OutputComparison) -> Outcome | None:
        if not c.shape_match:
            return None
        return Outcome(self.name, c.name, c.cosine_similarity is not None and c.rel_l2 is not None)

    def basis(self, o: Outcome, c: OutputComparison) -> str | None:
        return None if o.held else "nothing finite to compare"

    def failure(self, o: Outcome, c: OutputComparison) -> str:
        return f"{c.name}: no element is finite on both sides"

    def sentence_zh(self, o: Outcome, c: OutputComparison) -> str | None:
        return None if o.held else f"{c.name}：两端没有同时为有限值的元素，无法比较"

    def term(self, o: Outcome) -> Term:
        return Term("comparable" if o.held else "nothing finite to compare")


@dataclass(frozen=True)
class _Threshold:
    """A limit on one metric, applied to every output with metrics, and by the layer pass to every module
    output. Subclasses say which metric, which way it holds, and the words for each side of the limit."""

    limit: float
    name: ClassVar[str]
    at_least: ClassVar[bool]  # holds when the value is >= the limit (else <=)
    metric: ClassVar[str]  # the OutputComparison field it reads
    layer_metric: ClassVar[str]  # the LayerMetrics field it reads
    number: ClassVar[str]  # how the measured value is written
    signs: ClassVar[tuple[str, str]]  # (held, broken)
    broken_en: ClassVar[str]
    broken_zh: ClassVar[str]

    def holds(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit

    def evaluate(self, c: OutputComparison) -> Outcome | None:
        if c.cosine_similarity is None or c.rel_l2 is None:
            return None
        value = getattr(c, self.metric)
        return Outcome(self.name, c.name, self.holds(value), value, self.limit)

    def basis(self, o: Outcome, c: OutputComparison) -> str | None:
        return f"{self.metric}={o.measured:{self.number}} {self.signs[0] if o.held else self.signs[1]} {o.limit:g}"

    def failure(self, o: Outcome, c: OutputComparison) -> str:
        return f"{c.name}: {self.metric} {o.measured:{self.number}} {self.broken_en} {o.limit:g}"

    def sentence_zh(self, o: Outcome, c: OutputComparison) -> str | None:
        measured = f"{c.name}：{self.metric}={o.measured:{self.number}}"
        return f"{measured} {self.signs[0]} {o.limit:g}" if o.held else f"{measured}，{self.broken_zh} {o.limit:g}"

    def term(self, o: Outcome) -> Term:
        return Term(self.metric, o.measured, self.signs[0] if o.held else self.signs[1], o.limit)


@dataclass(frozen=True)
class MinCosine(_Threshold):
    """cosine_similarity >= limit."""

    name: ClassVar[str] = "min_cosine"
    at_least: ClassVar[bool] = True
    metric: ClassVar[str] = "cosine_similarity"
    layer_metric: ClassVar[str] = "cosine"
    number: ClassVar[str] = ".6f"
    signs: ClassVar[tuple[str, str]] = ("≥", "<")
    broken_en: ClassVar[str] = "is below"
    broken_zh: ClassVar[str] = "低于下限"


@dataclass(frozen=True)
class MaxRelL2(_Threshold):
    """rel_l2 <= limit."""

    name: ClassVar[str] = "max_rel_l2"
    at_least: ClassVar[bool] = False
    metric: ClassVar[str] = "rel_l2"
    layer_metric: ClassVar[str] = "rel_l2"
    number: ClassVar[str] = ".3e"
    signs: ClassVar[tuple[str, str]] = ("≤", ">")
    broken_en: ClassVar[str] = "is above"
    broken_zh: ClassVar[str] = "超过上限"


@dataclass(frozen=True)
class TieAwareTop1:
    """Every sample's top-1 class agrees, a swap of near-tied reference logits forgiven (classifier outputs)."""

    name: ClassVar[str] = "top1"

    def evaluate(self, c: OutputComparison) -> Outcome | None:
        if c.topk is None or c.cosine_similarity is None or c.rel_l2 is None:
            return None
        return Outcome(self.name, c.name, c.topk.tie_aware_top1_match, c.topk.tie_aware_top1_agreement, 1.0,
                       samples=c.topk.mismatched_samples)

    def basis(self, o: Outcome, c: OutputComparison) -> str | None:
        samples = len(c.sample_cosine)
        text = f"tie-aware top-1 agrees on {round(o.measured * samples)}/{samples} samples"
        if c.topk.forgiven_samples:
            text += f", near-tie swaps forgiven on samples {list_samples(c.topk.forgiven_samples)}"
        return text

    def failure(self, o: Outcome, c: OutputComparison) -> str:
        return f"{c.name}: top-1 class differs on samples {list_samples(c.topk.mismatched_samples)}"

    def sentence_zh(self, o: Outcome, c: OutputComparison) -> str | None:
        samples = len(c.sample_cosine)
        text = f"{c.name}：top-1 在 {round(o.measured * samples)}/{samples} 个样本上一致（考虑近似并列）"
        if c.topk.forgiven_samples:
            text += f"，样本 {list_samples_zh(c.topk.forgiven_samples)} 的互换因两类 logit 差小于误差而不计"
        if c.topk.mismatched_samples:
            text += f"；样本 {list_samples_zh(c.topk.mismatched_samples)} 的 top-1 类别不同"
        return text

    def term(self, o: Outcome) -> Term:
        return Term("tie-aware top-1 agreement", o.measured, "=" if o.held else "<", o.limit)


RULE_TYPES = {rule.name: rule for rule in (SameShape, FiniteWhereReferenceFinite, Comparable, MinCosine, MaxRelL2,
                                           TieAwareTop1)}


def rule_of(outcome: Outcome) -> Rule:
    """The rule that gave `outcome` (to word it), rebuilt from its name and limit."""
    kind = RULE_TYPES[outcome.rule]
    return kind(outcome.limit) if issubclass(kind, _Threshold) else kind()


def evaluate(c: OutputComparison, rules) -> tuple[Outcome, ...]:
    return tuple(o for o in (rule.evaluate(c) for rule in rules) if o is not None)


def reasons(c: OutputComparison, rules, lang: str) -> list[tuple[bool, str]]:
    """Each rule's outcome on one output as (held, sentence), in `lang`. English gives the failures, or the
    basis when every rule held; Chinese a sentence per outcome. A comparison read back from an older
    summary.json without outcomes is judged again with `rules`."""
    if lang == "en":
        return [(False, f) for f in c.failures] if c.failures else [(True, c.basis)]
    sentences = []
    for outcome in c.outcomes or evaluate(c, rules):
        sentence = rule_of(outcome).sentence_zh(outcome, c)
        if sentence is not None:
            sentences.append((outcome.held, sentence))
    return sentences


def list_samples(indices: tuple[int, ...], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


def list_samples_zh(indices: tuple[int, ...], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f" 等 {len(indices)} 个" if len(indices) > limit else "")
