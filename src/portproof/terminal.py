"""What a person sees on the terminal: live progress while the check runs, then the summary table, the
verdict line or the summary JSON.

Progress and warnings go to stderr, results to stdout. A stream that is not a terminal gets plain lines
and no control characters (no colour, no cursor movement, no progress animation). Text that comes from
outside (model and file names, error messages) is shown `inert`: its control characters as visible escapes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

from .results import RANDOM_WEIGHTS_BANNER, CheckResult
from .report.i18n import rescue_lines, texts

STATUS_STYLE = {"PASS": "bold green", "FAIL": "bold red", "ERROR": "bold yellow"}
# C0 and C1 controls and DEL (an escape sequence can recolour, retitle or clear the terminal), and the
# bidirectional overrides, which make the shown text differ from the real one.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert(text: object) -> str:
    """`text` with every control character written as a visible escape (ESC as \\x1b, a line break as
    \\x0a): it prints as itself, on one line, and cannot drive the terminal."""
    return CONTROL_CHARACTERS.sub(_visible_escape, str(text))


def _visible_escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressDisplay:
    """The `progress` callback of `run_check`: progress(message) starts a step, progress(message, done,
    total) moves its bar. On a terminal, rich progress bars with the elapsed time of every step; elsewhere
    one plain line per step; nothing when quiet."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interactive = not quiet and _is_terminal(self.stream)
        self._progress = None
        self._task = None
        self._message: str | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(finished_text="[green]✓[/]"),
                TextColumn("{task.description}"),
                BarColumn(bar_width=28),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                refresh_per_second=8,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._finish_step()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, message: str, done: int | None = None, total: int | None = None) -> None:
        if self.quiet:
            return
        if message != self._message:
            self._finish_step()
            self._message = message
            if self._progress is not None:
                from rich.markup import escape  # the description is read as rich markup

                self._task = self._progress.add_task(escape(inert(message)), total=None, count="")
            else:
                print(f"portproof: {inert(message)}", file=self.stream, flush=True)
        if done is not None and total and self._progress is not None:
            self._progress.update(self._task, completed=done, total=total, count=f"{done}/{total}")

    def _finish_step(self) -> None:
        if self._progress is not None and self._task is not None:
            task = next(t for t in self._progress.tasks if t.id == self._task)
            total = task.total or 1
            self._progress.update(self._task, total=total, completed=total)
            self._progress.stop_task(self._task)
        self._task = None
        self._message = None


def verdict_line(result: CheckResult, banner: bool = True) -> str:
    """One line: the overall verdict, each target's, and (with `banner`) the random-weights warning when it
    applies."""
    passed = sum(t.status == "PASS" for t in result.targets)
    overall = "PASS" if result.all_passed else ("ERROR" if any(t.status == "ERROR" for t in result.targets) else "FAIL")
    targets = ", ".join(f"{t.label} {t.status}" for t in result.targets)
    line = f"{overall}: {passed}/{len(result.targets)} targets passed ({targets})"
    if banner and result.random_weights:
        line += f" — {RANDOM_WEIGHTS_BANNER}"
    return line


def print_summary(result: CheckResult, written: list[Path], stdout: TextIO | None = None,
                  stderr: TextIO | None = None) -> None:
    """Notes, the summary table (target, verdict, cosine, rel_l2, max_abs_diff, top-1, median latency,
    speedup), the broken rules, the first divergent modules of a layer pass, the verdict line and the
    files written."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    # Off a terminal: no colour or cursor codes, and a width that never wraps a row.
    console = Console(file=stdout, highlight=False, **({} if _is_terminal(stdout) else {"width": 160}))

    def say(text: Text) -> None:
        text.plain = inert(text.plain)  # notes and errors quote model and file names
        console.print(text, soft_wrap=True)  # a long line stays one line, for grep and copy

    if result.random_weights:
        Console(file=stderr, highlight=False).print(Text(f"WARNING: {RANDOM_WEIGHTS_BANNER}", style="bold yellow"))
    for note in result.notes:
        say(Text(f"note: {note}"))
    output = result.model.classifier_output or result.model.output_names[0]
    say(Text(f"{result.model.architecture}: output {output}, targets against the reference {result.reference.label}"))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("target")
    table.add_column("verdict")
    for name in ("cosine", "rel_l2", "max_abs_diff", "top-1", "median latency", "speedup"):
        table.add_column(name, justify="right")
    reference_latency = result.reference.latency
    table.add_row(f"reference {result.reference.label}", "", "", "", "", "",
                  f"{reference_latency.median_ms:.3f} ms" if reference_latency else "-", "1.00x" if reference_latency else "-")
    for target in result.targets:
        c = target.comparison(output)
        status = Text(target.status, style=STATUS_STYLE.get(target.status, ""))
        median = f"{target.latency.median_ms:.3f} ms" if target.latency else "-"
        speedup = f"{target.speedup:.2f}x" if target.speedup else "-"
        if c is None or c.cosine_similarity is None:
            table.add_row(target.label, status, "-", "-", "-", "-", median, speedup)
            continue
        top1 = f"{c.topk.tie_aware_top1_agreement * 100:.0f}%" if c.topk else "-"
        table.add_row(target.label, status, f"{c.cosine_similarity:.6f}", f"{c.rel_l2:.3e}", f"{c.max_abs_diff:.3e}", top1,
                      median, speedup)
    console.print(table)
    if result.config.criteria.presets != ("portproof",):
        console.print(_criteria_table(result))
    for line in _accuracy_lines(result):
        say(Text(line))
    for target in result.targets:
        problems = [target.error] if target.error else list(target.verdict.failures if target.verdict else ())
        decided_by_rules = not target.criteria_verdicts or target.criteria_verdicts[0].criterion == "portproof"
        for problem in problems:  # the rules' failures; under another deciding criterion, named as theirs
            say(Text(f"{target.label} {target.status if target.error or decided_by_rules else '(portproof rules)'}: {problem}"))
    for target in result.targets:
        layers = getattr(target, "layers", None)
        if layers is not None and layers.rows:
            say(Text(f"{target.label} layers: first divergent module local {layers.first_divergent or 'none'}, "
                     f"accumulated {layers.first_divergent_accumulated or 'none'}"))
        elif layers is not None:
            for note in layers.notes:
                say(Text(f"{target.label} layers: {note}"))
    for line in rescue_lines(result, texts("en")):
        say(Text(line))
    say(Text(verdict_line(result, banner=False), style=STATUS_STYLE["PASS" if result.all_passed else "FAIL"]))
    print_written(written, stdout)


def _criteria_table(result: CheckResult):
    """Targets × criteria: each cell the verdict and the figures that decided it."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from .report.formatting import verdict_table

    names, rows = verdict_table(result)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="verdict by criterion (the first decides)",
                  title_justify="left")
    table.add_column("target")
    for name in names:
        table.add_column(name)
    for label, cells in rows:
        table.add_row(inert(label), *[Text(f"{status} {inert(figures)}".strip(), style=STATUS_STYLE.get(status, ""))
                                      for status, figures in cells])
    return table


def _accuracy_lines(result: CheckResult) -> list[str]:
    """Top-1 / top-5 of each side on the labelled images, and the predictions that changed."""
    reference = result.reference.accuracy
    if reference is None:
        return []
    lines = [f"accuracy on {reference.samples} labelled images ({result.inputs.label_source}): reference "
             f"{result.reference.label} top-1 {reference.top1:.2%}, top-5 {reference.top5:.2%}"]
    if reference.unreadable:
        lines.append(f"  left out as unreadable: {len(reference.unreadable)} images")
    for target in result.targets:
        a = target.accuracy
        if a is None:
            continue
        ratio = f"{a.ratio:.4f}" if a.ratio is not None else "n/a"
        lines.append(f"  {target.label}: top-1 {a.accuracy.top1:.2%}, top-5 {a.accuracy.top5:.2%}, ratio {ratio}; "
                     f"{a.changed} changed ({a.right_to_wrong} right→wrong, {a.wrong_to_right} wrong→right)")
        lines += [f"    {c.file}: label {c.label}, reference {c.reference}, target {c.target} "
                  f"({c.kind.replace('_to_', '→')})" for c in a.first_changes[:5]]
    return lines


def print_written(written: list[Path], stream: TextIO | None = None) -> None:
    """The files written, one per line (plain text: paths are copied from here)."""
    stream = stream or sys.stdout
    print("wrote:", file=stream)
    for path in written:
        print(f"  {inert(path)}", file=stream)
    stream.flush()



def print_tune(result, lines: list[str], written: list[Path], quiet: bool = False, stdout: TextIO | None = None) -> None:
    """Every configuration of a tune, then the fastest passing one per batch size and the files written."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .report.tune_files import HEADER, table_rows

    stdout = stdout or sys.stdout
    console = Console(file=stdout, highlight=False, **({} if _is_terminal(stdout) else {"width": 200}))
    if not quiet:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for name in HEADER:
            table.add_column(name, overflow="fold")
        for row in table_rows(result):
            table.add_row(*[Text(inert(cell), style=STATUS_STYLE.get(cell, "")) for cell in row])
        console.print(table)
    for line in lines:
        console.print(Text(inert(line)), soft_wrap=True)
    if not quiet:
        print_written(written, stdout)
