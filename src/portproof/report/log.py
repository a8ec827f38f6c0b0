"""accuracy_compare.log: the comparison for people, target by target and output by output."""

from __future__ import annotations

from ..results import RANDOM_WEIGHTS_BANNER, CheckResult, LatencyStats, LayerReport, OutputComparison, TargetResult
from .formatting import milliseconds, number, share


def render(result: CheckResult) -> str:
    lines: list[str] = []
    if result.random_weights:
        lines += [f"!!! {RANDOM_WEIGHTS_BANNER} !!!", ""]
    weights = result.weights
    lines += [
        f"portproof accuracy comparison — {result.model.architecture}" + (f".{result.model.tag}" if result.model.tag else ""),
        f"started {result.started_at}, finished {result.finished_at} ({result.duration_s:.1f} s)",
        f"weights: {weights.source_kind}, pretrained_used={weights.pretrained_used}, local_weight_used={weights.local_weight_used}",
        f"  path: {weights.path or 'none'}",
        f"  sha256: {weights.sha256 or 'none'}",
        f"inputs: {result.inputs.kind}, {result.inputs.num_samples} samples of shape {list(result.inputs.shape[1:])}, "
        f"batch size {result.inputs.batch_size}, seed {result.inputs.seed}",
        f"reference: {result.reference.label} ({result.reference.description.get('device_name', '')})",
        f"criteria: cosine >= {result.config.criteria.min_cosine:g}, rel_l2 <= {result.config.criteria.max_rel_l2:g}, "
        "tie-aware top-1 on every sample",
    ]
    if result.reference.rel_l2_vs_fp64:
        floor = ", ".join(f"{name} {number(v)}" for name, v in result.reference.rel_l2_vs_fp64.items())
        lines.append(f"noise floor (fp32 reference vs float64, rel_l2): {floor}")
    lines += [f"note: {note}" for note in result.notes]
    if result.reference.latency:
        lines += ["", "reference latency:", *_latency_lines(result.reference.latency)]
    for position, target in enumerate(result.targets):
        lines += ["", "=" * 78, f"target {position}: {target.label} — {target.status}", "=" * 78]
        lines += _target_lines(target)
    lines += ["", f"overall: {'every target passed' if result.all_passed else 'at least one target did not pass'}"]
    return "\n".join(lines) + "\n"


def _target_lines(target: TargetResult) -> list[str]:
    description = ", ".join(f"{k}={v}" for k, v in target.description.items())
    lines = [f"ran as: {description}"]
    if target.error:
        return lines + [f"ERROR: {target.error}"]
    for comparison in target.comparisons:
        lines += ["", f"[{comparison.name}]", *_comparison_lines(comparison)]
    lines += ["", f"verdict: {target.status}", f"match_within_1_percent: {target.verdict.match_within_1_percent}",
              f"match_basis: {target.verdict.basis}"]
    lines += [f"failed: {failure}" for failure in target.verdict.failures]
    if target.latency:
        lines += ["", "latency:", *_latency_lines(target.latency)]
        if target.speedup is not None:
            lines.append(f"  speedup over reference (median): {target.speedup:.3f}x")
    if target.layers:
        lines += ["", *_layer_lines(target.layers)]
    return lines


def _layer_lines(report: LayerReport) -> list[str]:
    """The layer pass: the verdict on where numbers part ways, then every module in execution order."""
    lines = [
        f"layer pass ({len(report.rows)} module outputs, {report.samples} samples in one batch):",
        f"  first divergent module (local):       {report.first_divergent or 'none'}",
        f"  first divergent module (accumulated): {report.first_divergent_accumulated or 'none'}",
        "  worst modules by local error: " + (", ".join(report.worst_local) or "none"),
    ]
    lines += [f"  note: {note}" for note in report.notes]
    if report.rows:
        lines.append(f"  {'order':>5} {'module':<34} {'type':<14} {'acc cosine':>12} {'acc rel_l2':>11} "
                     f"{'local cosine':>12} {'local rel_l2':>12}")
    for row in report.rows:
        cells = []
        for metrics in (row.accumulated, row.local):
            if metrics.cosine is None:
                cells.append(f"{(metrics.error or 'no finite values')[:25]:>25}")
            else:
                cells.append(f"{number(metrics.cosine, 9):>12} {number(metrics.rel_l2, 4):>11}")
        mark = "  <- first divergent" if row.label in (report.first_divergent, report.first_divergent_accumulated) else ""
        lines.append(f"  {row.order:>5} {row.label:<34} {row.module_type[:14]:<14} {cells[0]} {cells[1]}{mark}")
    return lines


def _comparison_lines(c: OutputComparison) -> list[str]:
    lines = [f"  shape: reference {list(c.reference_shape)}, target {list(c.target_shape)}"]
    if not c.shape_match:
        return lines + ["  shapes differ: no metric computed"]
    lines += [
        f"  max_abs_diff:        {number(c.max_abs_diff)}",
        f"  mean_abs_diff:       {number(c.mean_abs_diff)}",
        f"  max_rel_diff:        {number(c.max_rel_diff)}",
        f"  rel_l2:              {number(c.rel_l2)}",
        f"  cosine_similarity:   {number(c.cosine_similarity, 9)} (min over samples {number(c.min_sample_cosine, 9)})",
        "  within relative tol: " + ", ".join(f"{tol}: {share(v)}" for tol, v in c.within_tolerance.items()),
        f"  NaN/Inf reference:   {c.reference_nonfinite.nan}/{c.reference_nonfinite.inf}, "
        f"target: {c.target_nonfinite.nan}/{c.target_nonfinite.inf}",
    ]
    if c.noise_multiple is not None:
        lines.append(f"  vs float64:          target rel_l2 {number(c.target_rel_l2_vs_fp64)}, "
                     f"{number(c.noise_multiple, 4)}x the fp32 reference's {number(c.reference_rel_l2_vs_fp64)}")
    if c.topk:
        t = c.topk
        lines += [
            f"  top1_match:          {t.top1_match} ({share(t.top1_agreement)} of samples)",
            f"  top{t.k}_match:          {t.topk_match} ({share(t.topk_agreement)} of samples)",
            f"  tie-aware top-1:     {t.tie_aware_top1_match} ({share(t.tie_aware_top1_agreement)}; "
            f"forgiven samples {list(t.forgiven_samples)})",
        ]
    return lines


def _latency_lines(latency: LatencyStats) -> list[str]:
    return [
        f"  cold (first run): {milliseconds(latency.cold_ms)}; {latency.warmup} warm-up, {latency.iters} timed runs of batch {latency.batch_size}",
        f"  mean {milliseconds(latency.mean_ms)}, median {milliseconds(latency.median_ms)}, p90 {milliseconds(latency.p90_ms)}, "
        f"p99 {milliseconds(latency.p99_ms)}",
        f"  min {milliseconds(latency.min_ms)}, max {milliseconds(latency.max_ms)}, std {milliseconds(latency.std_ms)}, "
        f"cv {latency.cv * 100:.1f}%{' (HIGH SPREAD: the machine was busy or the device clocks vary)' if latency.high_spread else ''}",
        f"  throughput: {latency.throughput_samples_per_s:.1f} samples/s",
    ]
