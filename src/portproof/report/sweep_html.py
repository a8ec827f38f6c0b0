"""index.html of a sweep: the matrix as one self-contained page, a table that sorts by any column and
filters by text and verdict, each model linking to its own report.html. The markup is
templates/index.html (Jinja2, autoescaped); its one inline script only sorts and hides rows (the page reads
the same without it), and its Content-Security-Policy forbids every fetch."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, NamedTuple

from ..results.sweep import Cell, ModelRow, SweepResult
from .formatting import visible_controls

if TYPE_CHECKING:
    import jinja2

TARGET_COLUMNS = ("verdict", "cosine", "rel_l2", "top-1", "median ms", "speedup")
VERDICT_ORDER = {"PASS": 0, "FAIL": 1, "ERROR": 2}


class Shown(NamedTuple):
    """A table cell: its text, the value it sorts by, and its CSS class."""

    text: str
    sort: str
    kind: str = ""


def render(result: SweepResult) -> str:
    rows = [_row(row, result.targets) for row in result.rows]
    return _template().render(result=result, rows=rows, target_columns=TARGET_COLUMNS,
                              counts={target: result.counts(target) for target in result.targets})


def _row(row: ModelRow, targets: tuple[str, ...]) -> dict:
    cells = []
    notes = [f"could not run: {row.error}"] if row.error else []
    kinds = set()
    for target in targets:
        cell = row.cell(target) or Cell(target=target, verdict="ERROR", error="not checked")
        cells.extend(_cells(cell))
        if cell.change is not None:
            kinds.add(cell.change.kind)
            notes.append(f"{target}: {cell.change.words}")
        if cell.error and not row.error:
            notes.append(f"{target}: {cell.error}")
        if cell.first_divergent:
            notes.append(f"{target}: first divergent module {cell.first_divergent}")
    verdicts = " ".join(sorted({(row.cell(t) or Cell(t, "ERROR")).verdict for t in targets}))
    return {"model": visible_controls(row.model), "link": None if row.error else f"{row.run_dir}/report.html",
            "cells": cells, "notes": [visible_controls(note) for note in notes], "verdicts": verdicts,
            "changes": " ".join(sorted(kinds)), "reused": row.reused}


def _cells(cell: Cell) -> list[Shown]:
    change = cell.change.kind if cell.change else ""
    mark = {"regression": " ▼", "fix": " ▲", "changed": " ≠", "moved": " ~", "new": " +"}.get(change, "")
    return [
        Shown(cell.verdict + mark, str(VERDICT_ORDER.get(cell.verdict, 3)), f"status {cell.verdict.lower()} {change}".strip()),
        _number(cell.cosine, "{:.6f}"),
        _number(cell.rel_l2, "{:.3e}"),
        _number(None if cell.top1 is None else cell.top1 * 100, "{:.0f}%"),
        _number(cell.median_ms, "{:.3f}"),
        _number(cell.speedup, "{:.2f}x"),
    ]


def _number(value: float | None, form: str) -> Shown:
    return Shown("-", "", "num") if value is None else Shown(form.format(value), repr(value), "num")


@functools.cache
def _template() -> jinja2.Template:
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("portproof.report", "templates"),
                                     autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template("index.html")
