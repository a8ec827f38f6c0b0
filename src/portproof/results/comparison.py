"""One output's comparison (every metric, README "Metrics"), the rule outcomes applied to it, and a
target's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NonFiniteCounts:
    nan: int
    inf: int

    @property
    def total(self) -> int:
        return self.nan + self.inf


@dataclass(frozen=True)
class TopKAgreement:
    """Class-index agreement for a classifier output, sample by sample."""

    k: int
    top1_match: bool  # every sample's top-1 class equal
    topk_match: bool  # every sample's top-k set equal (order ignored)
    top1_agreement: float  # share of samples whose top-1 is equal
    topk_agreement: float
    tie_aware_top1_match: bool  # top-1 equal, or a swap between near-tied reference logits
    tie_aware_top1_agreement: float
    forgiven_samples: tuple[int, ...]  # samples whose top-1 differs but was forgiven as a tie
    mismatched_samples: tuple[int, ...]  # samples whose top-1 differs and was not forgiven


@dataclass(frozen=True)
class DiffHistogram:
    """How |t − r| is distributed over the elements finite on both sides, in fixed log-spaced bins
    (compare.histogram_edges). Kept in the result so that plots are drawn without the tensors."""

    edges: tuple[float, ...]  # increasing; bin i holds edges[i] <= |t − r| < edges[i + 1]
    counts: tuple[int, ...]  # len(edges) - 1 bins
    zero: int  # elements where t == r exactly
    below: int  # 0 < |t − r| < edges[0]
    above: int  # |t − r| >= edges[-1]
    reference_rms: float  # sqrt(mean(r²)): an error of max_rel_l2 × this on every element gives rel_l2 = max_rel_l2

    @property
    def total(self) -> int:
        return self.zero + self.below + self.above + sum(self.counts)


@dataclass(frozen=True)
class Outcome:
    """One rule (rules.py) applied to one output: what was measured, the limit, and whether it held."""

    rule: str  # a rule's name: "shape", "finite", "comparable", "min_cosine", "max_rel_l2", "top1"
    output: str
    held: bool
    measured: float | None = None
    limit: float | None = None
    samples: tuple[int, ...] = ()  # the samples that broke the rule


@dataclass(frozen=True)
class OutputComparison:
    """Every metric of one named output (README, "Metrics"). Metric fields are None when no element
    is finite on both sides."""

    name: str
    reference_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    reference_nonfinite: NonFiniteCounts
    target_nonfinite: NonFiniteCounts
    nonfinite_samples: tuple[int, ...]  # samples where the target is NaN/Inf but the reference is finite
    target_nonfinite_where_reference_finite: NonFiniteCounts = NonFiniteCounts(0, 0)
    # positions left out of every figure by the output's mask (padding tokens; ModelInfo.output_masks)
    left_out_positions: int = 0
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    max_rel_diff: float | None = None
    rel_l2: float | None = None
    cosine_similarity: float | None = None
    min_sample_cosine: float | None = None
    sample_cosine: tuple[float, ...] = ()
    sample_rel_l2: tuple[float, ...] = ()
    sample_max_abs_diff: tuple[float, ...] = ()
    within_tolerance: dict[str, float] = field(default_factory=dict)  # "0.1%" -> share of elements
    topk: TopKAgreement | None = None
    # Noise floor, filled when a float64 reference ran: the fp32 reference's own rel_l2 against
    # float64, the target's rel_l2 against float64, and the ratio of the two.
    reference_rel_l2_vs_fp64: float | None = None
    target_rel_l2_vs_fp64: float | None = None
    noise_multiple: float | None = None
    # The verdict rules applied to this output alone (compare.assess, with the rules of rules.py).
    within_thresholds: bool = False  # every threshold rule held (cosine >= min_cosine and rel_l2 <= max_rel_l2)
    failures: tuple[str, ...] = ()
    basis: str = ""
    # |t − r| over the elements finite on both sides, binned (see DiffHistogram); None when none is.
    abs_diff_histogram: DiffHistogram | None = None
    outcomes: tuple[Outcome, ...] = ()  # each rule that applied, in the order the rules are listed

    @property
    def shape_match(self) -> bool:
        return self.reference_shape == self.target_shape


@dataclass(frozen=True)
class Verdict:
    passed: bool
    match_within_1_percent: bool  # every output: cosine >= min_cosine and rel_l2 <= max_rel_l2
    failures: tuple[str, ...]  # one line per broken rule, empty when passed
    basis: str  # the rules and the measured values they were applied to

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"
