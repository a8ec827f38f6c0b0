"""What a person sees of a sweep: a bar over the models (the ones running, ETA, live counts) while it runs,
then the counts per target, the slowest and the worst cells, the errors and the changes against a baseline.
Progress goes to stderr, the summary to stdout; off a terminal, one plain line per finished model."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from ..results.sweep import ModelRow, SweepResult
from ..terminal import STATUS_STYLE, _is_terminal, inert

SHOWN_PER_LIST = 3  # the slowest and the worst cells shown per target


class SweepDisplay:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interactive = not quiet and _is_terminal(self.stream)
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # model -> its check's current step
        self._counts = {"PASS": 0, "FAIL": 0, "ERROR": 0}
        self._done = 0
        self._total = 0
        self._progress = None
        self._task = None

    def __enter__(self) -> SweepDisplay:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def begin(self, to_run: int, reused: int, where: str) -> None:
        self._total = to_run
        if self.quiet:
            return
        kept = f" ({reused} kept from an earlier run)" if reused else ""
        print(f"portproof: checking {to_run} models on {where}{kept}", file=self.stream, flush=True)
        if self.interactive and to_run:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=28), MofNCompleteColumn(),
                                      TextColumn("{task.fields[counts]}"), TextColumn("ETA"), TimeRemainingColumn(),
                                      console=Console(file=self.stream), refresh_per_second=4)
            self._progress.start()
            self._task = self._progress.add_task("sweep", total=to_run, counts="")

    def started(self, model: str) -> None:
        self.step(model, "starting")

    def step(self, model: str, message: str) -> None:
        with self._lock:
            self._running[model] = message
            self._refresh()

    def finished(self, row: ModelRow) -> None:
        with self._lock:
            self._running.pop(row.model, None)
            self._done += 1
            for cell in row.cells:
                self._counts[cell.verdict] = self._counts.get(cell.verdict, 0) + 1
            self._refresh()
        if self.quiet or self.interactive:
            return
        verdicts = ", ".join(f"{cell.target} {cell.verdict}" for cell in row.cells)
        why = f": {row.error}" if row.error else ""
        print(f"portproof: [{self._done}/{self._total}] {inert(row.model)}: {verdicts}{inert(why)} "
              f"({row.duration_s or 0:.1f} s)", file=self.stream, flush=True)

    def _refresh(self) -> None:
        if self._progress is None:
            return
        from rich.markup import escape

        running = ", ".join(f"{model} ({step})" for model, step in self._running.items())
        counts = " ".join(f"{status} {count}" for status, count in self._counts.items())
        self._progress.update(self._task, completed=self._done, counts=counts,
                              description=escape(inert(running or "sweep")[:70]))  # cut before escaping the markup


def print_summary(result: SweepResult, written, stdout: TextIO | None = None) -> None:
    """Counts per target, the slowest and the worst cells, the errors, the changes, the files written."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    stdout = stdout or sys.stdout
    console = Console(file=stdout, highlight=False, **({} if _is_terminal(stdout) else {"width": 160}))

    def say(text: str, style: str = "") -> None:
        console.print(Text(inert(text), style=style), soft_wrap=True)

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("target", "PASS", "FAIL", "ERROR"):
        table.add_column(name, justify="left" if name == "target" else "right")
    for target in result.targets:
        counts = result.counts(target)
        table.add_row(target, *(Text(str(counts[s]), style=STATUS_STYLE[s] if counts[s] else "") for s in ("PASS", "FAIL", "ERROR")))
    console.print(table)
    for target in result.targets:
        cells = [(row.model, row.cell(target)) for row in result.rows]
        timed = sorted(((m, c) for m, c in cells if c is not None and c.speedup is not None), key=lambda mc: mc[1].speedup)
        if timed:
            say(f"{target} slowest against the reference: " + ", ".join(
                f"{m} {c.speedup:.2f}x ({c.median_ms:.3f} ms)" for m, c in timed[:SHOWN_PER_LIST]))
        measured = sorted(((m, c) for m, c in cells if c is not None and c.rel_l2 is not None), key=lambda mc: -mc[1].rel_l2)
        if measured:
            say(f"{target} worst rel_l2: " + ", ".join(f"{m} {c.rel_l2:.3e}" for m, c in measured[:SHOWN_PER_LIST]))
    for row in result.rows:
        if row.error:
            say(f"{row.model} ERROR: {row.error}")
        else:
            for cell in row.cells:
                if cell.error:
                    say(f"{row.model} on {cell.target} ERROR: {cell.error}")
    if result.baseline is not None:
        for row in result.rows:
            for cell in row.cells:
                if cell.change is not None and cell.change.kind != "new":
                    style = {"regression": STATUS_STYLE["FAIL"], "fix": STATUS_STYLE["PASS"]}.get(cell.change.kind, "")
                    say(f"{cell.change.kind}: {row.model} on {cell.target}: {cell.change.words}", style)
        say(summary_line(result), STATUS_STYLE["FAIL"] if result.regressions else STATUS_STYLE["PASS"])
    else:
        say(summary_line(result), STATUS_STYLE["PASS"] if result.all_passed else STATUS_STYLE["FAIL"])
    print("wrote:", file=stdout)
    for path in written:
        print(f"  {inert(path)}", file=stdout)
    stdout.flush()


def summary_line(result: SweepResult) -> str:
    """One line: how many models, cells passed, and against a baseline the regressions and fixes."""
    cells = [cell for row in result.rows for cell in row.cells]
    passed = sum(cell.verdict == "PASS" for cell in cells)
    reused = sum(row.reused for row in result.rows)
    could_not_run = sum(row.error is not None for row in result.rows)
    line = (f"{len(result.rows)} models ({reused} reused, {could_not_run} could not run): {passed}/{len(cells)} "
            "cells passed")
    baseline = result.baseline
    if baseline is not None:
        line += (f"; against {baseline.directory}: {baseline.regressions} regressions, {baseline.fixes} fixes, "
                 f"{baseline.changed} other verdict changes, {baseline.moved} moved")
    return line
