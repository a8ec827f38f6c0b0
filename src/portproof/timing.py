"""Latency: warm-up, then synchronised timed runs, summarised. `summarize` is pure and tested alone."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from .config import TimingSpec
from .results.check import HIGH_SPREAD_CV, LatencyStats  # noqa: F401  (tests read both here)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    position = (len(sorted_values) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(samples_ms: list[float], batch_size: int, warmup: int, cold_ms: float | None) -> LatencyStats:
    ordered = sorted(samples_ms)
    mean = statistics.fmean(ordered)
    std = statistics.pstdev(ordered) if len(ordered) > 1 else 0.0
    return LatencyStats(
        batch_size=batch_size,
        warmup=warmup,
        iters=len(ordered),
        cold_ms=cold_ms,
        mean_ms=mean,
        median_ms=percentile(ordered, 0.5),
        p90_ms=percentile(ordered, 0.9),
        p99_ms=percentile(ordered, 0.99),
        min_ms=ordered[0],
        max_ms=ordered[-1],
        std_ms=std,
        cv=std / mean if mean > 0 else 0.0,
        throughput_samples_per_s=batch_size * 1000.0 / mean if mean > 0 else 0.0,
        samples_ms=tuple(samples_ms),
    )


def measure(step: Callable[[], Any], synchronize: Callable[[], None], spec: TimingSpec, batch_size: int,
            cold_ms: float | None, on_step: Callable[[int, int], None] | None = None) -> LatencyStats:
    """Time `step` after `spec.warmup` untimed runs; each timed run ends with the device synchronised.
    `on_step(done, total)` hears of every run, warm-up included, outside the timed span."""
    total = spec.warmup + spec.iters
    for done in range(1, spec.warmup + 1):
        step()
        if on_step:
            on_step(done, total)
    synchronize()
    samples = []
    for done in range(spec.warmup + 1, total + 1):
        start = time.perf_counter()
        step()
        synchronize()
        samples.append((time.perf_counter() - start) * 1000.0)
        if on_step:
            on_step(done, total)
    return summarize(samples, batch_size, spec.warmup, cold_ms)
