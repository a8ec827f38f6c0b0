"""Pure comparison of a target's outputs with the reference's, and the verdict built from it.

Everything here takes tensors (or results made from them) and returns dataclasses; nothing touches
files, devices or the terminal. All arithmetic is float64 on the CPU, whatever the inputs' dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from .config import Criteria

RELATIVE_TOLERANCES = (0.001, 0.005, 0.01)
# Denominator floor of the elementwise relative error: |r| below it (zero, in practice) is replaced by it.
ZERO_REFERENCE_FLOOR = 1e-12
# The |t − r| histogram's bins: fixed and log-spaced, 4 per decade from 1e-12 to 1e6, the same for every
# output and every run, so that histograms of two runs or two targets can be laid over each other.
HISTOGRAM_DECADES = (-12, 6)
HISTOGRAM_BINS_PER_DECADE = 4


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
    """How |t − r| is distributed over the elements finite on both sides, in the fixed bins above.
    Kept in the result so that plots are drawn without the tensors."""

    edges: tuple[float, ...]  # increasing; bin i holds edges[i] <= |t − r| < edges[i + 1]
    counts: tuple[int, ...]  # len(edges) - 1 bins
    zero: int  # elements where t == r exactly
    below: int  # 0 < |t − r| < edges[0]
    above: int  # |t − r| >= edges[-1]
    reference_rms: float  # sqrt(mean(r²)): an error of max_rel_l2 × this on every element gives rel_l2 = max_rel_l2

    @property
    def total(self) -> int:
        return self.zero + self.below + self.above + sum(self.counts)


def histogram_edges() -> tuple[float, ...]:
    low, high = HISTOGRAM_DECADES
    steps = HISTOGRAM_BINS_PER_DECADE
    return tuple(10.0 ** (k / steps) for k in range(low * steps, high * steps + 1))


def diff_histogram(abs_diff: torch.Tensor, reference: torch.Tensor) -> DiffHistogram:
    """Histogram of the finite absolute differences `abs_diff` (any shape) in the fixed log-spaced bins;
    `reference` holds the same elements' reference values."""
    abs_diff = abs_diff.reshape(-1).double()
    edges = histogram_edges()
    nonzero = abs_diff[abs_diff > 0]
    # bucketize(right=True): index i means edges[i-1] <= d < edges[i]; 0 is below, len(edges) above.
    index = torch.bucketize(nonzero, torch.tensor(edges, dtype=torch.float64), right=True)
    per_index = torch.bincount(index, minlength=len(edges) + 1).tolist()
    reference = reference.reshape(-1).double()
    rms = float(torch.sqrt(torch.mean(reference * reference))) if reference.numel() else 0.0
    return DiffHistogram(
        edges=edges,
        counts=tuple(int(c) for c in per_index[1:len(edges)]),
        zero=int(abs_diff.numel() - nonzero.numel()),
        below=int(per_index[0]),
        above=int(per_index[len(edges)]),
        reference_rms=rms,
    )


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
    # The verdict rules applied to this output alone (see `assess`).
    within_thresholds: bool = False  # cosine >= min_cosine and rel_l2 <= max_rel_l2
    failures: tuple[str, ...] = ()
    basis: str = ""
    # |t − r| over the elements finite on both sides, binned (see DiffHistogram); None when none is.
    abs_diff_histogram: DiffHistogram | None = None

    @property
    def shape_match(self) -> bool:
        return self.reference_shape == self.target_shape


def count_nonfinite(tensor: torch.Tensor) -> NonFiniteCounts:
    return NonFiniteCounts(nan=int(torch.isnan(tensor).sum()), inf=int(torch.isinf(tensor).sum()))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of two flattened tensors; two all-zero tensors are identical (1.0), one alone is 0.0."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    norm_a, norm_b = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    if norm_a == 0 and norm_b == 0:
        return 1.0
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return float(torch.clamp(torch.dot(a, b) / (norm_a * norm_b), -1.0, 1.0))


def relative_l2(reference: torch.Tensor, target: torch.Tensor) -> float:
    """‖target − reference‖₂ / ‖reference‖₂; 0 when both are zero, inf when only the reference is."""
    reference, target = reference.reshape(-1).double(), target.reshape(-1).double()
    error = float(torch.linalg.vector_norm(target - reference))
    norm = float(torch.linalg.vector_norm(reference))
    if norm == 0:
        return 0.0 if error == 0 else math.inf
    return error / norm


def compare_outputs(
    reference: torch.Tensor, target: torch.Tensor, criteria: Criteria | None = None, *, name: str = "output",
    classifier: bool = False,
) -> OutputComparison:
    """Compare one output and apply the verdict rules to it. Dimension 0 is the sample dimension;
    `classifier` adds top-k agreement."""
    criteria = criteria or Criteria()
    reference = reference.detach().cpu().double()
    target = target.detach().cpu().double()
    base = dict(
        name=name,
        reference_shape=tuple(reference.shape),
        target_shape=tuple(target.shape),
        reference_nonfinite=count_nonfinite(reference),
        target_nonfinite=count_nonfinite(target),
    )
    if reference.shape != target.shape:
        return assess(OutputComparison(**base, nonfinite_samples=()), criteria)

    both_finite = torch.isfinite(reference) & torch.isfinite(target)
    target_broken = torch.isfinite(reference) & ~torch.isfinite(target)
    samples = reference.shape[0] if reference.dim() > 0 else 1
    per_sample_broken = target_broken.reshape(samples, -1).any(dim=1)
    nonfinite_samples = tuple(int(i) for i in torch.nonzero(per_sample_broken).flatten())
    base["target_nonfinite_where_reference_finite"] = count_nonfinite(target[target_broken])
    if not bool(both_finite.any()):
        return assess(OutputComparison(**base, nonfinite_samples=nonfinite_samples), criteria)

    # Non-finite elements are counted above and excluded here, so one NaN cannot hide every number.
    ref = torch.where(both_finite, reference, torch.zeros_like(reference))
    tgt = torch.where(both_finite, target, torch.zeros_like(target))
    abs_diff = (tgt - ref).abs()
    finite_abs_diff = abs_diff[both_finite]
    relative = finite_abs_diff / ref[both_finite].abs().clamp_min(ZERO_REFERENCE_FLOOR)
    ref_rows, tgt_rows, diff_rows = (t.reshape(samples, -1) for t in (ref, tgt, abs_diff))
    # a sample with no element finite on both sides has no per-sample figure: NaN (null in JSON)
    broken = set(torch.nonzero(~both_finite.reshape(samples, -1).any(dim=1)).flatten().tolist())
    sample_cosine = tuple(math.nan if i in broken else cosine(r, t) for i, (r, t) in enumerate(zip(ref_rows, tgt_rows)))

    metrics = OutputComparison(
        **base,
        nonfinite_samples=nonfinite_samples,
        max_abs_diff=float(finite_abs_diff.max()),
        mean_abs_diff=float(finite_abs_diff.mean()),
        max_rel_diff=float(relative.max()),
        rel_l2=relative_l2(ref, tgt),
        cosine_similarity=cosine(ref, tgt),
        min_sample_cosine=min((v for v in sample_cosine if not math.isnan(v)), default=None),
        sample_cosine=sample_cosine,
        sample_rel_l2=tuple(math.nan if i in broken else relative_l2(r, t) for i, (r, t) in enumerate(zip(ref_rows, tgt_rows))),
        sample_max_abs_diff=tuple(float(d.max()) for d in diff_rows),
        within_tolerance={_percent(tol): float((relative <= tol).double().mean()) for tol in RELATIVE_TOLERANCES},
        topk=top_k_agreement(ref_rows, tgt_rows, diff_rows.max(dim=1).values) if classifier else None,
        abs_diff_histogram=diff_histogram(finite_abs_diff, ref[both_finite]),
    )
    return assess(metrics, criteria)


def top_k_agreement(reference: torch.Tensor, target: torch.Tensor, sample_max_abs_diff: torch.Tensor, k: int = 5) -> TopKAgreement:
    """Per-sample class agreement of `[samples, classes]` scores.

    A top-1 swap is forgiven only when the reference's logits of the two classes differ by less than
    that sample's max_abs_diff: then the target's error alone can explain the swap.
    """
    k = min(k, reference.shape[1])
    ref_top1, tgt_top1 = reference.argmax(dim=1), target.argmax(dim=1)
    ref_topk, tgt_topk = reference.topk(k, dim=1).indices, target.topk(k, dim=1).indices
    top1_equal = ref_top1 == tgt_top1
    topk_equal = torch.tensor([set(r.tolist()) == set(t.tolist()) for r, t in zip(ref_topk, tgt_topk)])
    forgiven, mismatched = [], []
    for i in torch.nonzero(~top1_equal).flatten().tolist():
        gap = float(reference[i, ref_top1[i]] - reference[i, tgt_top1[i]])
        (forgiven if gap < float(sample_max_abs_diff[i]) else mismatched).append(i)
    samples = reference.shape[0]
    return TopKAgreement(
        k=k,
        top1_match=bool(top1_equal.all()),
        topk_match=bool(topk_equal.all()),
        top1_agreement=float(top1_equal.double().mean()),
        topk_agreement=float(topk_equal.double().mean()),
        tie_aware_top1_match=not mismatched,
        tie_aware_top1_agreement=(samples - len(mismatched)) / samples,
        forgiven_samples=tuple(forgiven),
        mismatched_samples=tuple(mismatched),
    )


def with_noise_floor(comparison: OutputComparison, reference_vs_fp64: float, target_vs_fp64: float) -> OutputComparison:
    """Attach the float64 noise floor: how many times the fp32 reference's own error the target's is."""
    if reference_vs_fp64 > 0:
        multiple = target_vs_fp64 / reference_vs_fp64
    else:
        multiple = 1.0 if target_vs_fp64 == 0 else math.inf
    return replace(
        comparison,
        reference_rel_l2_vs_fp64=reference_vs_fp64,
        target_rel_l2_vs_fp64=target_vs_fp64,
        noise_multiple=multiple,
    )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    match_within_1_percent: bool  # every output: cosine >= min_cosine and rel_l2 <= max_rel_l2
    failures: tuple[str, ...]  # one line per broken rule, empty when passed
    basis: str  # the rules and the measured values they were applied to

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"


def assess(c: OutputComparison, criteria: Criteria) -> OutputComparison:
    """Apply the README's verdict rules to one output: fill within_thresholds, failures and basis."""
    if not c.shape_match:
        failure = f"{c.name}: shape {list(c.target_shape)} differs from reference {list(c.reference_shape)}"
        return replace(c, within_thresholds=False, failures=(failure,), basis=f"{c.name}: shapes differ")
    failures: list[str] = []
    if c.nonfinite_samples:
        failures.append(
            f"{c.name}: {c.target_nonfinite_where_reference_finite.nan} NaN and {c.target_nonfinite_where_reference_finite.inf} "
            "Inf in the target where the reference "
            f"is finite (samples {_list_samples(c.nonfinite_samples)})"
        )
    if c.cosine_similarity is None or c.rel_l2 is None:
        failures.append(f"{c.name}: no element is finite on both sides")
        return replace(c, within_thresholds=False, failures=tuple(failures), basis=f"{c.name}: nothing finite to compare")
    cosine_ok = c.cosine_similarity >= criteria.min_cosine
    rel_ok = c.rel_l2 <= criteria.max_rel_l2
    parts = [
        f"cosine_similarity={c.cosine_similarity:.6f} {'≥' if cosine_ok else '<'} {criteria.min_cosine:g}",
        f"rel_l2={c.rel_l2:.3e} {'≤' if rel_ok else '>'} {criteria.max_rel_l2:g}",
    ]
    if not cosine_ok:
        failures.append(f"{c.name}: cosine_similarity {c.cosine_similarity:.6f} is below {criteria.min_cosine:g}")
    if not rel_ok:
        failures.append(f"{c.name}: rel_l2 {c.rel_l2:.3e} is above {criteria.max_rel_l2:g}")
    if c.topk is not None:
        samples = len(c.sample_cosine)
        agreed = round(c.topk.tie_aware_top1_agreement * samples)
        parts.append(f"tie-aware top-1 agrees on {agreed}/{samples} samples")
        if c.topk.forgiven_samples:
            parts.append(f"near-tie swaps forgiven on samples {_list_samples(c.topk.forgiven_samples)}")
        if not c.topk.tie_aware_top1_match:
            failures.append(f"{c.name}: top-1 class differs on samples {_list_samples(c.topk.mismatched_samples)}")
    return replace(c, within_thresholds=cosine_ok and rel_ok, failures=tuple(failures), basis=f"{c.name}: " + ", ".join(parts))


def judge(comparisons: list[OutputComparison]) -> Verdict:
    """One target's verdict: PASS only when no output broke a rule."""
    failures = tuple(f for c in comparisons for f in c.failures)
    basis = [c.basis for c in comparisons]
    if all(c.shape_match for c in comparisons):
        basis.append("shapes equal")
    if all(not c.nonfinite_samples for c in comparisons):
        basis.append("no NaN/Inf where the reference is finite")
    return Verdict(
        passed=not failures,
        match_within_1_percent=all(c.within_thresholds for c in comparisons),
        failures=failures,
        basis="; ".join(basis),
    )


def _percent(tolerance: float) -> str:
    return f"{tolerance * 100:g}%"


def _list_samples(indices: tuple[int, ...], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")
