"""Number and text formatting shared by the human-readable writers."""

from __future__ import annotations

import math


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


def milliseconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} ms"


def share(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def escape_markdown(text: object) -> str:
    """Strings from models and users may hold markup: show them as text in Markdown (and its HTML)."""
    table = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]"}
    return "".join(table.get(ch, ch) for ch in str(text))
