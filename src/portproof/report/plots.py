"""The figures of report.html, drawn with matplotlib from what the result already holds (histograms,
per-sample metrics, latency samples, layer rows): nothing is recomputed from tensors here.

Each function returns PNG bytes, or None when the result has nothing to draw. matplotlib is imported
here only, when a figure is drawn, and through its object API (no pyplot, no global state), so the rest
of portproof imports without it. Text inside the figures is metric names and numbers, the same in every
language; report.html captions them in the report's language.
"""

from __future__ import annotations

import io
import math
from typing import Any

from ..results import CheckResult

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
REFERENCE_COLOUR = "#666666"
THRESHOLD_COLOUR = "#C0392B"
FLOOR = 1e-16  # 1 − cosine and rel_l2 of 0 are drawn here on log axes
WIDTH_IN, DPI = 11.6, 100  # 1160 px: the width of report.html's column


def available() -> bool:
    """Whether matplotlib can be imported here; without it report.html is written without figures."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def colour(position: int) -> str:
    return COLOURS[position % len(COLOURS)]


def diff_histograms(result: CheckResult) -> bytes | None:
    """|target − reference| per output: one panel per output, one stepped histogram per target."""
    names = [n for n in result.model.output_names
             if any(_histogram(t, n) for t in result.targets)]
    if not names:
        return None
    criteria = result.config.criteria
    floors = result.reference.rel_l2_vs_fp64 or {}
    figure, axes = _figure(len(names), min(len(names), 2), height_per_row=4.2)
    for ax, name in zip(axes, names):
        low, high = math.inf, -math.inf
        for position, target in enumerate(result.targets):
            histogram = _histogram(target, name)
            if histogram is None:
                continue
            counts, edges = list(histogram.counts), list(histogram.edges)
            used = [i for i, c in enumerate(counts) if c]
            extra = []
            if histogram.zero:
                extra.append(f"{histogram.zero:,} equal")
            if histogram.below:
                extra.append(f"{histogram.below:,} < {edges[0]:g}")
            if histogram.above:
                extra.append(f"{histogram.above:,} ≥ {edges[-1]:g}")
            label = target.label + (f" ({', '.join(extra)})" if extra else "")
            if used:
                low, high = min(low, edges[used[0]]), max(high, edges[used[-1] + 1])
                ax.stairs(counts, edges, color=colour(position), linewidth=1.8, label=label)
            else:
                ax.plot([], [], color=colour(position), label=label)
        reference_histogram = next((h for h in (_histogram(t, name) for t in result.targets) if h), None)
        rms = reference_histogram.reference_rms if reference_histogram else 0.0
        marks = []
        if rms > 0 and criteria.max_rel_l2 > 0:
            marks.append((criteria.max_rel_l2 * rms, "--", f"rel_l2 limit {criteria.max_rel_l2:g} × RMS(ref)"))
        if rms > 0 and floors.get(name):
            marks.append((floors[name] * rms, ":", "fp32 noise floor × RMS(ref)"))
        for x, style, label in marks:
            ax.axvline(x, color=THRESHOLD_COLOUR if style == "--" else REFERENCE_COLOUR, linestyle=style, linewidth=1.4,
                       label=label)
            low, high = min(low, x), max(high, x)
        ax.set_xscale("log")
        ax.set_yscale("log")
        if math.isfinite(low):
            ax.set_xlim(low / 10, high * 10)
        ax.set_ylim(bottom=0.7)
        ax.set_title(name, fontsize=11, loc="left", fontweight="bold")
        ax.set_xlabel("|target − reference| per element")
        ax.set_ylabel("elements (log scale)")
        ax.grid(True, which="major", alpha=0.3)
        # below the panel: inside, it would hide the bars
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=2, frameon=False)
    return _png(figure)


def per_sample(result: CheckResult) -> bytes | None:
    """1 − cosine and rel_l2 of every sample, one row of two panels per output, one line per target."""
    names = [n for n in result.model.output_names
             if any((c := t.comparison(n)) is not None and c.sample_cosine for t in result.targets)]
    if not names:
        return None
    criteria = result.config.criteria
    figure, axes = _figure(len(names) * 2, 2, height_per_row=3.0)
    for row, name in enumerate(names):
        cos_ax, rel_ax = axes[2 * row], axes[2 * row + 1]
        samples = 0
        for position, target in enumerate(result.targets):
            c = target.comparison(name)
            if c is None or not c.sample_cosine:
                continue
            samples = max(samples, len(c.sample_cosine))
            marker = "o" if len(c.sample_cosine) <= 64 else None
            xs = range(len(c.sample_cosine))
            # a sample with nothing finite to compare was saved as null and reads back as None
            cos_ax.plot(xs, [_floor(None if v is None else 1.0 - v) for v in c.sample_cosine], marker=marker, markersize=4,
                        color=colour(position), label=target.label)
            rel_ax.plot(xs, [_floor(v) for v in c.sample_rel_l2], marker=marker, markersize=4,
                        color=colour(position), label=target.label)
        for ax, limit, what in ((cos_ax, 1.0 - criteria.min_cosine, f"1 − cosine  ({name})"),
                                (rel_ax, criteria.max_rel_l2, f"rel_l2  ({name})")):
            if limit > 0:
                ax.axhline(limit, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.4, label="limit")
            ax.set_yscale("log")
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * 8)  # room above the limit line
            ax.set_title(what, fontsize=11, loc="left", fontweight="bold")
            ax.set_xlabel("sample")
            ax.grid(True, which="major", alpha=0.3)
            if samples <= 32:
                ax.set_xticks(range(samples))
    # one legend for every panel, above them, where it hides no line
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 6), fontsize=9, frameon=False)
    return _png(figure)


def latency(result: CheckResult) -> bytes | None:
    """Box plot of the timed runs of the reference and of every target, medians written beside."""
    sides = [(f"reference {result.reference.label}", result.reference.latency, REFERENCE_COLOUR)]
    sides += [(t.label, t.latency, colour(i)) for i, t in enumerate(result.targets)]
    sides = [(label, stats, c) for label, stats, c in sides if stats is not None and stats.samples_ms]
    if not sides:
        return None
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    sides.reverse()  # the reference on top
    height = 1.0 + 0.55 * len(sides)
    figure = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    boxes = ax.boxplot([list(stats.samples_ms) for _, stats, _ in sides], orientation="horizontal", widths=0.55, patch_artist=True,
                       medianprops={"color": "black", "linewidth": 1.6}, flierprops={"markersize": 3})
    for patch, (_, _, c) in zip(boxes["boxes"], sides):
        patch.set_facecolor(c)
        patch.set_alpha(0.55)
    ax.set_yticks(range(1, len(sides) + 1), [label for label, _, _ in sides])
    values = [v for _, stats, _ in sides for v in stats.samples_ms]
    if min(values) > 0 and max(values) / min(values) > 20:
        ax.set_xscale("log")
    # medians in a column of their own, right of the plot area, so they never sit on a box
    for row, (_, stats, _) in enumerate(sides, start=1):
        ax.annotate(f"median {stats.median_ms:.3f} ms", xy=(1.0, row), xycoords=("axes fraction", "data"),
                    xytext=(8, 0), textcoords="offset points", va="center", fontsize=9)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel(f"milliseconds per batch of {sides[0][1].batch_size}")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    return _png(figure)


def layers(report: Any) -> bytes | None:
    """1 − cosine and rel_l2 of every module in execution order, accumulated and local, the first
    divergent module of each mode marked, modules that raised crossed. `report` is a layers.LayerReport."""
    rows = [r for r in getattr(report, "rows", ()) if r is not None]
    if not rows:
        return None
    from matplotlib.transforms import blended_transform_factory

    criteria = report.criteria
    figure, axes = _figure(2, 1, height_per_row=3.6)
    xs = list(range(len(rows)))
    labels = [r.label for r in rows]
    modes = (("accumulated", COLOURS[0], report.first_divergent_accumulated),
             ("local", COLOURS[1], report.first_divergent))
    for ax, metric, limit, what in ((axes[0], "cosine", 1.0 - criteria.min_cosine, "1 − cosine"),
                                    (axes[1], "rel_l2", criteria.max_rel_l2, "rel_l2")):
        top = blended_transform_factory(ax.transData, ax.transAxes)
        for mode, c, first in modes:
            values = [_layer_value(getattr(r, mode), metric) for r in rows]
            ax.plot(xs, values, color=c, linewidth=1.3, marker=".", markersize=3, label=mode)
            raised = [x for x, r in zip(xs, rows) if (getattr(r, mode).error or "").startswith("raised")]
            if raised:
                ax.plot(raised, [0.94] * len(raised), "x", color=c, markersize=7, transform=top,
                        label=f"raised ({mode})")
            if first in labels:
                ax.axvline(labels.index(first), color=c, linestyle=":", linewidth=1.8,
                           label=f"first divergent ({mode}): {first}")
        if limit > 0:
            ax.axhline(limit, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.2, label="limit")
        ax.set_yscale("log")
        ax.set_title(what, fontsize=11, loc="left", fontweight="bold")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlim(-1, len(rows))
    # above the upper panel, out of the lines' way
    axes[0].legend(fontsize=8, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3)
    ticks = _landmarks(rows)
    for ax in axes:
        ax.set_xticks([x for x, _ in ticks], [name for _, name in ticks] if ax is axes[1] else [], rotation=90, fontsize=7)
    axes[1].set_xlabel(f"module outputs in execution order ({len(rows)}); named at the end of each top-level block")
    return _png(figure)


def _landmarks(rows: list, most: int = 60) -> list[tuple[int, str]]:
    """Where the x axis is named: each top-level module or numbered block (`blocks.3`), at its output,
    skipping a name that would print over the previous one."""
    marks: list[tuple[int, str]] = []
    gap = len(rows) / most
    for x, row in enumerate(rows):
        parts = row.label.split("#")[0].split(".")
        if (len(parts) == 1 or (len(parts) == 2 and parts[1].isdigit())) and (not marks or x - marks[-1][0] >= gap):
            marks.append((x, row.label))
    return marks


def _layer_value(metrics: Any, metric: str) -> float:
    value = getattr(metrics, metric, None)
    if value is None:
        return math.nan  # a gap in the line: the module raised or was not reached
    return _floor(1.0 - value if metric == "cosine" else value)


def _histogram(target, name: str):
    comparison = target.comparison(name)
    return comparison.abs_diff_histogram if comparison is not None else None


def _floor(value: float | None) -> float:
    if value is None or math.isnan(value):
        return math.nan
    return max(value, FLOOR)


def _figure(panels: int, columns: int, height_per_row: float):
    import matplotlib
    from matplotlib.figure import Figure

    # labels, output and module names come from the summary: a "$" in them is text, not a formula to parse
    matplotlib.rcParams["text.parse_math"] = False

    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(WIDTH_IN, height_per_row * rows), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten().tolist()
    for extra in axes[panels:]:
        extra.set_visible(False)
    return figure, axes[:panels]


def _png(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    _log_ticks(figure)
    buffer = io.BytesIO()
    # no metadata: the same result gives the same bytes
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _log_ticks(figure) -> None:
    """Log axes label their decades as plain text (10⁻³): matplotlib's own labels are mathtext, which
    `text.parse_math=False` (see _figure) would show raw. Axes spanning many decades get a major tick every few
    decades and no minor ticks: the same reading, and laying out hundreds of tick labels was most of the time
    spent drawing (measured)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    for ax in figure.axes:
        for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            if axis.get_scale() != "log":
                continue
            axis.set_major_formatter(FuncFormatter(lambda value, _: power_of_ten(value)))
            axis.set_minor_formatter(NullFormatter())
            low, high = sorted(limits)
            if low > 0 and high / low > 1e3:
                axis.set_major_locator(LogLocator(numticks=8))
                axis.set_minor_locator(NullLocator())


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(value: float) -> str:
    """10ⁿ for an exact power of ten, else the value in short form."""
    if value <= 0:
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) < 1e-9:
        return "10" + str(int(round(exponent))).translate(SUPERSCRIPTS)
    return f"{value:g}"


def layer_reports(result: CheckResult) -> list[Any]:
    """The layer passes the result carries, target by target (none when no layer pass ran)."""
    return [t.layers for t in result.targets if getattr(t, "layers", None) is not None]

