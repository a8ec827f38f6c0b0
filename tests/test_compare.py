"""compare: metrics, top-k agreement, verdict rules and noise floor, checked against values computed
independently (by hand, or with numpy in float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from portproof.compare import (
    RELATIVE_TOLERANCES,
    ZERO_REFERENCE_FLOOR,
    NonFiniteCounts,
    OutputComparison,
    Verdict,
    assess,
    compare_outputs,
    cosine,
    count_nonfinite,
    judge,
    relative_l2,
    with_noise_floor,
)
from portproof.backends.torch_eager import EagerBackend
from portproof.config import Criteria

from helpers import run_check, substitute

LOOSE = Criteria(min_cosine=-1.0, max_rel_l2=math.inf)  # never fails on cosine / rel_l2
TOLERANCE_KEYS = {"0.1%", "0.5%", "1%"}


def t64(values) -> torch.Tensor:
    return torch.tensor(np.asarray(values, dtype=np.float64))


# --- independent numpy reference implementation ----------------------------------------------------


def np_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def np_expected(ref: np.ndarray, tgt: np.ndarray) -> dict:
    """Metrics over the elements finite on both sides, per sample along dimension 0 (float64)."""
    ref = np.asarray(ref, dtype=np.float64)
    tgt = np.asarray(tgt, dtype=np.float64)
    mask = np.isfinite(ref) & np.isfinite(tgt)
    r, t = ref[mask], tgt[mask]
    diff = np.abs(t - r)
    rel = diff / np.abs(r)  # callers use no zero reference here
    rows_r = ref.reshape(ref.shape[0], -1)
    rows_t = tgt.reshape(tgt.shape[0], -1)
    rows_m = mask.reshape(ref.shape[0], -1)
    sample_cos, sample_rel, sample_max = [], [], []
    for rr, tt, mm in zip(rows_r, rows_t, rows_m):
        rr, tt = rr[mm], tt[mm]
        sample_cos.append(np_cos(rr, tt))
        sample_rel.append(float(np.linalg.norm(tt - rr) / np.linalg.norm(rr)))
        sample_max.append(float(np.abs(tt - rr).max()))
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_rel_diff": float(rel.max()),
        "rel_l2": float(np.linalg.norm(t - r) / np.linalg.norm(r)),
        "cosine": np_cos(r, t),
        "sample_cosine": sample_cos,
        "sample_rel_l2": sample_rel,
        "sample_max_abs_diff": sample_max,
        "within": {"0.1%": float(np.mean(rel <= 0.001)), "0.5%": float(np.mean(rel <= 0.005)),
                   "1%": float(np.mean(rel <= 0.01))},
    }


def assert_matches(c: OutputComparison, e: dict, rel: float = 1e-12) -> None:
    assert c.max_abs_diff == pytest.approx(e["max_abs_diff"], rel=rel)
    assert c.mean_abs_diff == pytest.approx(e["mean_abs_diff"], rel=rel)
    assert c.max_rel_diff == pytest.approx(e["max_rel_diff"], rel=rel)
    assert c.rel_l2 == pytest.approx(e["rel_l2"], rel=rel)
    assert c.cosine_similarity == pytest.approx(e["cosine"], rel=rel)
    assert c.sample_cosine == pytest.approx(e["sample_cosine"], rel=rel)
    assert c.min_sample_cosine == pytest.approx(min(e["sample_cosine"]), rel=rel)
    assert c.sample_rel_l2 == pytest.approx(e["sample_rel_l2"], rel=rel)
    assert c.sample_max_abs_diff == pytest.approx(e["sample_max_abs_diff"], rel=rel)
    assert set(c.within_tolerance) == TOLERANCE_KEYS
    for key, share in e["within"].items():
        assert c.within_tolerance[key] == pytest.approx(share, abs=1e-15), key


# --- cosine / relative_l2 / count_nonfinite ----------------------------------------------------------


def test_cosine_known_values():
    assert cosine(t64([1, 2, 3]), t64([4, 5, 6])) == pytest.approx(32 / math.sqrt(14 * 77), rel=1e-14)
    assert cosine(t64([3, 4]), t64([4, 3])) == pytest.approx(24 / 25, rel=1e-15)
    assert cosine(t64([1, 0]), t64([0, 1])) == pytest.approx(0.0, abs=1e-15)
    assert cosine(t64([1, -2, 3]), t64([-1, 2, -3])) == pytest.approx(-1.0, rel=1e-15)
    assert cosine(t64([1, -2, 3]), t64([2, -4, 6])) == pytest.approx(1.0, rel=1e-15)


def test_cosine_flattens_and_stays_within_minus_one_and_one():
    a = t64([[1.0, 2.0], [3.0, 4.0]])
    assert cosine(a, t64([1.0, 2.0, 3.0, 4.0])) == pytest.approx(1.0, rel=1e-15)
    v = torch.from_numpy(np.random.default_rng(0).normal(size=1000))
    assert -1.0 <= cosine(v, 3.0 * v) <= 1.0
    assert -1.0 <= cosine(v, -7.0 * v) <= 1.0
    assert cosine(v, -7.0 * v) == pytest.approx(-1.0, rel=1e-14)


def test_cosine_zero_vectors():
    zero = torch.zeros(4)
    assert cosine(zero, zero) == 1.0
    assert cosine(zero, t64([1, 2, 3, 4])) == 0.0
    assert cosine(t64([1, 2, 3, 4]), zero) == 0.0


def test_cosine_is_float64_for_half_inputs():
    # In float16, 300² + 400² = 250000 overflows (max 65504); in float64 the answer is 24/25.
    a = torch.tensor([300.0, 400.0], dtype=torch.float16)
    b = torch.tensor([400.0, 300.0], dtype=torch.float16)
    assert cosine(a, b) == pytest.approx(0.96, rel=1e-15)


def test_relative_l2_known_values():
    assert relative_l2(t64([3, 4]), t64([3, 4])) == 0.0
    assert relative_l2(t64([3, 4]), t64([4, 3])) == pytest.approx(math.sqrt(2) / 5, rel=1e-15)
    assert relative_l2(t64([3, 4]), t64([0, 0])) == pytest.approx(1.0, rel=1e-15)
    assert relative_l2(t64([[1, 2], [2, 4]]), t64([[1, 2], [2, 6]])) == pytest.approx(2 / 5, rel=1e-15)
    # the reference is the denominator: the argument order matters
    assert relative_l2(t64([1, 0]), t64([2, 0])) == pytest.approx(1.0)
    assert relative_l2(t64([2, 0]), t64([1, 0])) == pytest.approx(0.5)


def test_relative_l2_zero_reference():
    assert relative_l2(torch.zeros(3), torch.zeros(3)) == 0.0
    assert relative_l2(torch.zeros(3), t64([0, 1e-30, 0])) == math.inf
    assert relative_l2(torch.zeros(2), t64([-5, 0])) == math.inf


def test_relative_l2_is_float64_for_low_precision_inputs():
    reference = torch.tensor([1.0], dtype=torch.float32)
    target = torch.tensor([1.0 + 2.0 ** -23], dtype=torch.float32)  # one float32 ulp above 1
    assert relative_l2(reference, target) == 2.0 ** -23
    # int tensors are accepted too
    assert relative_l2(torch.tensor([3, 4]), torch.tensor([3, 5])) == pytest.approx(1 / 5, rel=1e-15)


def test_count_nonfinite():
    counts = count_nonfinite(t64([1.0, math.nan, math.inf, -math.inf, math.nan, 0.0]))
    assert counts == NonFiniteCounts(nan=2, inf=2)
    assert counts.total == 4
    assert count_nonfinite(torch.ones(3)).total == 0


# --- compare_outputs: metrics --------------------------------------------------------------------------

REF = np.array([
    [1.0, -2.0, 4.0, 0.5, 3.0],
    [10.0, 3.0, -1.0, 8.0, -6.0],
    [0.25, 7.0, -5.0, 2.0, 1.5],
])
# Signed relative errors per element, none on a tolerance boundary:
#   |err| <= 0.1%: 0.0004, 0, 0.0009, 0, 0.0002, 0.0007          -> 6/15
#   |err| <= 0.5%: the above and 0.003, 0.0045, 0.002             -> 9/15
#   |err| <= 1%:   the above and 0.008, 0.009, 0.006              -> 12/15
REL_ERR = np.array([
    [0.0004, -0.003, 0.008, 0.02, 0.0],
    [-0.0009, 0.0045, 0.0, -0.009, 0.05],
    [0.002, -0.0002, 0.012, 0.0007, -0.006],
])
TGT = REF * (1.0 + REL_ERR)


def test_identical_tensors():
    ref = t64(REF)
    c = compare_outputs(ref, ref.clone(), name="logits")
    assert c.name == "logits"
    assert c.reference_shape == c.target_shape == (3, 5)
    assert c.shape_match
    assert c.max_abs_diff == 0.0
    assert c.mean_abs_diff == 0.0
    assert c.max_rel_diff == 0.0
    assert c.rel_l2 == 0.0
    assert c.cosine_similarity == pytest.approx(1.0, rel=1e-15)
    assert c.sample_cosine == pytest.approx((1.0, 1.0, 1.0), rel=1e-15)
    assert c.sample_rel_l2 == (0.0, 0.0, 0.0)
    assert c.sample_max_abs_diff == (0.0, 0.0, 0.0)
    assert c.within_tolerance == {"0.1%": 1.0, "0.5%": 1.0, "1%": 1.0}
    assert c.reference_nonfinite == c.target_nonfinite == NonFiniteCounts(0, 0)
    assert c.nonfinite_samples == ()
    assert c.topk is None
    assert c.within_thresholds is True
    assert c.failures == ()
    assert c.noise_multiple is None


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_known_perturbation_against_numpy(dtype):
    ref, tgt = t64(REF).to(dtype), t64(TGT).to(dtype)
    # what the function sees, exactly, in float64
    e = np_expected(ref.double().numpy(), tgt.double().numpy())
    c = compare_outputs(ref, tgt)
    assert_matches(c, e)
    # hand-checkable anchors
    assert c.within_tolerance == pytest.approx({"0.1%": 6 / 15, "0.5%": 9 / 15, "1%": 12 / 15})
    assert c.max_rel_diff == pytest.approx(0.05, rel=1e-5)  # the -6 -> -6.3 element (float32 rounding)
    assert c.max_abs_diff == pytest.approx(0.3, rel=1e-5)
    assert c.sample_max_abs_diff == pytest.approx((0.032, 0.3, 0.06), rel=1e-5)  # 4*0.8%, 6*5%, 5*1.2%
    assert list(RELATIVE_TOLERANCES) == [0.001, 0.005, 0.01]


def test_per_sample_metrics_flatten_all_but_dimension_zero():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(2, 3, 4))
    tgt = ref + rng.normal(scale=0.05, size=ref.shape)
    tgt[1] = -0.5 * ref[1]  # a sample pointing the other way
    c = compare_outputs(t64(ref), t64(tgt), LOOSE)
    e = np_expected(ref, tgt)
    assert_matches(c, e)
    assert c.sample_cosine[1] == pytest.approx(-1.0, rel=1e-14)
    assert c.min_sample_cosine == pytest.approx(-1.0, rel=1e-14)
    assert c.sample_rel_l2[1] == pytest.approx(1.5, rel=1e-14)


def test_one_dimensional_output_has_one_element_per_sample():
    c = compare_outputs(t64([1.0, -2.0, 4.0]), t64([1.0, 2.0, 4.5]), LOOSE)
    assert c.sample_cosine == (1.0, -1.0, 1.0)
    assert c.min_sample_cosine == -1.0
    assert c.sample_rel_l2 == pytest.approx((0.0, 2.0, 0.125))
    assert c.sample_max_abs_diff == pytest.approx((0.0, 4.0, 0.5))
    assert c.max_abs_diff == 4.0
    assert c.mean_abs_diff == pytest.approx(4.5 / 3)


def test_scalar_output_is_one_sample():
    c = compare_outputs(torch.tensor(2.0, dtype=torch.float64), torch.tensor(2.01, dtype=torch.float64))
    assert c.reference_shape == ()
    assert c.max_abs_diff == pytest.approx(0.01, rel=1e-12)
    assert c.rel_l2 == pytest.approx(0.005, rel=1e-12)
    assert c.sample_cosine == (1.0,)
    assert c.sample_rel_l2 == pytest.approx((0.005,), rel=1e-12)
    assert c.within_tolerance == {"0.1%": 0.0, "0.5%": 1.0, "1%": 1.0}
    assert c.within_thresholds


def test_requires_grad_inputs_are_accepted():
    ref = t64(REF).requires_grad_()
    c = compare_outputs(ref * 1.0, ref * 1.001)
    assert c.rel_l2 == pytest.approx(0.001, rel=1e-9)


def test_zero_reference_elements_use_the_floor():
    assert ZERO_REFERENCE_FLOOR == 1e-12
    ref = t64([[0.0, 1.0, 2.0, 0.0]])
    tgt = t64([[1e-6, 1.0, 2.0, 0.0]])
    c = compare_outputs(ref, tgt, LOOSE)
    assert c.max_abs_diff == 1e-6
    assert c.mean_abs_diff == pytest.approx(1e-6 / 4)
    assert c.max_rel_diff == pytest.approx(1e-6 / 1e-12, rel=1e-12)  # 1e6, not inf or nan
    assert math.isfinite(c.max_rel_diff)
    # the 0 -> 0 element has no error; only the 0 -> 1e-6 element is outside every tolerance
    assert c.within_tolerance == {"0.1%": 0.75, "0.5%": 0.75, "1%": 0.75}
    assert c.rel_l2 == pytest.approx(1e-6 / math.sqrt(5), rel=1e-12)


def test_all_zero_reference_and_target():
    c = compare_outputs(torch.zeros(2, 3), torch.zeros(2, 3))
    assert c.max_abs_diff == 0.0 and c.max_rel_diff == 0.0
    assert c.cosine_similarity == 1.0
    assert c.rel_l2 == 0.0
    assert c.sample_cosine == (1.0, 1.0)
    assert c.within_tolerance == {"0.1%": 1.0, "0.5%": 1.0, "1%": 1.0}
    assert c.within_thresholds and c.failures == ()


def test_all_zero_reference_nonzero_target_fails():
    c = compare_outputs(torch.zeros(1, 2), t64([[0.0, 0.5]]), name="out")
    assert c.rel_l2 == math.inf
    assert c.cosine_similarity == 0.0
    assert c.max_rel_diff == pytest.approx(0.5e12)
    assert not c.within_thresholds
    assert "out: cosine_similarity 0.000000 is below 0.99" in c.failures
    assert "out: rel_l2 inf is above 0.01" in c.failures


# --- compare_outputs: shapes -------------------------------------------------------------------------


@pytest.mark.parametrize("target_shape", [(3, 2), (2, 4), (2, 3, 1), (6,)])
def test_shape_mismatch(target_shape):
    ref = torch.ones(2, 3)
    tgt = torch.ones(target_shape)
    c = compare_outputs(ref, tgt, name="logits", classifier=True)
    assert not c.shape_match
    assert c.reference_shape == (2, 3) and c.target_shape == target_shape
    for metric in (c.max_abs_diff, c.mean_abs_diff, c.max_rel_diff, c.rel_l2, c.cosine_similarity,
                   c.min_sample_cosine):
        assert metric is None
    assert c.sample_cosine == () and c.within_tolerance == {}
    assert c.topk is None
    assert c.nonfinite_samples == ()
    assert c.within_thresholds is False
    assert c.failures == (f"logits: shape {list(target_shape)} differs from reference [2, 3]",)
    assert "shape" in c.failures[0]
    assert c.basis == "logits: shapes differ"
    verdict = judge([c])
    assert not verdict.passed and verdict.status == "FAIL"
    assert not verdict.match_within_1_percent
    assert "shapes equal" not in verdict.basis


def test_shape_mismatch_still_counts_nonfinite():
    c = compare_outputs(t64([[math.nan, 1.0]]), t64([[math.inf, 1.0, math.nan]]))
    assert c.reference_nonfinite == NonFiniteCounts(nan=1, inf=0)
    assert c.target_nonfinite == NonFiniteCounts(nan=1, inf=1)


# --- compare_outputs: NaN / Inf ------------------------------------------------------------------------


def _nonfinite_case():
    ref = np.arange(1.0, 13.0).reshape(3, 4)
    tgt = ref * 1.001
    tgt[1, 0] = math.nan
    tgt[2, 3] = math.inf
    tgt[2, 1] = -math.inf
    return ref, tgt


def test_nonfinite_target_where_reference_finite():
    ref, tgt = _nonfinite_case()
    c = compare_outputs(t64(ref), t64(tgt), name="out")
    assert c.target_nonfinite == NonFiniteCounts(nan=1, inf=2)
    assert c.reference_nonfinite == NonFiniteCounts(nan=0, inf=0)
    assert c.nonfinite_samples == (1, 2)
    # metrics over the 9 elements finite on both sides only
    e = np_expected(ref, tgt)
    assert_matches(c, e)
    assert c.rel_l2 == pytest.approx(0.001, rel=1e-9)
    assert c.mean_abs_diff == pytest.approx(0.001 * (ref.sum() - 5 - 10 - 12) / 9, rel=1e-9)
    assert c.sample_max_abs_diff == pytest.approx((0.004, 0.008, 0.011), rel=1e-9)
    # cosine and rel_l2 are fine: the NaN/Inf alone breaks the verdict
    assert c.within_thresholds
    assert c.failures == ("out: 1 NaN and 2 Inf in the target where the reference is finite (samples 1, 2)",)
    verdict = judge([c])
    assert not verdict.passed
    assert verdict.match_within_1_percent
    assert "no NaN/Inf where the reference is finite" not in verdict.basis


def test_nan_and_inf_in_both_are_excluded_and_not_a_failure():
    ref = np.arange(1.0, 10.0).reshape(3, 3)
    tgt = ref * 1.002
    ref[0, 1] = tgt[0, 1] = math.nan
    ref[2, 2] = tgt[2, 2] = math.inf
    c = compare_outputs(t64(ref), t64(tgt), name="out")
    assert c.reference_nonfinite == NonFiniteCounts(nan=1, inf=1)
    assert c.target_nonfinite == NonFiniteCounts(nan=1, inf=1)
    assert c.nonfinite_samples == ()
    assert_matches(c, np_expected(ref, tgt))
    assert c.rel_l2 == pytest.approx(0.002, rel=1e-9)
    assert c.failures == ()
    verdict = judge([c])
    assert verdict.passed
    assert "no NaN/Inf where the reference is finite" in verdict.basis


def test_nan_in_reference_only_is_excluded_and_not_a_target_failure():
    ref = np.array([[1.0, math.nan], [3.0, 4.0]])
    tgt = np.array([[1.0, 2.0], [3.0, 4.0]])
    c = compare_outputs(t64(ref), t64(tgt))
    assert c.nonfinite_samples == ()
    assert c.max_abs_diff == 0.0
    assert c.rel_l2 == 0.0
    assert c.failures == ()


def test_nonfinite_failure_counts_only_elements_where_reference_is_finite():
    """BUG (compare.py, assess): the message says "N NaN ... in the target where the reference is
    finite" but N is the target's total NaN count, including NaN where the reference is NaN too."""
    ref = np.array([[math.nan, 1.0], [2.0, 3.0]])
    tgt = np.array([[math.nan, 1.0], [2.0, math.nan]])  # one NaN shared, one only in the target
    c = compare_outputs(t64(ref), t64(tgt), name="out")
    assert c.nonfinite_samples == (1,)
    assert c.failures[0] == "out: 1 NaN and 0 Inf in the target where the reference is finite (samples 1)"


def test_all_nan_target_has_no_metrics_and_fails():
    ref = t64([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    tgt = torch.full((2, 3), math.nan, dtype=torch.float64)
    c = compare_outputs(ref, tgt, name="out", classifier=True)
    assert c.target_nonfinite == NonFiniteCounts(nan=6, inf=0)
    assert c.nonfinite_samples == (0, 1)
    for metric in (c.max_abs_diff, c.mean_abs_diff, c.max_rel_diff, c.rel_l2, c.cosine_similarity,
                   c.min_sample_cosine):
        assert metric is None
    assert c.sample_cosine == () and c.within_tolerance == {} and c.topk is None
    assert c.within_thresholds is False
    assert c.failures == (
        "out: 6 NaN and 0 Inf in the target where the reference is finite (samples 0, 1)",
        "out: no element is finite on both sides",
    )
    assert c.basis == "out: nothing finite to compare"
    verdict = judge([c])
    assert not verdict.passed and not verdict.match_within_1_percent


def test_all_nan_reference_fails_without_blaming_the_target():
    c = compare_outputs(torch.full((2, 2), math.nan), torch.ones(2, 2), name="out")
    assert c.nonfinite_samples == ()
    assert c.rel_l2 is None
    assert c.failures == ("out: no element is finite on both sides",)
    assert not judge([c]).passed


def test_nonfinite_samples_list_is_shortened_in_the_message():
    ref = torch.ones(10, 2)
    tgt = torch.ones(10, 2)
    tgt[:, 0] = math.inf
    c = compare_outputs(ref, tgt, name="out")
    assert c.nonfinite_samples == tuple(range(10))
    assert c.failures[0] == (
        "out: 0 NaN and 10 Inf in the target where the reference is finite (samples 0, 1, 2, 3, 4, 5, 6, 7 and 2 more)"
    )


# A whole check whose target returns NaN/Inf (issue 4): a FAIL with the counts, reports written, no crash


class NonFiniteBackend(EagerBackend):
    """fp16 overflow as it shows: NaN in two logits of sample 1, Inf in one feature of sample 2."""

    def run(self, batch):
        outputs = {name: t.clone() for name, t in super().run(batch).items()}
        outputs["logits"][1, 5] = outputs["logits"][1, 7] = float("nan")
        outputs["features"][2, 0] = float("inf")
        return outputs


class AllNaNBackend(EagerBackend):
    def run(self, batch):
        return {name: torch.full_like(t, float("nan")) for name, t in super().run(batch).items()}


def test_nonfinite_target_outputs_fail_with_counts_and_samples_never_a_crash(tmp_path, monkeypatch):
    substitute(monkeypatch, {"cpu/fp16": NonFiniteBackend, "cpu/bf16": AllNaNBackend})
    code, summary = run_check(tmp_path / "out", "--num-samples", "4", "--batch-size", "4",
                              "--target", "cpu/fp16", "--target", "cpu/bf16", "--target", "cpu")
    some, every, fine = summary["targets"]
    assert code == 1 and fine["status"] == "PASS"
    assert some["status"] == "FAIL" and every["status"] == "FAIL"
    assert "logits: 2 NaN and 0 Inf in the target where the reference is finite (samples 1)" in some["verdict"]["failures"]
    assert "features: 0 NaN and 1 Inf in the target where the reference is finite (samples 2)" in some["verdict"]["failures"]
    logits = next(c for c in some["comparisons"] if c["name"] == "logits")
    assert logits["target_nonfinite"] == {"nan": 2, "inf": 0} and logits["nonfinite_samples"] == [1]
    assert "logits: no element is finite on both sides" in every["verdict"]["failures"]
    assert all((tmp_path / "out" / name).stat().st_size > 0 for name in ("report.md", "report.html", "accuracy_compare.log"))


# --- compare_outputs: low-precision inputs --------------------------------------------------------------


def test_float16_inputs_are_compared_in_float64():
    # 300² + 400² overflows float16; in float64 rel_l2 = 1/500 exactly.
    ref = torch.tensor([[300.0, 400.0]], dtype=torch.float16)
    tgt = torch.tensor([[300.0, 401.0]], dtype=torch.float16)
    c = compare_outputs(ref, tgt)
    assert c.rel_l2 == pytest.approx(1 / 500, rel=1e-14)
    assert c.cosine_similarity == pytest.approx(np_cos(np.array([300.0, 400.0]), np.array([300.0, 401.0])), rel=1e-14)
    assert c.max_abs_diff == 1.0
    assert c.max_rel_diff == pytest.approx(1 / 400, rel=1e-14)
    assert c.within_tolerance == {"0.1%": 0.5, "0.5%": 1.0, "1%": 1.0}


def test_bfloat16_target_against_float32_reference():
    ref = torch.tensor([[300.0, 400.0], [1.0, 2.0]], dtype=torch.float32)
    tgt = torch.tensor([[300.0, 402.0], [1.0078125, 2.0]], dtype=torch.bfloat16)  # both exact in bf16
    c = compare_outputs(ref, tgt)
    e = np_expected(np.array([[300.0, 400.0], [1.0, 2.0]]), np.array([[300.0, 402.0], [1.0078125, 2.0]]))
    assert_matches(c, e, rel=1e-14)
    assert c.max_abs_diff == 2.0
    assert c.sample_max_abs_diff == (2.0, 0.0078125)
    assert c.max_rel_diff == 0.0078125


def test_float16_small_difference_is_not_lost():
    ref = torch.tensor([[1.0, 1.0]], dtype=torch.float32)
    tgt = torch.tensor([[1.001953125, 1.0]], dtype=torch.float16)  # 1 + 2**-9, exact in float16
    c = compare_outputs(ref, tgt)
    assert c.max_abs_diff == 2.0 ** -9
    assert c.max_rel_diff == 2.0 ** -9  # 0.195%: outside 0.1%, inside 0.5%
    assert c.mean_abs_diff == 2.0 ** -10
    assert c.within_tolerance == {"0.1%": 0.5, "0.5%": 1.0, "1%": 1.0}


# --- top-k agreement -----------------------------------------------------------------------------------


def test_topk_exact_match():
    ref = t64([[0.1, 2.0, -1.0, 3.5, 0.7, 1.2], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    c = compare_outputs(ref, ref.clone(), name="logits", classifier=True)
    k = c.topk
    assert k.k == 5
    assert k.top1_match and k.topk_match and k.tie_aware_top1_match
    assert k.top1_agreement == k.topk_agreement == k.tie_aware_top1_agreement == 1.0
    assert k.forgiven_samples == () and k.mismatched_samples == ()
    assert c.failures == ()
    assert "tie-aware top-1 agrees on 2/2 samples" in c.basis
    assert "near-tie" not in c.basis


def test_topk_absent_without_classifier():
    ref = t64([[1.0, 2.0]])
    assert compare_outputs(ref, ref.flip(1)).topk is None


def test_near_tie_swap_is_forgiven():
    ref = t64([[5.0, 4.99, 1.0, 0.0, -1.0, -2.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    tgt = t64([[4.98, 4.995, 1.0, 0.0, -1.0, -2.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    # sample 0: reference gap 5 - 4.99 = 0.01 < its max_abs_diff 0.02, so the swap is explained by error
    c = compare_outputs(ref, tgt, name="logits", classifier=True)
    assert c.sample_max_abs_diff[0] == pytest.approx(0.02)
    k = c.topk
    assert k.top1_match is False
    assert k.top1_agreement == 0.5
    assert k.tie_aware_top1_match is True
    assert k.tie_aware_top1_agreement == 1.0
    assert k.forgiven_samples == (0,)
    assert k.mismatched_samples == ()
    assert k.topk_match  # the top-5 set {0..4} is unchanged
    assert c.failures == ()
    assert "near-tie swaps forgiven on samples 0" in c.basis
    assert "tie-aware top-1 agrees on 2/2 samples" in c.basis
    assert judge([c]).passed


def test_large_gap_swap_is_not_forgiven():
    ref = t64([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 4.0, 0.0, 1.0, 2.0, 3.0]])
    tgt = t64([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [6.4, 7.6, 0.0, 1.0, 2.0, 3.0]])
    # sample 1: reference gap 6 >= its max_abs_diff 3.6
    c = compare_outputs(ref, tgt, LOOSE, name="logits", classifier=True)
    k = c.topk
    assert not k.top1_match and not k.tie_aware_top1_match
    assert k.mismatched_samples == (1,)
    assert k.forgiven_samples == ()
    assert k.top1_agreement == 0.5 and k.tie_aware_top1_agreement == 0.5
    assert c.failures == ("logits: top-1 class differs on samples 1",)
    assert "top-1" in c.failures[0]
    assert "tie-aware top-1 agrees on 1/2 samples" in c.basis
    verdict = judge([c])
    assert not verdict.passed
    assert verdict.match_within_1_percent  # LOOSE thresholds hold; only the class rule failed


def test_gap_equal_to_max_abs_diff_is_not_forgiven():
    ref = t64([[2.0, 1.0, 0.0]])
    tgt = t64([[1.0, 2.0, 0.0]])  # gap 1 == max_abs_diff 1: "less than" is strict
    k = compare_outputs(ref, tgt, LOOSE, classifier=True).topk
    assert k.mismatched_samples == (0,)
    assert k.forgiven_samples == ()


def test_forgiveness_uses_each_samples_own_max_abs_diff():
    # sample 0: near tie (gap 0.01) but its own error is only 0.006 -> not forgiven, even though
    # sample 1 has a large error (5) that would forgive it if the global max were used.
    ref = t64([[5.0, 4.99, 0.0, 0.0], [0.0, 0.0, 100.0, 0.0]])
    tgt = t64([[4.994, 4.996, 0.0, 0.0], [5.0, 0.0, 100.0, 0.0]])
    c = compare_outputs(ref, tgt, LOOSE, classifier=True)
    assert c.sample_max_abs_diff == pytest.approx((0.006, 5.0))
    assert c.topk.mismatched_samples == (0,)
    assert c.topk.forgiven_samples == ()


def test_top5_compared_as_sets():
    ref = t64([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    tgt = t64([
        [6.0, 5.0, 4.0, 2.0, 3.0, 1.0, 0.0],  # top-5 reordered, same set {0..4}
        [6.0, 5.0, 4.0, 3.0, 1.0, 2.5, 0.0],  # class 5 replaces class 4 in the top-5
    ])
    k = compare_outputs(ref, tgt, LOOSE, classifier=True).topk
    assert k.k == 5
    assert k.top1_match
    assert not k.topk_match
    assert k.topk_agreement == 0.5


def test_same_top5_set_in_a_different_order_matches():
    ref = t64([[9.0, 8.0, 7.0, 6.0, 5.0, 0.0, -1.0]])
    tgt = t64([[9.0, 5.0, 6.0, 7.0, 8.0, 0.0, -1.0]])  # order of classes 1..4 reversed
    k = compare_outputs(ref, tgt, LOOSE, classifier=True).topk
    assert k.topk_match and k.topk_agreement == 1.0
    assert k.top1_match


@pytest.mark.parametrize("classes", [1, 2, 3, 4])
def test_fewer_than_five_classes(classes):
    ref = t64([list(range(classes, 0, -1))])  # descending: top-1 is class 0
    tgt = ref.flip(1)  # ascending: top-1 is the last class (same class when classes == 1)
    k = compare_outputs(ref, tgt, LOOSE, classifier=True).topk
    assert k.k == classes
    assert k.topk_match  # k == number of classes: the set is always every class
    assert k.top1_match == (classes == 1)


def test_agreement_fractions_over_four_samples():
    ref = t64([
        [3.0, 1.0, 0.0],  # exact
        [2.0, 1.99, 0.0],  # near tie, swapped by a 0.02 error: forgiven
        [10.0, 0.0, 1.0],  # large gap, swapped: mismatched
        [0.0, 0.0, 1.0],  # exact
    ])
    tgt = t64([
        [3.0, 1.0, 0.0],
        [1.98, 2.0, 0.0],
        [4.0, 6.0, 1.0],
        [0.0, 0.0, 1.0],
    ])
    c = compare_outputs(ref, tgt, LOOSE, name="logits", classifier=True)
    k = c.topk
    assert k.k == 3
    assert k.top1_agreement == 0.5
    assert k.tie_aware_top1_agreement == 0.75
    assert k.topk_agreement == 1.0
    assert k.forgiven_samples == (1,)
    assert k.mismatched_samples == (2,)
    assert not k.top1_match and not k.tie_aware_top1_match
    assert c.failures == ("logits: top-1 class differs on samples 2",)
    assert "tie-aware top-1 agrees on 3/4 samples" in c.basis
    assert "near-tie swaps forgiven on samples 1" in c.basis


# --- assess / judge / Verdict ---------------------------------------------------------------------------


def _rotated(target_cosine: float):
    """Reference [1, 0] and a target [1, e] whose cosine with it is target_cosine; rel_l2 = e."""
    e = math.sqrt(1.0 / target_cosine ** 2 - 1.0)
    ref, tgt = np.array([[1.0, 0.0]]), np.array([[1.0, e]])
    return ref, tgt, np_cos(ref[0], tgt[0]), e


def test_cosine_just_below_min_cosine_fails():
    ref, tgt, expected_cos, expected_rel = _rotated(0.9899)
    criteria = Criteria(min_cosine=0.99, max_rel_l2=1.0)
    c = compare_outputs(t64(ref), t64(tgt), criteria, name="out")
    assert c.cosine_similarity == pytest.approx(expected_cos, rel=1e-14)
    assert c.rel_l2 == pytest.approx(expected_rel, rel=1e-14)
    assert not c.within_thresholds
    assert c.failures == (f"out: cosine_similarity {expected_cos:.6f} is below 0.99",)
    assert c.failures == ("out: cosine_similarity 0.989900 is below 0.99",)
    assert c.basis == f"out: cosine_similarity={expected_cos:.6f} < 0.99, rel_l2={expected_rel:.3e} ≤ 1"
    verdict = judge([c])
    assert (verdict.passed, verdict.status, verdict.match_within_1_percent) == (False, "FAIL", False)
    assert verdict.failures == c.failures


def test_cosine_just_above_min_cosine_passes():
    ref, tgt, expected_cos, expected_rel = _rotated(0.9901)
    criteria = Criteria(min_cosine=0.99, max_rel_l2=1.0)
    c = compare_outputs(t64(ref), t64(tgt), criteria, name="out")
    assert c.cosine_similarity == pytest.approx(expected_cos, rel=1e-14)
    assert c.within_thresholds
    assert c.failures == ()
    assert c.basis == f"out: cosine_similarity={expected_cos:.6f} ≥ 0.99, rel_l2={expected_rel:.3e} ≤ 1"
    assert "cosine_similarity=0.990100 ≥ 0.99" in c.basis
    verdict = judge([c])
    assert (verdict.passed, verdict.status, verdict.match_within_1_percent) == (True, "PASS", True)
    assert verdict.failures == ()


def test_cosine_equal_to_min_cosine_passes():
    c = compare_outputs(t64([[3.0, 4.0]]), t64([[4.0, 3.0]]), Criteria(min_cosine=0.96, max_rel_l2=0.3))
    assert c.cosine_similarity == 0.96  # 24 / 25
    assert c.within_thresholds and c.failures == ()
    strict = assess(c, Criteria(min_cosine=0.9600001, max_rel_l2=0.3))
    assert not strict.within_thresholds
    assert strict.failures == ("output: cosine_similarity 0.960000 is below 0.96",)


@pytest.mark.parametrize("scale, passes", [(1.0099, True), (1.0101, False)])
def test_rel_l2_around_max_rel_l2_with_default_criteria(scale, passes):
    ref = REF
    tgt = REF * scale  # cosine 1, rel_l2 = scale - 1
    c = compare_outputs(t64(ref), t64(tgt), name="out")
    expected_rel = float(np.linalg.norm(tgt - ref) / np.linalg.norm(ref))
    assert expected_rel == pytest.approx(scale - 1.0, rel=1e-9)
    assert c.rel_l2 == pytest.approx(expected_rel, rel=1e-12)
    assert c.cosine_similarity == pytest.approx(1.0, rel=1e-15)
    assert c.within_thresholds is passes
    assert "cosine_similarity=1.000000 ≥ 0.99" in c.basis
    if passes:
        assert "rel_l2=9.900e-03 ≤ 0.01" in c.basis
        assert c.failures == ()
    else:
        assert "rel_l2=1.010e-02 > 0.01" in c.basis
        assert c.failures == ("out: rel_l2 1.010e-02 is above 0.01",)
    verdict = judge([c])
    assert verdict.passed is passes
    assert verdict.status == ("PASS" if passes else "FAIL")
    assert verdict.match_within_1_percent is passes


def test_custom_thresholds():
    ref, tgt = t64([[3.0, 4.0]]), t64([[4.0, 3.0]])  # cosine 0.96, rel_l2 sqrt(2)/5 = 0.2828
    expected_rel = math.sqrt(2) / 5
    lenient = compare_outputs(ref, tgt, Criteria(min_cosine=0.5, max_rel_l2=0.5), name="emb")
    assert lenient.within_thresholds and lenient.failures == ()
    assert lenient.basis == f"emb: cosine_similarity=0.960000 ≥ 0.5, rel_l2={expected_rel:.3e} ≤ 0.5"
    assert "rel_l2=2.828e-01" in lenient.basis
    strict = compare_outputs(ref, tgt, Criteria(min_cosine=0.97, max_rel_l2=0.2), name="emb")
    assert not strict.within_thresholds
    assert strict.failures == (
        "emb: cosine_similarity 0.960000 is below 0.97",
        "emb: rel_l2 2.828e-01 is above 0.2",
    )
    assert strict.basis == "emb: cosine_similarity=0.960000 < 0.97, rel_l2=2.828e-01 > 0.2"


def test_assess_recomputes_rather_than_accumulates():
    c = compare_outputs(t64([[3.0, 4.0]]), t64([[4.0, 3.0]]), Criteria(min_cosine=0.97, max_rel_l2=0.2))
    assert len(c.failures) == 2
    again = assess(c, Criteria(min_cosine=0.5, max_rel_l2=0.5))
    assert again.failures == () and again.within_thresholds
    assert again.cosine_similarity == c.cosine_similarity  # metrics untouched


def test_judge_over_several_outputs_fails_if_any_fails():
    good = compare_outputs(t64(REF), t64(REF * 1.001), name="logits")
    bad = compare_outputs(t64(REF), t64(REF * 1.05), name="features")
    assert good.failures == () and bad.failures == ("features: rel_l2 5.000e-02 is above 0.01",)

    verdict = judge([good, bad])
    assert isinstance(verdict, Verdict)
    assert verdict.passed is False and verdict.status == "FAIL"
    assert verdict.match_within_1_percent is False
    assert verdict.failures == ("features: rel_l2 5.000e-02 is above 0.01",)
    parts = verdict.basis.split("; ")
    assert parts == [good.basis, bad.basis, "shapes equal", "no NaN/Inf where the reference is finite"]
    assert "rel_l2=1.000e-03 ≤ 0.01" in verdict.basis
    assert "rel_l2=5.000e-02 > 0.01" in verdict.basis

    both_good = judge([good, compare_outputs(t64(REF), t64(REF), name="features")])
    assert both_good.passed and both_good.status == "PASS" and both_good.match_within_1_percent
    assert both_good.failures == ()


def test_judge_collects_failures_in_output_order():
    a = compare_outputs(torch.ones(2, 2), torch.ones(3, 2), name="a")
    b = compare_outputs(t64([[3.0, 4.0]]), t64([[4.0, 3.0]]), name="b")
    verdict = judge([a, b])
    assert verdict.failures == a.failures + b.failures
    assert verdict.failures[0].startswith("a: shape")
    assert verdict.failures[1:] == ("b: cosine_similarity 0.960000 is below 0.99", "b: rel_l2 2.828e-01 is above 0.01")
    assert "shapes equal" not in verdict.basis


def test_verdict_status():
    assert Verdict(True, True, (), "").status == "PASS"
    assert Verdict(False, True, ("x",), "").status == "FAIL"


# --- noise floor ---------------------------------------------------------------------------------------


def test_with_noise_floor_multiple_is_target_over_reference():
    c = compare_outputs(t64(REF), t64(TGT), LOOSE, name="out")
    n = with_noise_floor(c, 2e-7, 6e-7)
    assert n.reference_rel_l2_vs_fp64 == 2e-7
    assert n.target_rel_l2_vs_fp64 == 6e-7
    assert n.noise_multiple == pytest.approx(3.0, rel=1e-12)
    # everything else is carried over, and the original is untouched
    assert (n.rel_l2, n.cosine_similarity, n.failures, n.basis, n.within_thresholds) == (
        c.rel_l2, c.cosine_similarity, c.failures, c.basis, c.within_thresholds)
    assert c.noise_multiple is None and c.reference_rel_l2_vs_fp64 is None
    assert with_noise_floor(c, 4e-7, 1e-7).noise_multiple == pytest.approx(0.25, rel=1e-12)


def test_with_noise_floor_zero_reference_error():
    c = compare_outputs(t64(REF), t64(REF))
    exact = with_noise_floor(c, 0.0, 0.0)
    assert exact.noise_multiple == 1.0
    assert exact.reference_rel_l2_vs_fp64 == 0.0 and exact.target_rel_l2_vs_fp64 == 0.0
    worse = with_noise_floor(c, 0.0, 1e-6)
    assert worse.noise_multiple == math.inf


def test_positions_outside_keep_are_left_out_of_every_figure_and_samples_stay_samples():
    reference = torch.randn(2, 4, 3)
    target = reference.clone()
    target[0, :3] += 0.01 * torch.randn(3, 3)
    target[:, 3] = torch.nan  # padding: whatever a side computes there is not compared
    reference[1, 3] = 1e6
    keep = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])
    c = compare_outputs(reference, target, keep=keep, name="last_hidden_state")
    kept_ref, kept_tgt = reference[:, :3], target[:, :3]
    assert c.left_out_positions == 2
    assert c.target_nonfinite.nan == 0 and c.nonfinite_samples == ()
    assert c.rel_l2 == pytest.approx(relative_l2(kept_ref, kept_tgt))
    assert c.cosine_similarity == pytest.approx(cosine(kept_ref, kept_tgt))
    assert len(c.sample_cosine) == 2 and c.sample_cosine[1] == pytest.approx(1.0)
    assert c.mean_abs_diff == pytest.approx(float((kept_tgt - kept_ref).abs().double().mean()))
    assert c.basis.startswith("last_hidden_state (2 padding positions left out):")
    assert relative_l2(reference, target, keep) == pytest.approx(c.rel_l2)
