"""report.md: an adaptation report in the shape of the one that started this project, filled from the
result (model, hardware, software, how to run, weights, run result, comparison, scoring fields,
conclusion)."""

from __future__ import annotations

import json

from ..result import RANDOM_WEIGHTS_BANNER, CheckResult
from .formatting import code_fence, milliseconds, number, share
from .formatting import code_span as code
from .formatting import escape_markdown as esc
from .summary_json import scoring_fields


def render(result: CheckResult) -> str:
    model_name = result.model.architecture + (f".{result.model.tag}" if result.model.tag else "")
    out: list[str] = []
    if result.random_weights:
        out += [f"> **{RANDOM_WEIGHTS_BANNER}**", ">", "> No pretrained checkpoint was found; places searched are listed under "
                "*Weight loading*.", ""]
    targets = ", ".join(esc(t.label) for t in result.targets)
    out += [f"# {esc(model_name)} port report: {targets} against {esc(result.reference.label)}", ""]
    out += _section("Model", [
        f"Name: {code(model_name)} (requested as {code(result.model.requested)})",
        f"Family: {esc(result.model.family)}; hub repository: {esc(result.model.hub_repo or 'none')}",
        f"Parameters: {result.model.num_parameters:,}",
        f"Outputs compared: {', '.join(result.model.output_names)}",
    ])
    environment = result.environment
    hardware = [f"Reference: {esc(result.reference.label)} — {esc(result.reference.description.get('device_name', ''))}"]
    hardware += [f"Target {i}: {esc(t.label)} — {esc(t.description.get('device_name', t.description.get('device', '')))}"
                 for i, t in enumerate(result.targets)]
    hardware += [f"CPU: {esc(environment.get('cpu'))} ({environment.get('cpu_count')} logical cores, "
                 f"{environment.get('torch_threads')} torch threads)"]
    out += _section("Hardware", hardware)
    packages = environment.get("packages", {})
    software = [f"Python: {esc(environment.get('python'))}", f"Platform: {esc(environment.get('platform'))}"]
    software += [f"{esc(name)}: {esc(version)}" for name, version in packages.items() if version]
    software.append(f"CANN: {esc(environment.get('cann') or 'not installed')}")
    software.append(f"portproof: {esc(environment.get('portproof'))}")
    out += _section("Software", software)
    command_line = environment.get("command_line") or "portproof check"
    out += ["## Install and run", "", code_fence(command_line),
            "make setup   # or: pip install -e .  (reuses an installed torch / torch_npu)",
            command_line, code_fence(command_line), ""]
    weights = result.weights
    weight_lines = [
        f"Pretrained weights loaded: {'yes' if weights.pretrained_used else 'NO — random initialisation (seed ' + str(weights.random_seed) + ')'}",
        f"Source: {esc(weights.source_kind)}",
        f"Path: {code(weights.path)}" if weights.path else "Path: none",
        f"Size: {weights.file_size:,} bytes; sha256 {code(weights.sha256)}" if weights.sha256 else "sha256: none",
        f"pretrained_used: {str(weights.pretrained_used).lower()}",
        f"local_weight_used: {str(weights.local_weight_used).lower()}",
    ]
    if weights.missing_keys or weights.unexpected_keys:
        weight_lines.append(f"Partial load allowed: {len(weights.missing_keys)} missing, {len(weights.unexpected_keys)} unexpected keys")
    weight_lines += [f"Searched: {esc(place)}" for place in weights.searched]
    out += _section("Weight loading", weight_lines)
    inputs = result.inputs
    out += _section("Inputs", [
        f"{esc(inputs.kind)}: {inputs.num_samples} samples of shape {list(inputs.shape[1:])}, batch size {inputs.batch_size}, seed {inputs.seed}",
        f"Files: {esc(', '.join(inputs.sources))}" if inputs.sources else "Files: none (generated tensors)",
        *[f"Skipped: {esc(s)}" for s in inputs.skipped],
    ])
    out += _run_result(result)
    out += _comparison(result)
    out += _layers(result)
    out += _scoring_table(result)
    out += _conclusion(result)
    return "\n".join(out) + "\n"


def _section(title: str, items: list[str]) -> list[str]:
    return [f"## {title}", "", *[f"- {item}" for item in items], ""]


def _run_result(result: CheckResult) -> list[str]:
    rows = ["## Run result", "", "| side | status | output shapes | mean latency | median latency | cold run | speedup |",
            "|---|---|---|---|---|---|---|"]
    ref = result.reference
    shapes = "; ".join(f"{n} {list(s)}" for n, s in ref.output_shapes.items())
    lat = ref.latency
    rows.append(f"| reference {esc(ref.label)} | SUCCESS | {shapes} | {milliseconds(lat and lat.mean_ms)} | "
                f"{milliseconds(lat and lat.median_ms)} | {milliseconds(lat and lat.cold_ms)} | 1.00x |")
    for t in result.targets:
        shapes = "; ".join(f"{c.name} {list(c.target_shape)}" for c in t.comparisons) or "n/a"
        lat = t.latency
        speed = f"{t.speedup:.2f}x" if t.speedup else "n/a"
        status = "ERROR" if t.status == "ERROR" else "SUCCESS"
        rows.append(f"| target {esc(t.label)} | {status} | {shapes} | {milliseconds(lat and lat.mean_ms)} | "
                    f"{milliseconds(lat and lat.median_ms)} | {milliseconds(lat and lat.cold_ms)} | {speed} |")
    rows.append("")
    if result.config.timing.enabled:
        rows += [f"Latency is per batch of {result.inputs.batch_size}, after {result.config.timing.warmup} warm-up runs, "
                 f"over {result.config.timing.iters} synchronised runs; speedup is the reference's median over the target's.", ""]
    else:
        rows += ["Latency was not measured (--no-bench).", ""]
    for t in result.targets:
        if t.error:
            rows += [f"**{esc(t.label)} raised an error:** {esc(t.error)}", ""]
    return rows


def _layers(result: CheckResult) -> list[str]:
    reports = [t.layers for t in result.targets if t.layers is not None]
    if not reports:
        return []
    rows = ["## Layer-by-layer comparison", "",
            "*Accumulated*: each side runs the whole model, module outputs compared. *Local*: each target module is "
            "fed the reference's input to it, so its error is its own. A module diverges when its cosine falls below "
            f"{result.config.criteria.min_cosine:g}, its rel_l2 exceeds {result.config.criteria.max_rel_l2:g}, it turns "
            "values NaN/Inf, or it raises. Every module is listed in `layers.csv` and `layers.json`.", ""]
    for report in reports:
        rows += [f"### {esc(report.target)}", "",
                 f"- First divergent module (local): **{esc(report.first_divergent or 'none')}**",
                 f"- First divergent module (accumulated): **{esc(report.first_divergent_accumulated or 'none')}**",
                 *[f"- Note: {esc(note)}" for note in report.notes], ""]
        if report.worst_local:
            rows += ["| worst by local error | local cosine | local rel_l2 | accumulated rel_l2 |", "|---|---|---|---|"]
            for label in report.worst_local:
                row = report.row(label)
                local = row.local.error or number(row.local.rel_l2)
                rows.append(f"| {esc(label)} | {number(row.local.cosine, 9)} | {esc(local)} | {number(row.accumulated.rel_l2)} |")
            rows.append("")
    return rows


def _comparison(result: CheckResult) -> list[str]:
    rows = ["## Comparison", ""]
    if result.reference.rel_l2_vs_fp64:
        floor = ", ".join(f"{n} {number(v)}" for n, v in result.reference.rel_l2_vs_fp64.items())
        rows += [f"Noise floor — the fp32 reference's own rel_l2 against a float64 run: {floor}.", ""]
    rows += ["| target | output | max_abs_diff | mean_abs_diff | max_rel_diff | rel_l2 | cosine | min sample cosine | "
             "within 1% | x noise floor | top-1 | top-5 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in result.targets:
        for c in t.comparisons:
            top1 = f"{share(c.topk.top1_agreement)}" if c.topk else "—"
            top5 = f"{share(c.topk.topk_agreement)}" if c.topk else "—"
            rows.append(
                f"| {esc(t.label)} | {c.name} | {number(c.max_abs_diff)} | {number(c.mean_abs_diff)} | {number(c.max_rel_diff)} | "
                f"{number(c.rel_l2)} | {number(c.cosine_similarity, 9)} | {number(c.min_sample_cosine, 9)} | "
                f"{share(c.within_tolerance.get('1%'))} | {number(c.noise_multiple, 4)} | {top1} | {top5} |"
            )
    rows += ["", "The full comparison, per sample, is in `accuracy_compare.log` and `summary.json`.", ""]
    return rows


def _scoring_table(result: CheckResult) -> list[str]:
    fields = scoring_fields(result)
    rows = ["## Scoring fields", "",
            f"For target {code(fields['scoring_target'])}, output {code(fields['scoring_output'])}, against the reference "
            f"{code(result.reference.label)}, with the same weights and the same inputs.", "",
            "| field | value |", "|---|---|"]
    for key in ("status", "verdict", "output_shape", "latency_ms", "pretrained_used", "local_weight_used", "weight_path",
                "max_abs_diff", "mean_abs_diff", "cosine_similarity", "top1_match", "top5_match",
                "match_within_1_percent", "match_basis"):
        value = fields[key] if isinstance(fields[key], str) else json.dumps(fields[key])
        rows.append(f"| {key} | {esc(value)} |")
    return rows + [""]


def _conclusion(result: CheckResult) -> list[str]:
    lines = ["## Conclusion", ""]
    for t in result.targets:
        if t.status == "PASS":
            lines.append(f"- **{esc(t.label)}: PASS** — {esc(t.verdict.basis)}.")
        elif t.status == "FAIL":
            lines.append(f"- **{esc(t.label)}: FAIL** — " + "; ".join(esc(f) for f in t.verdict.failures) + ".")
        else:
            lines.append(f"- **{esc(t.label)}: ERROR** — {esc(t.error)}")
    if result.random_weights:
        lines.append(f"- {RANDOM_WEIGHTS_BANNER}: these figures say nothing about the pretrained model's accuracy.")
    return lines
