"""The files of `portproof tune`: tune.json (every field), tune.csv (one row per configuration), report.md and
report.html (the table, the fastest passing configuration per batch size with the command that checks it
again, and the accuracy/latency Pareto front as a figure)."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json

from ..results.tune import TuneResult, TuneRow
from .formatting import escape_markdown as esc
from .formatting import milliseconds, number
from .plots import COLOURS, FLOOR, WIDTH_IN, _png, available
from .summary_json import to_jsonable

COLUMNS = [field.name for field in dataclasses.fields(TuneRow)]


def render_files(result: TuneResult) -> dict[str, bytes]:
    figure = pareto_figure(result) if available() else None
    return {"tune.json": render_json(result).encode("utf-8"), "tune.csv": render_csv(result).encode("utf-8"),
            "report.md": render_markdown(result).encode("utf-8"), "report.html": render_html(result, figure).encode("utf-8")}


def render_json(result: TuneResult) -> str:
    document = to_jsonable(result)
    document["fastest_passing"] = {str(b): to_jsonable(result.rows[i]) for b, i in result.fastest_passing.items()}
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_csv(result: TuneResult) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in result.rows:
        writer.writerow(["" if getattr(row, name) is None else getattr(row, name) for name in COLUMNS])
    return stream.getvalue()


def table_rows(result: TuneResult) -> list[list[str]]:
    winners = set(result.fastest_passing.values())
    shown = []
    for index, row in enumerate(result.rows):
        mark = " (fastest passing)" if index in winners else ""
        shown.append([row.target + mark, str(row.batch_size), _text(row.threads), row.status, number(row.rel_l2, 4),
                      number(row.cosine, 9), milliseconds(row.median_ms), number(row.throughput, 4), _times(row.speedup),
                      f"{row.prepare_s:.1f} s" if row.prepare_s is not None else "—", row.reason or ""])
    return shown


HEADER = ["configuration", "batch", "threads", "verdict", "rel_l2", "cosine", "median latency", "samples/s",
          "speedup", "prepare", "why"]


def summary_lines(result: TuneResult) -> list[str]:
    lines = []
    for batch_size in result.batch_sizes:
        index = result.fastest_passing.get(batch_size)
        if index is None:
            lines.append(f"batch {batch_size}: no configuration passed")
            continue
        row = result.rows[index]
        lines.append(f"batch {batch_size}: fastest passing {row.target}"
                     f"{f' with {row.threads} threads' if row.threads else ''}: {milliseconds(row.median_ms)}, "
                     f"{_times(row.speedup)} eager fp32; check it again with: {result.reproduce[batch_size]}")
    skipped_for_time = sum(1 for row in result.rows if row.reason and row.reason.startswith("skipped for time"))
    if skipped_for_time:
        lines.append(f"{skipped_for_time} configuration(s) were skipped for time (--budget {result.budget_s:g} s)")
    return lines


def render_markdown(result: TuneResult) -> str:
    out = [f"# Tuning {esc(result.model)} on {esc(result.device)}", "",
           f"{len(result.rows)} configurations, {result.elapsed_s:.0f} s; started {result.started_at}.", "",
           "```", result.command_line or "portproof tune", "```", "", "## Fastest passing", ""]
    out += [f"- {esc(line)}" for line in summary_lines(result)] + [""]
    out += ["## Every configuration", "", "Judged exactly as `portproof check` judges a target, timed the same way; "
            "speedup is eager fp32's median on the same device, batch size and threads over the configuration's; "
            "prepare (copy, export, compile) is not in the latency.", ""]
    out += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(esc(cell) for cell in row) + " |" for row in table_rows(result)]
    out += ["", "## Pareto front", ""]
    for batch_size in result.batch_sizes:
        front = ", ".join(f"{result.rows[i].target} ({milliseconds(result.rows[i].median_ms)}, rel_l2 {number(result.rows[i].rel_l2, 4)})"
                          for i in result.pareto.get(batch_size, ()))
        out.append(f"- batch {batch_size}: {esc(front) or 'none'}")
    out += [""] + [f"- note: {esc(note)}" for note in result.notes]
    return "\n".join(out) + "\n"


def render_html(result: TuneResult, figure: bytes | None) -> str:
    from jinja2 import Environment

    template = Environment(autoescape=True).from_string(PAGE)
    image = base64.b64encode(figure).decode("ascii") if figure else None
    return template.render(result=result, header=HEADER, rows=table_rows(result), lines=summary_lines(result),
                           image=image)


def pareto_figure(result: TuneResult) -> bytes | None:
    """Median latency against rel_l2, one panel per batch size: passing configurations filled, the others
    hollow, the Pareto front joined."""
    from matplotlib.figure import Figure

    measured = [row for row in result.rows if row.median_ms is not None and row.rel_l2 is not None]
    if not measured:
        return None
    panels = len(result.batch_sizes)
    figure = Figure(figsize=(WIDTH_IN, 4.8 * panels), dpi=100)
    for position, batch_size in enumerate(result.batch_sizes):
        ax = figure.add_subplot(panels, 1, position + 1)
        for index, row in enumerate(result.rows):
            if row.batch_size != batch_size or row not in measured:
                continue
            passed = row.status == "PASS"
            ax.scatter(row.median_ms, max(row.rel_l2, FLOOR), s=60, color=COLOURS[0] if passed else COLOURS[1],
                       facecolors=None if passed else "none", zorder=3)
            ax.annotate(row.target + (f" x{row.threads}" if row.threads else ""), (row.median_ms, max(row.rel_l2, FLOOR)),
                        fontsize=7, xytext=(4, 3), textcoords="offset points")
        front = [result.rows[i] for i in result.pareto.get(batch_size, ())]
        if front:
            ax.plot([r.median_ms for r in front], [max(r.rel_l2, FLOOR) for r in front], color=COLOURS[2], zorder=2,
                    label="Pareto front (passing)")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_yscale("log")
        ax.set_xlabel("median latency per batch (ms)")
        ax.set_ylabel("rel_l2 (largest output)")
        ax.set_title(f"batch {batch_size}: filled = PASS, hollow = FAIL", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    return _png(figure)


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _text(value) -> str:
    return "—" if value is None else str(value)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Tuning {{ result.model }} on {{ result.device }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
td.PASS { color: #1a7f37; font-weight: 600; } td.FAIL, td.ERROR { color: #b42318; font-weight: 600; }
td.SKIPPED { color: #777; } code { word-break: break-all; } img { max-width: 100%; }
</style></head><body>
<h1>Tuning <code>{{ result.model }}</code> on {{ result.device }}</h1>
<p>{{ result.rows|length }} configurations in {{ "%.0f"|format(result.elapsed_s) }} s; started {{ result.started_at }}.</p>
<p><code>{{ result.command_line }}</code></p>
<h2>Fastest passing</h2>
<ul>{% for line in lines %}<li>{{ line }}</li>{% endfor %}</ul>
{% if image %}<h2>Accuracy against latency</h2>
<img alt="rel_l2 against median latency, the Pareto front of passing configurations joined" src="data:image/png;base64,{{ image }}">
{% endif %}
<h2>Every configuration</h2>
<p>Judged exactly as <code>portproof check</code> judges a target and timed the same way; speedup is eager fp32's
median on the same device, batch size and threads over the configuration's; prepare is not in the latency.</p>
<table><tr>{% for cell in header %}<th>{{ cell }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td{% if loop.index == 4 %} class="{{ cell }}"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% for note in result.notes %}<p><small>note: {{ note }}</small></p>{% endfor %}
</body></html>
"""
