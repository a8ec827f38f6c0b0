"""Pure comparison of a target's outputs with the reference's, and the verdict built from it.

Everything here takes tensors (or results made from them) and returns dataclasses; nothing touches
files, devices or the terminal. All arithmetic is float64 on the CPU, whatever the inputs' dtype.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from .config import Criteria
from .results.comparison import DiffHistogram, NonFiniteCounts, OutputComparison, TopKAgreement, Verdict
from .rules import evaluate

RELATIVE_TOLERANCES = (0.001, 0.005, 0.01)
# Denominator floor of the elementwise relative error: |r| below it (zero, in practice) is replaced by it.
ZERO_REFERENCE_FLOOR = 1e-12
# The |t − r| histogram's bins: fixed and log-spaced, 4 per decade from 1e-12 to 1e6, the same for every
# output and every run, so that histograms of two runs or two targets can be laid over each other.
HISTOGRAM_DECADES = (-12, 6)
HISTOGRAM_BINS_PER_DECADE = 4


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


def relative_l2(reference: torch.Tensor, target: torch.Tensor, keep: torch.Tensor | None = None) -> float:
    """‖target − reference‖₂ / ‖reference‖₂ over the positions `keep` holds (all without it); 0 when both are
    zero, inf when only the reference is."""
    if keep is not None:
        reference, target = left_out_as_zero(reference, keep), left_out_as_zero(target, keep)
    reference, target = reference.reshape(-1).double(), target.reshape(-1).double()
    error = float(torch.linalg.vector_norm(target - reference))
    norm = float(torch.linalg.vector_norm(reference))
    if norm == 0:
        return 0.0 if error == 0 else math.inf
    return error / norm


def left_out_as_zero(tensor: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`tensor` with zeros where `keep` (a boolean tensor over its leading dimensions) is False: a zero on both
    sides adds nothing to a norm or a dot product."""
    return tensor.masked_fill(~expand_keep(keep, tensor), 0)


def expand_keep(keep: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`keep` ([samples, positions]) broadcast over the trailing dimensions of `like`."""
    keep = keep.to(device=like.device, dtype=torch.bool)
    return keep.reshape(*keep.shape, *(1,) * (like.dim() - keep.dim())).expand_as(like)


def compare_outputs(
    reference: torch.Tensor, target: torch.Tensor, criteria: Criteria | None = None, *, name: str = "output",
    classifier: bool = False, keep: torch.Tensor | None = None,
) -> OutputComparison:
    """Compare one output and apply the verdict rules to it. Dimension 0 is the sample dimension;
    `classifier` adds top-k agreement. `keep`, a boolean tensor over the leading dimensions ([samples,
    positions]: an attention mask), leaves the other positions out of every figure, non-finite counts
    included; the per-sample figures stay per sample."""
    criteria = criteria or Criteria()
    reference = reference.detach().cpu().double()
    target = target.detach().cpu().double()
    considered = None
    if keep is not None and reference.shape == target.shape:
        considered = expand_keep(keep.cpu(), reference)
        reference, target = reference.masked_fill(~considered, 0), target.masked_fill(~considered, 0)
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
    if considered is not None:
        both_finite &= considered
        base["left_out_positions"] = int((keep == 0).sum())
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


def allclose_figures(reference: torch.Tensor, target: torch.Tensor, atol: float, rtol: float) -> tuple[float, int]:
    """torch.testing.assert_close's elementwise test, |t − r| ≤ atol + rtol·|r| (torch.isclose, NaN never
    close), in float64: the largest |t − r| / (atol + rtol·|r|), at most 1 when every element is close (inf
    when a non-finite one is not), and the number of elements that are not close."""
    reference, target = reference.detach().cpu().double(), target.detach().cpu().double()
    close = torch.isclose(target, reference, rtol=rtol, atol=atol, equal_nan=False)
    shares = _share((target - reference).abs(), atol + rtol * reference.abs())
    return _worst(shares, reference, target, close), int((~close).sum())


def polygraphy_figures(reference: torch.Tensor, target: torch.Tensor, atol: float, rtol: float) -> tuple[float, int]:
    """Polygraphy's elementwise check: an element mismatches when |t − r| > atol and |t − r| / |r| > rtol
    (it passes when either error is within its tolerance); a NaN, or an Inf the other side does not share,
    mismatches too. In float64: the largest min(|t − r| / atol, |t − r| / (rtol·|r|)), at most 1 when no
    element mismatches, and the number of elements that mismatch."""
    reference, target = reference.detach().cpu().double(), target.detach().cpu().double()
    abs_diff = (target - reference).abs()
    finite = torch.isfinite(reference) & torch.isfinite(target)
    mismatched = (finite & (abs_diff > atol) & (abs_diff > rtol * reference.abs())) | (~finite & (target != reference))
    shares = torch.minimum(_share(abs_diff, torch.full_like(abs_diff, atol)), _share(abs_diff, rtol * reference.abs()))
    return _worst(shares, reference, target, ~mismatched), int(mismatched.sum())


def _share(error: torch.Tensor, tolerance: torch.Tensor) -> torch.Tensor:
    """error / tolerance, elementwise: 0 where there is no error (even with no tolerance), inf where only the
    tolerance is 0."""
    return torch.where(error == 0, torch.zeros_like(error), error / tolerance)


def _worst(shares: torch.Tensor, reference: torch.Tensor, target: torch.Tensor, passed: torch.Tensor) -> float:
    """The largest share over the elements finite on both sides; inf when a non-finite element failed."""
    finite = torch.isfinite(reference) & torch.isfinite(target)
    if bool((~finite & ~passed).any()):
        return math.inf
    return float(shares[finite].max()) if bool(finite.any()) else 0.0


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


def assess(c: OutputComparison, criteria: Criteria) -> OutputComparison:
    """Apply the rules in force (rules.py) to one output: fill outcomes, within_thresholds, failures and basis."""
    rules = criteria.rules()
    outcomes = evaluate(c, rules)
    by_name = {rule.name: rule for rule in rules}
    parts = [part for o in outcomes if (part := by_name[o.rule].basis(o, c)) is not None]
    thresholds = [o for o in outcomes if o.rule in {rule.name for rule in criteria.threshold_rules()}]
    return replace(
        c,
        outcomes=outcomes,
        within_thresholds=bool(thresholds) and all(o.held for o in thresholds),
        failures=tuple(by_name[o.rule].failure(o, c) for o in outcomes if not o.held),
        basis=f"{c.name}{f' ({c.left_out_positions} padding positions left out)' if c.left_out_positions else ''}: "
              + ", ".join(parts),
    )


def judge(comparisons: list[OutputComparison], features_only: bool = False) -> Verdict:
    """One target's verdict: PASS only when no output broke a rule. `features_only`: the model has no class
    output, which the basis says (no top-k applies)."""
    failures = tuple(f for c in comparisons for f in c.failures)
    basis = [c.basis for c in comparisons]
    if features_only:
        basis.append("feature outputs only: judged by cosine and rel_l2, no top-k")
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
