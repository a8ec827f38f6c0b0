"""report.md, in English or Chinese (`--lang`): an adaptation report in the section order of the ones
written for Ascend ports (model, hardware, software, install and run, weight loading, inputs, run result,
comparison, layer by layer, scoring fields, conclusion), filled from the result, computing nothing.

Every word and punctuation mark comes from i18n.texts(lang); every string from the model, the user or a
summary.json is escaped (escape_markdown) or put in a code span or code block, so it reads as text."""

from __future__ import annotations

import json

from ..results import CheckResult
from .formatting import (
    code_cell,
    code_fence,
    device_name,
    milliseconds,
    number,
    share,
    verdict_table,
    visible_controls,
)
from .formatting import code_span as code
from .formatting import escape_markdown as esc
from .i18n import (conclusion_reasons, input_items, numerics_lines, pretrained_value, random_weights_detail, rescue_lines,
                   texts)
from .plots import layer_reports
from .summary_json import scoring_fields


def render(result: CheckResult, lang: str = "en") -> str:
    t = texts(lang)
    model = result.model
    model_name = model.architecture + (f".{model.tag}" if model.tag else "")
    out: list[str] = []
    if result.random_weights:
        out += [f"> **{t['random_banner']}**", ">", f"> {random_weights_detail(result.weights, t)}", ""]
    targets = ", ".join(esc(target.label) for target in result.targets)
    heading = t["report_heading"].format(model=esc(model_name), targets=targets, reference=esc(result.reference.label))
    out += [f"# {heading}", ""]
    requested = f"{t['requested_as']} {code(model.requested)}"
    out += _section(t, t["model"], [
        (t["name"], code(model_name) + t["parens"].format(text=requested)),
        (t["family"], f"{esc(model.family)}{t['semicolon']}{t['hub_repo']}{t['colon']}{esc(model.hub_repo or t['none'])}"),
        (t["parameters"], f"{model.num_parameters:,}"),
        (t["outputs_compared"], ", ".join(esc(name) for name in model.output_names)),
    ])
    out += _environment(result, t)
    command_line = visible_controls(result.environment.get("command_line") or "portproof check")
    fence = code_fence(command_line)
    out += [f"## {t['install_run']}", "", fence, f"make setup   # {t['install_hint']}", command_line, fence, ""]
    out += _weights(result, t)
    inputs = result.inputs
    out += _section(t, t["inputs"], [
        (None, t["input_line"].format(kind=esc(inputs.kind), n=inputs.num_samples, shape=list(inputs.shape[1:]),
                                      batch=inputs.batch_size, seed=inputs.seed)),
        *[(label, esc(value)) for label, value in input_items(result, t)],
        *[(t["skipped"], esc(s)) for s in inputs.skipped],
        *[(t["note"], esc(note)) for note in result.notes],
    ])
    out += _run_result(result, t)
    out += _comparison(result, t)
    out += _criteria(result, t)
    out += _accuracy(result, t)
    out += _layers(result, t)
    if result.rescue is not None:
        out += _section(t, t["rescue"], [(None, esc(line)) for line in rescue_lines(result, t)])
    out += _scoring(result, t)
    out += _conclusion(result, t, lang)
    return "\n".join(out) + "\n"


def _section(t: dict, title: str, items: list[tuple[str | None, str]]) -> list[str]:
    """A heading and its bullet list; an item is (label, text), or (None, text) for a line without a label."""
    return [f"## {title}", "", *[f"- {label}{t['colon']}{text}" if label else f"- {text}" for label, text in items], ""]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table of cells already escaped."""
    return [_cells(header), "|---" * len(header) + "|", *[_cells(row) for row in rows]]


def _cells(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _environment(result: CheckResult, t: dict) -> list[str]:
    environment = result.environment
    sides = [(t["reference"], result.reference)] + [(f"{t['target']} {i}", target) for i, target in enumerate(result.targets)]
    cores = t["cores"].format(cores=environment.get("cpu_count"), threads=environment.get("torch_threads"))
    hardware = [(name, f"{esc(side.label)}{t['dash']}{esc(device_name(side.description))}") for name, side in sides]
    hardware.append((t["cpu"], esc(environment.get("cpu")) + t["parens"].format(text=cores)))
    software = [(t["python"], esc(environment.get("python"))), (t["platform"], esc(environment.get("platform")))]
    software += [(esc(name), esc(version)) for name, version in (environment.get("packages") or {}).items() if version]
    software.append(("CANN", esc(environment.get("cann") or t["not_installed"])))
    software.append(("portproof", esc(environment.get("portproof"))))
    return _section(t, t["hardware"], hardware) + _section(t, t["software"], software)


def _weights(result: CheckResult, t: dict) -> list[str]:
    weights = result.weights
    items = [
        (t["pretrained_loaded"], pretrained_value(weights, t)),
        (t["source"], esc(weights.source_kind)),
        (t["path"], code(weights.path) if weights.path else t["none"]),
        ((t["size"], f"{_size(weights.file_size, t)}{t['semicolon']}sha256 {code(weights.sha256)}")
         if weights.sha256 else ("sha256", t["none"])),
        ("pretrained_used", str(weights.pretrained_used).lower()),
        ("local_weight_used", str(weights.local_weight_used).lower()),
    ]
    if weights.missing_keys or weights.unexpected_keys:
        items.append((None, t["partial"].format(missing=len(weights.missing_keys), unexpected=len(weights.unexpected_keys))))
    items += [(t["searched"], esc(place)) for place in weights.searched]
    return _section(t, t["weights"], items)


def _size(file_size: int | None, t: dict) -> str:
    return t["none"] if file_size is None else t["bytes"].format(size=file_size)


def _run_result(result: CheckResult, t: dict) -> list[str]:
    ref = result.reference
    rows = [[f"{t['reference']} {esc(ref.label)}", "SUCCESS", "; ".join(f"{esc(n)} {list(s)}" for n, s in ref.output_shapes.items()),
             *_latencies(ref.latency), "1.00x"]]
    for target in result.targets:
        shapes = "; ".join(f"{esc(c.name)} {list(c.target_shape)}" for c in target.comparisons) or "n/a"
        status = "ERROR" if target.status == "ERROR" else "SUCCESS"
        speedup = f"{target.speedup:.2f}x" if target.speedup else "n/a"
        rows.append([f"{t['target']} {esc(target.label)}", status, shapes, *_latencies(target.latency), speedup])
    header = [t["side"], t["run_status"], t["output_shapes"], t["mean_latency"], t["median_latency"], t["cold_run"], t["speedup"]]
    timing = result.config.timing
    note = (t["latency_note"].format(batch=result.inputs.batch_size, warmup=timing.warmup, iters=timing.iters)
            if timing.enabled else t["no_bench"])
    lines = [f"## {t['run_result']}", "", *_table(header, rows), "", note, ""]
    lines += [f"- {esc(line)}" for line in numerics_lines(result, t)] + [""]
    for target in result.targets:
        if target.error:
            lines += [f"**{t['raised'].format(label=esc(target.label))}** {esc(target.error)}", ""]
    return lines


def _latencies(latency) -> list[str]:
    """Mean, median and cold-run latency; "n/a" each when it was not measured."""
    return [milliseconds(latency and latency.mean_ms), milliseconds(latency and latency.median_ms),
            milliseconds(latency and latency.cold_ms)]


def _comparison(result: CheckResult, t: dict) -> list[str]:
    lines = [f"## {t['comparison']}", ""]
    if result.reference.rel_l2_vs_fp64:
        floor = ", ".join(f"{esc(n)} {number(v)}" for n, v in result.reference.rel_l2_vs_fp64.items())
        lines += [t["noise_floor"].format(floor=floor), ""]
    header = [t["target_col"], t["output_col"], "max_abs_diff", "mean_abs_diff", "max_rel_diff", "rel_l2", "cosine",
              t["min_sample_cosine"], t["within_1"], t["noise_multiple"], "top-1", "top-5"]
    rows = [[esc(target.label), esc(c.name), number(c.max_abs_diff), number(c.mean_abs_diff), number(c.max_rel_diff),
             number(c.rel_l2), number(c.cosine_similarity, 9), number(c.min_sample_cosine, 9),
             share(c.within_tolerance.get("1%")), number(c.noise_multiple, 4),
             share(c.topk.top1_agreement) if c.topk else "—", share(c.topk.topk_agreement) if c.topk else "—"]
            for target in result.targets for c in target.comparisons]
    return lines + _table(header, rows) + ["", t["full_comparison"], ""]


def _criteria(result: CheckResult, t: dict) -> list[str]:
    """The verdict table: targets × criteria, each cell the verdict and the figures that decided it."""
    names, rows = verdict_table(result)
    cells = [[esc(label), *[f"**{status}** {esc(figures)}".strip() for status, figures in row]] for label, row in rows]
    intro = t["criteria_intro"].format(first=code(names[0]))
    return [f"## {t['criteria_heading']}", "", intro, "", *_table([t["target_col"], *map(esc, names)], cells), ""]


def _accuracy(result: CheckResult, t: dict) -> list[str]:
    """Top-1 / top-5 of every side on the labelled images, the ratio, and the predictions that changed."""
    reference = result.reference.accuracy
    if reference is None:
        return []
    inputs = result.inputs
    lines = [f"## {t['accuracy_heading']}", "",
             t["accuracy_intro"].format(n=inputs.labelled_samples, source=esc(inputs.label_source),
                                        batch=inputs.batch_size), ""]
    if reference.unreadable:
        lines += [t["accuracy_unreadable"].format(n=len(reference.unreadable), files=esc(", ".join(reference.unreadable))), ""]
    header = [t["side"], t["top1_accuracy"], t["top5_accuracy"], t["accuracy_ratio"], t["changed"], t["right_to_wrong"],
              t["wrong_to_right"]]
    rows = [[f"{t['reference']} {esc(result.reference.label)}", share(reference.top1), share(reference.top5), "1", "", "", ""]]
    changes = []
    for target in result.targets:
        if target.accuracy is not None:
            a = target.accuracy
            rows.append([f"{t['target']} {esc(target.label)}", share(a.accuracy.top1), share(a.accuracy.top5),
                         number(a.ratio, 6), str(a.changed), str(a.right_to_wrong), str(a.wrong_to_right)])
            changes += [[esc(target.label), code_cell(c.file), str(c.label), str(c.reference), str(c.target), t[c.kind]]
                        for c in a.first_changes]
    lines += [*_table(header, rows), ""]
    if changes:
        header = [t["target_col"], t["file"], t["label"], t["reference_class"], t["target_class"], t["change"]]
        lines += [t["first_changes"], "", *_table(header, changes), ""]
    return lines


def _layers(result: CheckResult, t: dict) -> list[str]:
    reports = layer_reports(result)
    if not reports:
        return []
    criteria = result.config.criteria
    intro = t["layers_intro"].format(min_cosine=f"{criteria.min_cosine:g}", max_rel_l2=f"{criteria.max_rel_l2:g}")
    lines = [f"## {t['layers_heading']}", "", intro, ""]
    none = t["layers_none"]
    for report in reports:
        lines += [f"### {esc(report.target)}", ""]
        if report.rows:  # an empty pass (not run for this target, or failed) has no verdict to state
            lines += [t["layers_first"].format(
                local=code(report.first_divergent) if report.first_divergent else none,
                accumulated=code(report.first_divergent_accumulated) if report.first_divergent_accumulated else none), ""]
        if report.notes:
            lines += [*[f"- {t['note']}{t['colon']}{esc(note)}" for note in report.notes], ""]
        rows = []
        for label in report.worst_local:
            row = report.row(label)
            if row is not None:
                local, accumulated = row.local, row.accumulated
                rows.append([code_cell(label), esc(row.module_type), number(local.cosine, 9),
                             esc(local.error) if local.error else number(local.rel_l2), number(accumulated.cosine, 9),
                             number(accumulated.rel_l2)])
        if rows:
            header = [t["module"], t["module_type"], t["local_cosine"], t["local_rel_l2"], t["accumulated_cosine"],
                      t["accumulated_rel_l2"]]
            lines += [t["layers_worst"], "", *_table(header, rows), ""]
    return lines


def _scoring(result: CheckResult, t: dict) -> list[str]:
    fields = scoring_fields(result)
    intro = t["scoring_intro"].format(target=code(fields["scoring_target"]), output=code(fields["scoring_output"]),
                                      reference=code(result.reference.label))
    rows = []
    for key in ("status", "verdict", "output_shape", "latency_ms", "pretrained_used", "local_weight_used", "weight_path",
                "max_abs_diff", "mean_abs_diff", "cosine_similarity", "top1_match", "top5_match",
                "match_within_1_percent", "match_basis"):
        value = fields[key] if isinstance(fields[key], str) else json.dumps(fields[key])
        rows.append([key, esc(value)])
    return [f"## {t['scoring']}", "", intro, "", *_table([t["field"], t["value"]], rows), ""]


def _conclusion(result: CheckResult, t: dict, lang: str) -> list[str]:
    """Each target's verdict with the rules behind it, from the measured values: all of them for a PASS, the
    broken ones for a FAIL, the error for a target that raised."""
    lines = [f"## {t['conclusion']}", ""]
    for target in result.targets:
        key = {"PASS": "pass_line", "FAIL": "fail_line"}.get(target.status, "error_line")
        head = f"- **{t[key].format(label=esc(target.label))}**{t['dash']}"
        if target.error:
            lines.append(head + esc(target.error))
            continue
        reasons = conclusion_reasons(target, result.config.criteria, lang)
        lines.append(head + t["semicolon"].join(esc(s) for s in reasons) + t["period"])
    if result.random_weights:
        lines.append(f"- {t['random_conclusion'].format(banner=t['random_banner'])}")
    return lines
