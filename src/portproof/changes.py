"""What changed between two runs of the same cells (a sweep against its --baseline, `portproof diff A B`):
pure comparison of matrix cells, no files, no torch."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .results.sweep import Cell, Change


@dataclass(frozen=True)
class MoveFactors:
    """A metric "moved" when now / before (or before / now) is above its factor."""

    rel_l2: float = 2.0
    latency: float = 1.5


def compare_cell(before: Cell | None, now: Cell, factors: MoveFactors) -> Change | None:
    """How `now` differs from `before` (None: not at all, within the factors)."""
    if before is None:
        return Change("new", "not in the baseline")
    words = []
    if before.verdict != now.verdict:
        words.append(f"{before.verdict} → {now.verdict}")
    rel_l2 = _factor(before.rel_l2, now.rel_l2)
    if rel_l2 is not None and _beyond(rel_l2, factors.rel_l2):
        words.append(f"rel_l2 ×{rel_l2:.3g} ({before.rel_l2:.3e} → {now.rel_l2:.3e})")
    latency = _factor(before.median_ms, now.median_ms)
    if latency is not None and _beyond(latency, factors.latency):
        pace = "slower" if latency > 1 else "faster"
        words.append(f"latency ×{latency:.3g} {pace} ({before.median_ms:.3f} → {now.median_ms:.3f} ms)")
    if not words:
        return None
    return Change(_kind(before.verdict, now.verdict), "; ".join(words), before.verdict, rel_l2, latency)


def with_changes(cells: tuple[Cell, ...], before: dict[str, Cell], factors: MoveFactors) -> tuple[Cell, ...]:
    """`cells` with their change against `before` (cells by target label)."""
    return tuple(replace(cell, change=compare_cell(before.get(cell.target), cell, factors)) for cell in cells)


def _kind(before: str, now: str) -> str:
    if before == now:
        return "moved"
    if before == "PASS":
        return "regression"
    return "fix" if now == "PASS" else "changed"


def _factor(before: float | None, now: float | None) -> float | None:
    if before is None or now is None or before <= 0 or now <= 0:
        return None
    return now / before


def _beyond(factor: float, limit: float) -> bool:
    return factor > limit or factor < 1 / limit
