"""Number and text formatting shared by the human-readable writers."""

from __future__ import annotations

import math
import re

# C0 and C1 control characters but tab and line breaks, which are whitespace to a page and to Markdown
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_MARKDOWN_SPECIALS = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "`": "\\`", "*": "\\*", "[": "\\[",
                      "]": "\\]", "~": "\\~", "#": "\\#", "\\": "\\\\",
                      "\n": " ", "\r": " "}  # a line break could start a heading, a list or an HTML block
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")


def number(value: float | None, digits: int = 6) -> str:
    """A float for people: fixed for ordinary magnitudes, scientific for tiny or huge ones."""
    if value is None:
        return "n/a"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.{max(digits - 2, 1)}e}"
    return f"{value:.{digits}g}"


def criterion_figures(verdict) -> str:
    """A CriterionVerdict's deciding figures in one line, the same in every language (the quantities are
    named as in summary.json): `logits: cosine_similarity 0.987 < 0.99, max_abs_diff 0.02 > 0.001`."""
    text = ", ".join(_term(term) for term in verdict.terms)
    return f"{verdict.output}: {text}" if verdict.output else text


def _term(term) -> str:
    if term.measured is None:
        return term.quantity
    if not term.relation:  # context: a count or a tolerance, as given
        return f"{term.quantity} {term.measured:g}"
    measured = str(int(term.measured)) if float(term.measured).is_integer() else number(term.measured)
    return f"{term.quantity} {measured} {term.relation} {term.limit:g}"


def milliseconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} ms"


def share(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def device_name(description: dict) -> str:
    """The device a side ran on, as its backend's description names it."""
    return str(description.get("device_name") or description.get("device") or "")


def visible_controls(text: object) -> str:
    """`text` with its control characters written out (ESC as `\\x1b`): a page shows nothing for them, and a
    terminal that prints the file would obey an escape sequence (colour, cursor moves, a new title)."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text))


def escape_markdown(text: object) -> str:
    """Strings from models and users may hold markup: show them as text in Markdown (and its HTML)."""
    escaped = "".join(_MARKDOWN_SPECIALS.get(ch, ch) for ch in visible_controls(text))
    # "_" between two letters or digits never opens or closes emphasis: names like cosine_similarity stay as written
    return _EMPHASIS_UNDERSCORE.sub(r"\\_", escaped)


def code_span(text: object) -> str:
    """`text` as a Markdown code span that nothing in it can close early: the fence is one backtick longer
    than its longest run of backticks, and line breaks (which could end the paragraph) become spaces."""
    text = visible_controls(" ".join(str(text).splitlines()))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_cell(text: object) -> str:
    """A code span inside a table cell: tables split cells at every unescaped `|`, inside code spans too, and
    show an escaped one as `|`."""
    return code_span(text).replace("|", "\\|")


def code_fence(text: object) -> str:
    """A fence for a code block holding `text`: longer than any run of backticks in it, so it stays open."""
    return "`" * max(3, max((len(run) for run in re.findall(r"`+", str(text))), default=0) + 1)


def verdict_table(result) -> tuple[tuple[str, ...], list[tuple[str, list[tuple[str, str]]]]]:
    """The targets × criteria table: the criteria asked for, and per target its label and one (status,
    deciding figures) cell per criterion; a target that raised has ERROR and its error in every cell."""
    names = result.config.criteria.presets
    return names, [(target.label, [_verdict_cell(target, name) for name in names]) for target in result.targets]


def _verdict_cell(target, name: str) -> tuple[str, str]:
    if target.error:
        return target.status, target.error
    verdict = next((v for v in target.criteria_verdicts if v.criterion == name), None)
    if verdict is not None:
        return verdict.status, criterion_figures(verdict)
    # a summary written before criteria were recorded: portproof's rules decided its status
    return (target.status, "") if name == "portproof" and not target.criteria_verdicts else ("—", "")
