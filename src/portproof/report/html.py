"""report.html: the port report as one self-contained page — verdict banners, model / weights /
environment cards, the metrics tables and the figures of plots.py embedded as base64 PNG.

No script, no external stylesheet, font or image: the page reads the same offline, in any browser,
printed, or with JavaScript disabled, and its Content-Security-Policy forbids every fetch. The markup is
templates/report.html, rendered by Jinja2 with autoescaping, so every value (whatever a summary.json
holds) reaches the page as text; here the values are only gathered, formatted and drawn.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import TYPE_CHECKING, Any, NamedTuple

from ..results import CheckResult
from . import plots
from .formatting import criterion_figures, device_name, milliseconds, number, share, verdict_table, visible_controls
from .i18n import (conclusion_reasons, input_items, numerics_lines, pretrained_value, random_weights_detail, rescue_lines,
                   texts, verdict_reasons)
from .load import SUMMARY_ONLY_NOTE
from .summary_json import scoring_fields

if TYPE_CHECKING:
    import jinja2


class Cell(NamedTuple):
    """A table cell: its text, shown as "text", "mono", "num" (right-aligned figures) or "status"."""

    text: str
    kind: str = "text"


class Item(NamedTuple):
    """A line of a card: a label ("" for a line of its own) and its value, shown as "text", "code" or a "list"."""

    label: str
    value: str | list[str]
    kind: str = "text"


class Figure(NamedTuple):
    """An embedded PNG with its alternative text and caption."""

    source: str  # a data: URL
    alt: str
    caption: str


def render(result: CheckResult, lang: str = "en", source: str = "this run") -> str:
    t = texts(lang)
    title = t["title"].format(model=_model_name(result))
    targets = ", ".join(target.label for target in result.targets)
    return _template().render(
        t=t,
        title=title,
        random_detail=random_weights_detail(result.weights, t) if result.random_weights else None,
        subtitle=t["subtitle"].format(targets=targets, reference=result.reference.label),
        started=t["started"].format(started=result.started_at, duration=result.duration_s),
        verdicts=_verdicts(result, t, lang),
        cards=_cards(result, t),
        noise_floor=_noise_floor(result, t),
        comparison=_comparison(result, t),
        criteria=_criteria(result, t),
        accuracy=_accuracy(result, t),
        rescue=rescue_lines(result, t),
        figures=_figures(result, t) if plots.available() else None,
        run_result=_run_result(result, t),
        scoring=_scoring(result, t),
        conclusion=_conclusion(result, t, lang),
        random_conclusion=t["random_conclusion"].format(banner=t["random_banner"]) if result.random_weights else None,
        footer=t["generated_by"].format(version=result.environment.get("portproof") or "", source=source),
    )


@functools.cache
def _template() -> jinja2.Template:
    import jinja2  # here, not at the top: `portproof --help` and the other commands start without it

    environment = jinja2.Environment(loader=jinja2.PackageLoader("portproof.report"), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True, finalize=_shown_as_text)
    return environment.get_template("report.html")


def _shown_as_text(value: Any) -> Any:
    """Every value the template prints, before autoescaping: control characters written out (a page shows
    nothing for them; a terminal printing the file would obey them). The markup of the template's own
    macros (which has `__html__`) passes as it is."""
    return visible_controls(value) if isinstance(value, str) and not hasattr(value, "__html__") else value


# --- sections ----------------------------------------------------------------------------------------------


def _verdicts(result: CheckResult, t: dict, lang: str) -> list[dict]:
    main_output = result.model.classifier_output or result.model.output_names[0]
    return [{"status": target.status, "label": target.label, "figures": " · ".join(_verdict_figures(target, main_output, t)),
             "error": target.error, "reasons": _deciding(target, t) + [
                 reason for c in target.comparisons for reason in verdict_reasons(c, result.config.criteria, lang)]}
            for target in result.targets]


def _deciding(target, t: dict) -> list[tuple[bool, str]]:
    """The deciding criterion's verdict, as the banner's first reason, when it is not portproof's own rules."""
    deciding = target.criteria_verdicts[0] if target.criteria_verdicts else None
    if deciding is None or deciding.criterion == "portproof":
        return []
    return [(deciding.passed, t["decided_by"].format(criterion=deciding.criterion, figures=criterion_figures(deciding)))]


def _criteria(result: CheckResult, t: dict) -> dict:
    names, rows = verdict_table(result)
    return {"intro": t["criteria_intro"].format(first=names[0]), "header": [t["target_col"], *names],
            "rows": [[Cell(label), *[Cell(f"{status} {figures}".strip(), "verdict " + status.lower()) for status, figures in row]]
                     for label, row in rows]}


def _accuracy(result: CheckResult, t: dict) -> dict | None:
    reference = result.reference.accuracy
    if reference is None:
        return None
    inputs = result.inputs
    header = [t["side"], t["top1_accuracy"], t["top5_accuracy"], t["accuracy_ratio"], t["changed"], t["right_to_wrong"],
              t["wrong_to_right"]]
    rows = [[Cell(f"{t['reference']} {result.reference.label}"),
             *[Cell(text, "num") for text in (share(reference.top1), share(reference.top5), "1", "", "", "")]]]
    changes = []
    for target in result.targets:
        if target.accuracy is not None:
            a = target.accuracy
            rows.append([Cell(f"{t['target']} {target.label}"), *[Cell(text, "num") for text in (
                share(a.accuracy.top1), share(a.accuracy.top5), number(a.ratio), str(a.changed), str(a.right_to_wrong),
                str(a.wrong_to_right))]])
            changes += [[Cell(target.label), Cell(c.file, "mono"), *[Cell(str(n), "num") for n in (c.label, c.reference, c.target)],
                         Cell(t[c.kind])] for c in a.first_changes]
    unreadable = (t["accuracy_unreadable"].format(n=len(reference.unreadable), files=", ".join(reference.unreadable))
                  if reference.unreadable else None)
    return {"intro": t["accuracy_intro"].format(n=inputs.labelled_samples, source=inputs.label_source, batch=inputs.batch_size),
            "unreadable": unreadable, "header": header, "rows": rows,
            "changes": {"header": [t["target_col"], t["file"], t["label"], t["reference_class"], t["target_class"], t["change"]],
                        "rows": changes}}


def _verdict_figures(target, main_output: str, t: dict) -> list[str]:
    figures = []
    c = target.comparison(main_output)
    if c is not None and c.cosine_similarity is not None:
        figures.append(f"{main_output}: cosine {_cosine(c.cosine_similarity)} · rel_l2 {number(c.rel_l2)}")
        if c.topk:
            top1 = f"{t['top1']} {share(c.topk.top1_agreement)}"
            if c.topk.tie_aware_top1_agreement != c.topk.top1_agreement:
                top1 += f" ({t['tie_aware']} {share(c.topk.tie_aware_top1_agreement)})"
            figures.append(top1)
    if target.latency:
        figures.append(f"{t['median']} {milliseconds(target.latency.median_ms)}")
    if target.speedup:
        figures.append(f"{t['speedup']} {target.speedup:.2f}×")
    return figures


def _cards(result: CheckResult, t: dict) -> list[dict]:
    return [
        {"title": t["model"], "wide": False, "lines": _model_items(result, t)},
        {"title": t["hardware"], "wide": False, "lines": _hardware_items(result, t)},
        {"title": t["software"], "wide": False, "lines": _software_items(result, t)},
        {"title": t["weights"], "wide": True, "lines": _weight_items(result, t)},
        {"title": t["inputs"], "wide": True, "lines": _input_items(result, t)},
    ]


def _model_items(result: CheckResult, t: dict) -> list[Item]:
    model = result.model
    return [Item(t["name"], _model_name(result), "code"), Item(t["requested_as"], model.requested, "code"),
            Item(t["family"], model.family), Item(t["hub_repo"], model.hub_repo or t["none"]),
            Item(t["parameters"], f"{model.num_parameters:,}"), Item(t["outputs_compared"], ", ".join(model.output_names))]


def _hardware_items(result: CheckResult, t: dict) -> list[Item]:
    environment = result.environment
    cores = t["cores"].format(cores=environment.get("cpu_count"), threads=environment.get("torch_threads"))
    return [Item(t["reference"], f"{result.reference.label} — {device_name(result.reference.description)}"),
            *[Item(f"{t['target']} {i}", f"{target.label} — {device_name(target.description)}")
              for i, target in enumerate(result.targets)],
            Item(t["cpu"], f"{environment.get('cpu')} ({cores})")]


def _software_items(result: CheckResult, t: dict) -> list[Item]:
    environment = result.environment
    packages = environment.get("packages") or {}
    return [Item(t["python"], str(environment.get("python"))), Item(t["platform"], str(environment.get("platform"))),
            *[Item(name, str(version)) for name, version in packages.items() if version],
            Item("CANN", environment.get("cann") or t["not_installed"]), Item("portproof", str(environment.get("portproof")))]


def _weight_items(result: CheckResult, t: dict) -> list[Item]:
    weights = result.weights
    pretrained = pretrained_value(weights, t)
    items = [Item(t["pretrained_loaded"], pretrained), Item(t["source"], weights.source_kind),
             Item(t["path"], weights.path, "code") if weights.path else Item(t["path"], t["none"])]
    if weights.file_size is not None:
        items.append(Item(t["size"], t["bytes"].format(size=weights.file_size)))
    if weights.sha256:
        items.append(Item("sha256", weights.sha256, "code"))
    items += [Item("pretrained_used", str(weights.pretrained_used).lower()),
              Item("local_weight_used", str(weights.local_weight_used).lower())]
    if weights.missing_keys or weights.unexpected_keys:
        items.append(Item("", t["partial"].format(missing=len(weights.missing_keys), unexpected=len(weights.unexpected_keys))))
    if weights.searched:
        items.append(Item(t["searched"], list(weights.searched), "list"))
    return items


def _input_items(result: CheckResult, t: dict) -> list[Item]:
    inputs = result.inputs
    criteria = result.config.criteria
    line = t["input_line"].format(kind=inputs.kind, n=inputs.num_samples, shape=list(inputs.shape[1:]),
                                  batch=inputs.batch_size, seed=inputs.seed)
    return [Item("", line), *[Item(label, value) for label, value in input_items(result, t)],
            *[Item(t["skipped"], skipped) for skipped in inputs.skipped],
            Item(t["criteria"], t["criteria_line"].format(min_cosine=f"{criteria.min_cosine:g}",
                                                          max_rel_l2=f"{criteria.max_rel_l2:g}")),
            Item(t["command"], result.environment.get("command_line") or "portproof check", "code"),
            *[Item(t["note"], note) for note in result.notes]]


def _noise_floor(result: CheckResult, t: dict) -> str | None:
    if not result.reference.rel_l2_vs_fp64:
        return None
    return t["noise_floor"].format(floor=", ".join(f"{n} {number(v)}" for n, v in result.reference.rel_l2_vs_fp64.items()))


def _comparison(result: CheckResult, t: dict) -> dict:
    header = [t["target_col"], t["output_col"], "cosine", "rel_l2", "max_abs_diff", "mean_abs_diff", "max_rel_diff",
              t["min_sample_cosine"], t["within_1"], t["noise_multiple"], "top-1", "top-5", t["verdict_col"]]
    rows = []
    for target in result.targets:
        if not target.comparisons:
            rows.append([Cell(target.label), Cell("—"), *[Cell("")] * 10, Cell(target.status, "status")])
        for c in target.comparisons:
            rows.append([
                Cell(target.label), Cell(c.name),
                *[Cell(text, "num") for text in (
                    _cosine(c.cosine_similarity), number(c.rel_l2), number(c.max_abs_diff), number(c.mean_abs_diff),
                    number(c.max_rel_diff), _cosine(c.min_sample_cosine), share(c.within_tolerance.get("1%")),
                    number(c.noise_multiple, 4), share(c.topk.top1_agreement) if c.topk else "—",
                    share(c.topk.topk_agreement) if c.topk else "—")],
                Cell("FAIL" if c.failures else "PASS", "status"),
            ])
    return {"header": header, "rows": rows}


def _figures(result: CheckResult, t: dict) -> dict:
    criteria = result.config.criteria
    limits = {"min_cosine": f"{criteria.min_cosine:g}", "max_rel_l2": f"{criteria.max_rel_l2:g}"}
    latency_caption = t["fig_latency"].format(batch=result.inputs.batch_size, iters=result.config.timing.iters)
    return {"errors": _figure(plots.diff_histograms(result), t["plots_errors"], t["fig_hist"].format(**limits)),
            "samples": _figure(plots.per_sample(result), t["plots_samples"], t["fig_samples"].format(**limits)),
            "layers": [_layer_section(report, t) for report in plots.layer_reports(result)],
            "latency": _figure(plots.latency(result), t["plots_latency"], latency_caption)}


def _layer_section(report, t: dict) -> dict:
    """One target's layer pass: the first divergent modules, the figure, the worst modules by local error."""
    none = t["layers_none"]
    first = t["layers_first"].format(local=report.first_divergent or none,
                                     accumulated=report.first_divergent_accumulated or none)
    image = plots.layers(report) if SUMMARY_ONLY_NOTE not in report.notes else None
    rows = []
    for label in report.worst_local:
        row = report.row(label)
        if row is not None:
            rows.append([Cell(label, "mono"), Cell(row.module_type), Cell(_cosine(row.local.cosine), "num"),
                         Cell(row.local.error or number(row.local.rel_l2), "num"), Cell(_cosine(row.accumulated.cosine), "num"),
                         Cell(number(row.accumulated.rel_l2), "num")])
    header = [t["module"], t["module_type"], t["local_cosine"], t["local_rel_l2"], t["accumulated_cosine"],
              t["accumulated_rel_l2"]]
    return {"target": str(report.target),
            "first": first if report.rows else None,  # an empty pass (not run, or failed) has no verdict to state
            "notes": report.notes, "figure": _figure(image, t["layers"], t["fig_layers"]),
            "worst": {"header": header, "rows": rows}}


def _run_result(result: CheckResult, t: dict) -> dict:
    header = [t["side"], t["run_status"], t["output_shapes"], t["mean_latency"], t["median_latency"], "p90", "p99", "cv",
              t["cold_run"], t["speedup"]]
    ref = result.reference
    rows = [_latency_row(f"{t['reference']} {ref.label}", "SUCCESS",
                         "; ".join(f"{n} {list(s)}" for n, s in ref.output_shapes.items()), ref.latency, "1.00×")]
    for target in result.targets:
        shapes = "; ".join(f"{c.name} {list(c.target_shape)}" for c in target.comparisons) or "—"
        speedup = f"{target.speedup:.2f}×" if target.speedup else "—"
        rows.append(_latency_row(f"{t['target']} {target.label}", "ERROR" if target.status == "ERROR" else "SUCCESS",
                                 shapes, target.latency, speedup))
    timing = result.config.timing
    note = (t["latency_note"].format(batch=result.inputs.batch_size, warmup=timing.warmup, iters=timing.iters)
            if timing.enabled else t["no_bench"])
    return {"header": header, "rows": rows, "note": note, "numerics": numerics_lines(result, t)}


def _scoring(result: CheckResult, t: dict) -> dict:
    fields = scoring_fields(result)
    intro = t["scoring_intro"].format(target=fields["scoring_target"], output=fields["scoring_output"],
                                      reference=result.reference.label)
    rows = []
    for key in ("status", "verdict", "output_shape", "latency_ms", "pretrained_used", "local_weight_used", "weight_path",
                "max_abs_diff", "mean_abs_diff", "cosine_similarity", "top1_match", "top5_match",
                "match_within_1_percent", "match_basis"):
        value = fields[key] if isinstance(fields[key], str) else json.dumps(fields[key])
        rows.append([Cell(key, "mono"), Cell(value, "text" if key == "match_basis" else "mono")])
    return {"intro": intro, "header": [t["field"], t["value"]], "rows": rows}


def _conclusion(result: CheckResult, t: dict, lang: str) -> list[dict]:
    lines = []
    for target in result.targets:
        verdict = t[{"PASS": "pass_line", "FAIL": "fail_line"}.get(target.status, "error_line")].format(label=target.label)
        detail = target.error or "; ".join(conclusion_reasons(target, result.config.criteria, lang))
        lines.append({"status": target.status, "verdict": verdict, "detail": detail})
    return lines


# --- pieces --------------------------------------------------------------------------------------------------


def _model_name(result: CheckResult) -> str:
    return result.model.architecture + (f".{result.model.tag}" if result.model.tag else "")


def _figure(png: bytes | None, alt: str, caption: str) -> Figure | None:
    return Figure(f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}", alt, caption) if png else None


def _latency_row(side: str, status: str, shapes: str, latency, speedup: str) -> list[Cell]:
    def ms(attribute: str) -> str:
        return milliseconds(getattr(latency, attribute)) if latency else "—"

    return [Cell(side), Cell(status, "status"), Cell(shapes),
            *[Cell(text, "num") for text in (ms("mean_ms"), ms("median_ms"), ms("p90_ms"), ms("p99_ms"),
                                             share(latency.cv, 1) if latency else "—", ms("cold_ms"), speedup)]]


def _cosine(value: float | None) -> str:
    """Nine decimals, fixed: a cosine of 0.9999999996 must not print as a bare 1."""
    return "n/a" if value is None else f"{value:.9f}"
