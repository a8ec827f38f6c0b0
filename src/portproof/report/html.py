"""report.html: the port report as one self-contained page — verdict banners, model / weights /
environment cards, the metrics tables and the figures of plots.py embedded as base64 PNG.

No script, no external stylesheet, font or image: the page reads the same offline, in any browser,
printed, or with JavaScript disabled, and its Content-Security-Policy forbids every fetch. Everything
shown comes from the result; the only work done here is formatting and drawing.
"""

from __future__ import annotations

import base64
import json
from html import escape

from ..results import CheckResult
from . import plots
from .formatting import device_name, milliseconds, number, share
from .i18n import texts, verdict_reasons
from .load import SUMMARY_ONLY_NOTE
from .summary_json import scoring_fields

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
:root { --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #c62828; --fail-bg: #ffebe9; --error: #8a5a00;
        --error-bg: #fff4cc; --line: #d0d7de; --muted: #57606a; --card: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: #1f2328; line-height: 1.45;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC",
             "Microsoft YaHei", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.25em; margin: 1.8em 0 0.6em; padding-bottom: 0.25em; border-bottom: 1px solid var(--line); }
h3 { font-size: 1em; margin: 0 0 0.5em; }
.subtitle { color: var(--muted); margin: 0 0 1em; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.9em; }
.banner { border: 3px solid #b26a00; background: repeating-linear-gradient(135deg, #fff3cd, #fff3cd 14px, #ffe8a3 14px,
          #ffe8a3 28px); padding: 12px 16px; margin: 0 0 16px; border-radius: 6px; }
.banner strong { display: block; font-size: 1.2em; color: #7a3e00; }
.verdicts { display: grid; gap: 12px; margin: 16px 0; }
.verdict { border-radius: 8px; padding: 12px 16px; border-left: 8px solid; }
.verdict.pass { background: var(--pass-bg); border-color: var(--pass); }
.verdict.fail { background: var(--fail-bg); border-color: var(--fail); }
.verdict.error { background: var(--error-bg); border-color: var(--error); }
.verdict .head { display: flex; flex-wrap: wrap; align-items: baseline; gap: 10px 14px; }
.badge { display: inline-block; font-weight: 700; letter-spacing: 0.04em; color: #fff; border-radius: 4px; padding: 2px 10px; }
.pass .badge { background: var(--pass); } .fail .badge { background: var(--fail); } .error .badge { background: var(--error); }
.verdict .label { font-size: 1.15em; font-weight: 600; }
.verdict .figures { flex-basis: 100%; color: #24292f; font-variant-numeric: tabular-nums; }
.verdict ul { margin: 6px 0 0; padding-left: 1.2em; }
.verdict li.bad { color: var(--fail); font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
.card.wide { grid-column: 1 / -1; }
.card dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 3px 12px; margin: 0; }
.card dt { color: var(--muted); }
.card dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.82em; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: var(--card); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.status-fail td.status, td.status.fail { color: var(--fail); font-weight: 700; }
td.status.pass, td.status.success { color: var(--pass); font-weight: 700; } td.status.error { color: var(--error); font-weight: 700; }
figure { margin: 12px 0 20px; }
figure img { display: block; margin: 0 auto; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 6px; }
ul.plain { margin: 0; padding-left: 1.2em; }
strong.pass { color: var(--pass); } strong.fail { color: var(--fail); } strong.error { color: var(--error); }
ul.searched { font-size: 0.85em; overflow-wrap: anywhere; }
.note { color: var(--muted); }
footer { margin-top: 32px; color: var(--muted); font-size: 0.85em; }
@media print { .banner, .verdict { -webkit-print-color-adjust: exact; print-color-adjust: exact; } main { max-width: none; } }
"""


def render(result: CheckResult, lang: str = "en", source: str = "this run") -> str:
    t = texts(lang)
    model_name = result.model.architecture + (f".{result.model.tag}" if result.model.tag else "")
    title = t["title"].format(model=model_name)
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{t["html_lang"]}">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<main>",
    ]
    if result.random_weights:
        parts.append(f'<div class="banner" role="alert"><strong>{escape(t["random_banner"])}</strong>'
                     f'{escape(t["random_detail"].format(seed=result.weights.random_seed))}</div>')
    targets = ", ".join(t_.label for t_ in result.targets)
    parts += [
        f"<h1>{escape(title)}</h1>",
        f'<p class="subtitle">{escape(t["subtitle"].format(targets=targets, reference=result.reference.label))} · '
        f'{escape(t["started"].format(started=result.started_at, duration=result.duration_s))}</p>',
    ]
    parts += _verdicts(result, t, lang)
    parts += _cards(result, t)
    parts += _comparison(result, t)
    parts += _figures(result, t)
    parts += _run_result(result, t)
    parts += _scoring(result, t)
    parts += _conclusion(result, t, lang)
    parts += [
        f'<footer>{escape(t["generated_by"].format(version=result.environment.get("portproof") or "", source=source))}</footer>',
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# --- sections ----------------------------------------------------------------------------------------------


def _verdicts(result: CheckResult, t: dict, lang: str) -> list[str]:
    out = [f'<section class="verdicts" aria-label="{escape(t["verdicts"])}">']
    main_output = result.model.classifier_output or result.model.output_names[0]
    for target in result.targets:
        kind = target.status.lower()
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
        out += [f'<div class="verdict {kind}">', '<div class="head">',
                f'<span class="badge">{escape(target.status)}</span>',
                f'<span class="label mono">{escape(target.label)}</span>',
                f'<span class="figures">{escape(" · ".join(figures))}</span>', "</div>"]
        if target.error:
            out.append(f"<ul><li class=\"bad\">{escape(target.error)}</li></ul>")
        else:
            out.append("<ul>")
            for comparison in target.comparisons:
                for held, sentence in verdict_reasons(comparison, result.config.criteria, lang):
                    marked = "" if held else ' class="bad"'
                    out.append(f"<li{marked}>{escape(sentence)}</li>")
            out.append("</ul>")
        out.append("</div>")
    out.append("</section>")
    return out


def _cards(result: CheckResult, t: dict) -> list[str]:
    model = result.model
    model_name = model.architecture + (f".{model.tag}" if model.tag else "")
    weights = result.weights
    environment = result.environment
    packages = environment.get("packages", {}) or {}
    model_items = [
        (t["name"], f"<code>{escape(model_name)}</code>"),
        (t["requested_as"], f"<code>{escape(model.requested)}</code>"),
        (t["family"], escape(model.family)),
        (t["hub_repo"], escape(model.hub_repo or t["none"])),
        (t["parameters"], f"{model.num_parameters:,}"),
        (t["outputs_compared"], escape(", ".join(model.output_names))),
    ]
    pretrained = t["yes"] if weights.pretrained_used else t["random_init"].format(seed=weights.random_seed)
    weight_items = [
        (t["pretrained_loaded"], escape(pretrained)),
        (t["source"], escape(weights.source_kind)),
        (t["path"], f"<code>{escape(weights.path)}</code>" if weights.path else escape(t["none"])),
    ]
    if weights.file_size is not None:
        weight_items.append((t["size"], escape(t["bytes"].format(size=weights.file_size))))
    if weights.sha256:
        weight_items.append(("sha256", f"<code>{escape(weights.sha256)}</code>"))
    weight_items += [("pretrained_used", str(weights.pretrained_used).lower()),
                     ("local_weight_used", str(weights.local_weight_used).lower())]
    if weights.missing_keys or weights.unexpected_keys:
        weight_items.append(("", escape(t["partial"].format(missing=len(weights.missing_keys),
                                                              unexpected=len(weights.unexpected_keys)))))
    if weights.searched:
        weight_items.append((t["searched"], '<ul class="plain searched">' + "".join(f"<li>{escape(s)}</li>" for s in weights.searched)
                             + "</ul>"))
    hardware = [(f"{t['reference']}", escape(f"{result.reference.label} — {device_name(result.reference.description)}"))]
    hardware += [(f"{t['target']} {i}", escape(f"{target.label} — {device_name(target.description)}"))
                 for i, target in enumerate(result.targets)]
    hardware.append((t["cpu"], escape(f"{environment.get('cpu')} ("
                                      + t["cores"].format(cores=environment.get("cpu_count"),
                                                          threads=environment.get("torch_threads")) + ")")))
    software = [(t["python"], escape(str(environment.get("python")))), (t["platform"], escape(str(environment.get("platform"))))]
    software += [(name, escape(str(version))) for name, version in packages.items() if version]
    software.append(("CANN", escape(environment.get("cann") or t["not_installed"])))
    software.append(("portproof", escape(str(environment.get("portproof")))))
    inputs = result.inputs
    input_items = [
        ("", escape(t["input_line"].format(kind=inputs.kind, n=inputs.num_samples, shape=list(inputs.shape[1:]),
                                           batch=inputs.batch_size, seed=inputs.seed))),
        (t["files"], escape(", ".join(inputs.sources)) if inputs.sources else escape(t["generated"])),
    ]
    input_items += [(t["skipped"], escape(s)) for s in inputs.skipped]
    criteria = result.config.criteria
    input_items.append((t["criteria"], escape(t["criteria_line"].format(min_cosine=f"{criteria.min_cosine:g}",
                                                                          max_rel_l2=f"{criteria.max_rel_l2:g}"))))
    input_items.append((t["command"], f"<code>{escape(environment.get('command_line') or 'portproof check')}</code>"))
    notes = [(t["note"], escape(note)) for note in result.notes]
    return [
        '<section class="cards">',
        _card(t["model"], model_items),
        _card(t["hardware"], hardware),
        _card(t["software"], software),
        _card(t["weights"], weight_items, wide=True),
        _card(t["inputs"], input_items + notes, wide=True),
        "</section>",
    ]


def _comparison(result: CheckResult, t: dict) -> list[str]:
    out = [f"<h2>{escape(t['comparison'])}</h2>"]
    if result.reference.rel_l2_vs_fp64:
        floor = ", ".join(f"{n} {number(v)}" for n, v in result.reference.rel_l2_vs_fp64.items())
        out.append(f"<p>{escape(t['noise_floor'].format(floor=floor))}</p>")
    header = [t["target_col"], t["output_col"], "cosine", "rel_l2", "max_abs_diff", "mean_abs_diff", "max_rel_diff",
              t["min_sample_cosine"], t["within_1"], t["noise_multiple"], "top-1", "top-5", t["verdict_col"]]
    rows = []
    for target in result.targets:
        if not target.comparisons:
            rows.append([_text(target.label), _text("—"), *[_text("")] * 10, _status(target.status)])
        for c in target.comparisons:
            ok = not c.failures
            rows.append([
                _text(target.label), _text(c.name),
                _num(_cosine(c.cosine_similarity)), _num(number(c.rel_l2)), _num(number(c.max_abs_diff)),
                _num(number(c.mean_abs_diff)), _num(number(c.max_rel_diff)), _num(_cosine(c.min_sample_cosine)),
                _num(share(c.within_tolerance.get("1%"))), _num(number(c.noise_multiple, 4)),
                _num(share(c.topk.top1_agreement) if c.topk else "—"), _num(share(c.topk.topk_agreement) if c.topk else "—"),
                _status("PASS" if ok else "FAIL"),
            ])
    out.append(_table(header, rows))
    out.append(f'<p class="note">{escape(t["full_comparison"])}</p>')
    return out


def _figures(result: CheckResult, t: dict) -> list[str]:
    criteria = result.config.criteria
    limits = {"min_cosine": f"{criteria.min_cosine:g}", "max_rel_l2": f"{criteria.max_rel_l2:g}"}
    if not plots.available():
        return [f'<p class="note">{escape(t["no_matplotlib"])}</p>']
    out = []
    histogram = plots.diff_histograms(result)
    if histogram:
        out += [f"<h2>{escape(t['plots_errors'])}</h2>",
                _figure(histogram, t["plots_errors"], t["fig_hist"].format(**limits))]
    samples = plots.per_sample(result)
    if samples:
        out += [f"<h2>{escape(t['plots_samples'])}</h2>",
                _figure(samples, t["plots_samples"], t["fig_samples"].format(**limits))]
    for report in plots.layer_reports(result):
        out += _layer_section(report, t)
    latency = plots.latency(result)
    if latency:
        out += [f"<h2>{escape(t['plots_latency'])}</h2>",
                _figure(latency, t["plots_latency"], t["fig_latency"].format(batch=result.inputs.batch_size,
                                                                             iters=result.config.timing.iters))]
    return out


def _layer_section(report, t: dict) -> list[str]:
    """One target's layer pass: the first divergent modules, the figure, the worst modules by local error."""
    none = t["layers_none"]
    first = t["layers_first"].format(local=report.first_divergent or none,
                                     accumulated=report.first_divergent_accumulated or none)
    out = [f'<h2>{escape(t["layers"])} — <span class="mono">{escape(str(report.target))}</span></h2>']
    if report.rows:  # an empty pass (not run for this target, or failed) has no verdict to state
        out.append(f"<p><strong>{escape(first)}</strong></p>")
    out += [f'<p class="note">{escape(note)}</p>' for note in report.notes]
    image = plots.layers(report) if SUMMARY_ONLY_NOTE not in report.notes else None
    if image:
        out.append(_figure(image, t["layers"], t["fig_layers"]))
    rows = []
    for label in report.worst_local:
        row = report.row(label)
        if row is None:
            continue
        rows.append([_text(label, mono=True), _text(row.module_type), _num(_cosine(row.local.cosine)),
                     _num(row.local.error or number(row.local.rel_l2)), _num(_cosine(row.accumulated.cosine)),
                     _num(number(row.accumulated.rel_l2))])
    if rows:
        out += [f"<p>{escape(t['layers_worst'])}</p>",
                _table([t["module"], t["module_type"], t["local_cosine"], t["local_rel_l2"], t["accumulated_cosine"],
                        t["accumulated_rel_l2"]], rows)]
    return out


def _run_result(result: CheckResult, t: dict) -> list[str]:
    out = [f"<h2>{escape(t['run_result'])}</h2>"]
    header = [t["side"], t["run_status"], t["output_shapes"], t["mean_latency"], t["median_latency"], "p90", "p99", "cv",
              t["cold_run"], t["speedup"]]
    ref = result.reference
    rows = [_latency_row(f"{t['reference']} {ref.label}", "SUCCESS",
                         "; ".join(f"{n} {list(s)}" for n, s in ref.output_shapes.items()), ref.latency, "1.00×")]
    for target in result.targets:
        shapes = "; ".join(f"{c.name} {list(c.target_shape)}" for c in target.comparisons) or "—"
        speed = f"{target.speedup:.2f}×" if target.speedup else "—"
        rows.append(_latency_row(f"{t['target']} {target.label}", "ERROR" if target.status == "ERROR" else "SUCCESS",
                                 shapes, target.latency, speed))
    out.append(_table(header, rows))
    timing = result.config.timing
    note = (t["latency_note"].format(batch=result.inputs.batch_size, warmup=timing.warmup, iters=timing.iters)
            if timing.enabled else t["no_bench"])
    out.append(f'<p class="note">{escape(note)}</p>')
    return out


def _scoring(result: CheckResult, t: dict) -> list[str]:
    fields = scoring_fields(result)
    intro = t["scoring_intro"].format(target=fields["scoring_target"], output=fields["scoring_output"],
                                      reference=result.reference.label)
    rows = []
    for key in ("status", "verdict", "output_shape", "latency_ms", "pretrained_used", "local_weight_used", "weight_path",
                "max_abs_diff", "mean_abs_diff", "cosine_similarity", "top1_match", "top5_match",
                "match_within_1_percent", "match_basis"):
        value = fields[key] if isinstance(fields[key], str) else json.dumps(fields[key])
        rows.append([_text(key, mono=True), _text(value, mono=key != "match_basis")])
    return [f"<h2>{escape(t['scoring'])}</h2>", f"<p>{escape(intro)}</p>", _table([t["field"], t["value"]], rows)]


def _conclusion(result: CheckResult, t: dict, lang: str) -> list[str]:
    out = [f"<h2>{escape(t['conclusion'])}</h2>", "<ul>"]
    for target in result.targets:
        line = t[{"PASS": "pass_line", "FAIL": "fail_line"}.get(target.status, "error_line")].format(label=target.label)
        if target.error:
            detail = target.error
        else:
            reasons = [s for c in target.comparisons for held, s in verdict_reasons(c, result.config.criteria, lang)
                       if not held or target.status == "PASS"]
            detail = "; ".join(reasons)
        out.append(f'<li><strong class="{target.status.lower()}">{escape(line)}</strong> — {escape(detail)}</li>')
    if result.random_weights:
        out.append(f"<li>{escape(t['random_conclusion'].format(banner=t['random_banner']))}</li>")
    out.append("</ul>")
    return out


# --- pieces --------------------------------------------------------------------------------------------------


def _card(title: str, items: list[tuple[str, str]], wide: bool = False) -> str:
    """`items` are (label, already escaped HTML); a wide card spans the whole row."""
    body = "".join(f"<dt>{escape(label)}</dt><dd>{value}</dd>" if label else f'<dd style="grid-column: 1 / -1">{value}</dd>'
                   for label, value in items)
    return f'<div class="card{" wide" if wide else ""}"><h3>{escape(title)}</h3><dl>{body}</dl></div>'


def _figure(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _text(value: str, mono: bool = False) -> str:
    return f'<td class="mono">{escape(value)}</td>' if mono else f"<td>{escape(value)}</td>"


def _num(value: str) -> str:
    return f'<td class="num">{escape(value)}</td>'


def _status(status: str) -> str:
    return f'<td class="status {status.lower()}">{escape(status)}</td>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _latency_row(side: str, status: str, shapes: str, latency, speedup: str) -> list[str]:
    def ms(attribute: str) -> str:
        return milliseconds(getattr(latency, attribute)) if latency else "—"

    cv = f"{latency.cv * 100:.1f}%" if latency else "—"
    return [_text(side), _status(status), _text(shapes), _num(ms("mean_ms")), _num(ms("median_ms")), _num(ms("p90_ms")),
            _num(ms("p99_ms")), _num(cv), _num(ms("cold_ms")), _num(speedup)]


def _cosine(value: float | None) -> str:
    """Nine decimals, fixed: a cosine of 0.9999999996 must not print as a bare 1."""
    return "n/a" if value is None else f"{value:.9f}"
