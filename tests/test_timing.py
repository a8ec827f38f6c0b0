"""timing: percentile and summarize against numpy in float64; measure's call pattern (never its times)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from portproof.config import TimingSpec
from portproof.timing import HIGH_SPREAD_CV, LatencyStats, measure, percentile, summarize

LISTS = [
    [5.0],
    [1.0, 2.0],
    [3.0, 1.0, 2.0],
    [10.0, 10.0, 10.0, 10.0],
    [0.5, 0.7, 1.9, 2.0, 2.1, 8.5, 9.0],
    [float(x) for x in range(1, 101)],  # 100 values: p90/p99 fall between ranks
    [1.25, 3.5, 3.5, 4.0, 100.0, 0.125, 7.75, 2.0, 2.0, 6.5, 11.0],
    list(np.random.default_rng(7).gamma(2.0, 3.0, size=257)),
]


@pytest.mark.parametrize("values", LISTS)
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.29, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_percentile_matches_numpy_linear(values, fraction):
    ordered = sorted(values)
    expected = float(np.percentile(np.asarray(values, dtype=np.float64), fraction * 100, method="linear"))
    assert percentile(ordered, fraction) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_percentile_by_hand():
    # positions (n-1)*f: 4 values -> 0.5 lands at 1.5, 0.9 at 2.7, 1/3 exactly on rank 1
    values = [1.0, 2.0, 4.0, 8.0]
    assert percentile(values, 0.5) == pytest.approx(3.0)
    assert percentile(values, 0.9) == pytest.approx(4.0 + 0.7 * 4.0)  # 6.8
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 8.0
    assert percentile([2.0, 4.0], 0.25) == pytest.approx(2.5)


def _expected_stats(samples):
    arr = np.asarray(samples, dtype=np.float64)
    mean = arr.mean()
    std = arr.std()  # population (ddof=0)
    return {
        "mean": mean,
        "median": np.percentile(arr, 50),
        "p90": np.percentile(arr, 90),
        "p99": np.percentile(arr, 99),
        "min": arr.min(),
        "max": arr.max(),
        "std": std,
        "cv": std / mean,
    }


@pytest.mark.parametrize("samples", [LISTS[4], LISTS[5], LISTS[6], LISTS[7]])
@pytest.mark.parametrize("batch_size", [1, 8])
def test_summarize_against_numpy(samples, batch_size):
    stats = summarize(list(samples), batch_size=batch_size, warmup=3, cold_ms=123.0)
    expected = _expected_stats(samples)
    assert isinstance(stats, LatencyStats)
    assert stats.batch_size == batch_size
    assert stats.warmup == 3
    assert stats.iters == len(samples)
    assert stats.cold_ms == 123.0
    assert stats.mean_ms == pytest.approx(expected["mean"], rel=1e-12)
    assert stats.median_ms == pytest.approx(expected["median"], rel=1e-12)
    assert stats.p90_ms == pytest.approx(expected["p90"], rel=1e-12)
    assert stats.p99_ms == pytest.approx(expected["p99"], rel=1e-12)
    assert stats.min_ms == expected["min"]
    assert stats.max_ms == expected["max"]
    assert stats.std_ms == pytest.approx(expected["std"], rel=1e-9)
    assert stats.cv == pytest.approx(expected["cv"], rel=1e-9)
    assert stats.throughput_samples_per_s == pytest.approx(batch_size * 1000.0 / expected["mean"], rel=1e-12)


def test_summarize_by_hand_and_keeps_sample_order():
    samples = [4.0, 2.0, 6.0, 8.0]  # mean 5, population variance (1+9+1+9)/4 = 5
    stats = summarize(samples, batch_size=4, warmup=0, cold_ms=None)
    assert stats.mean_ms == 5.0
    assert stats.median_ms == pytest.approx(5.0)
    assert stats.min_ms == 2.0 and stats.max_ms == 8.0
    assert stats.std_ms == pytest.approx(math.sqrt(5.0))
    assert stats.cv == pytest.approx(math.sqrt(5.0) / 5.0)
    assert stats.throughput_samples_per_s == pytest.approx(4 * 1000.0 / 5.0)  # 800 samples/s
    assert stats.samples_ms == (4.0, 2.0, 6.0, 8.0)  # as measured, not sorted
    assert stats.cold_ms is None
    assert stats.high_spread  # cv = 0.447


def test_summarize_does_not_reorder_callers_list():
    samples = [3.0, 1.0, 2.0]
    summarize(samples, batch_size=1, warmup=0, cold_ms=None)
    assert samples == [3.0, 1.0, 2.0]


def test_summarize_single_sample():
    stats = summarize([7.5], batch_size=2, warmup=1, cold_ms=9.0)
    assert stats.iters == 1
    assert (stats.mean_ms, stats.median_ms, stats.p90_ms, stats.p99_ms, stats.min_ms, stats.max_ms) == (7.5,) * 6
    assert stats.std_ms == 0.0
    assert stats.cv == 0.0
    assert stats.throughput_samples_per_s == pytest.approx(2000.0 / 7.5)
    assert not stats.high_spread


def test_summarize_zero_mean_does_not_divide_by_zero():
    stats = summarize([0.0, 0.0, 0.0], batch_size=4, warmup=0, cold_ms=None)
    assert stats.mean_ms == 0.0
    assert stats.cv == 0.0
    assert stats.throughput_samples_per_s == 0.0


def test_high_spread_threshold_is_strict():
    assert HIGH_SPREAD_CV == 0.10
    # [9, 11]: mean 10, population std exactly 1 -> cv exactly 0.1, not above the threshold
    at = summarize([9.0, 11.0], batch_size=1, warmup=0, cold_ms=None)
    assert at.std_ms == 1.0
    assert at.cv == 0.1
    assert not at.high_spread
    # [8.9, 11.1]: std 1.1 -> cv 0.11
    above = summarize([8.9, 11.1], batch_size=1, warmup=0, cold_ms=None)
    assert above.cv == pytest.approx(0.11)
    assert above.high_spread
    # [9.5, 10.5]: cv 0.05
    below = summarize([9.5, 10.5], batch_size=1, warmup=0, cold_ms=None)
    assert below.cv == pytest.approx(0.05)
    assert not below.high_spread


def test_constant_samples_have_no_spread():
    stats = summarize([10.0] * 5, batch_size=1, warmup=0, cold_ms=None)
    assert stats.std_ms == 0.0 and stats.cv == 0.0
    assert stats.throughput_samples_per_s == pytest.approx(100.0)


# --- measure: the call pattern ------------------------------------------------------------------


@pytest.mark.parametrize("warmup, iters", [(0, 1), (3, 5), (10, 50)])
def test_measure_calls_step_warmup_plus_iters_times_and_synchronises(warmup, iters):
    events = []

    def step():
        events.append("step")
        return "ignored"

    def synchronize():
        events.append("sync")

    stats = measure(step, synchronize, TimingSpec(warmup=warmup, iters=iters), batch_size=4, cold_ms=1.5)

    assert events.count("step") == warmup + iters
    assert events.count("sync") == iters + 1
    # warm-up runs untimed, one synchronise, then every timed step is followed by a synchronise
    assert events == ["step"] * warmup + ["sync"] + ["step", "sync"] * iters

    assert stats.iters == iters
    assert len(stats.samples_ms) == iters
    assert stats.warmup == warmup
    assert stats.batch_size == 4
    assert stats.cold_ms == 1.5
    # the summary is consistent with its own samples (no assertion on how long anything took)
    assert stats.mean_ms == pytest.approx(float(np.mean(stats.samples_ms)), rel=1e-9, abs=1e-12)
    assert stats.min_ms == min(stats.samples_ms)
    assert stats.max_ms == max(stats.samples_ms)
    assert all(s >= 0.0 for s in stats.samples_ms)


def test_measure_passes_no_arguments_to_step_and_ignores_its_result():
    calls = []

    def step(*args, **kwargs):
        calls.append((args, kwargs))
        return object()

    measure(step, lambda: None, TimingSpec(warmup=1, iters=2), batch_size=1, cold_ms=None)
    assert calls == [((), {})] * 3
