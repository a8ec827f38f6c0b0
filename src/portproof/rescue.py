"""Precision rescue: for a low-precision target that fails, a small set of modules that, run in fp32 on the same
device (precision.keep_fp32), make it pass.

The layer pass ranks the modules by their own (local) error. The search keeps the worst 1, 2, 4, 8, ... of them
in fp32 until the target passes, then prunes: it drops each module whose removal still passes, again until
no single removal passes. The set is then minimal: removing any one module makes the target fail again.
When even every ranked module kept in fp32 fails, no fp32 set rescues the target: its failure is not one of
precision (a broken kernel's NaN, a wrong result). Each variant is judged as `check` judges it, untimed;
the rescued target is then timed like any other.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

from .config import TargetSpec
from .errors import ConfigError
from .layers import ROOT_NAME
from .precision import outermost
from .results import LayerReport, TargetResult
from .results.rescue import ALREADY_PASSES, CANNOT_RUN, NOT_RESCUED, RESCUED, RescueResult
from .session import Session


def rescue(session: Session, spec: TargetSpec, progress: Callable[..., None] | None = None,
           before: TargetResult | None = None) -> RescueResult:
    """Rescue `spec` (evaluated, with the rescued target, into the session's result); `before` is its result
    when the caller has evaluated it already."""
    say = progress or (lambda *_: None)
    if spec.dtype == "fp32":
        raise ConfigError(f"target {spec.label} runs in fp32: a precision rescue keeps modules of a lower-precision "
                          "target in fp32; give one, e.g. cpu/bf16")
    before = before or session.evaluate(spec)
    if before.status == "PASS":
        return _result(spec, ALREADY_PASSES, before, None, 0, 0, "it passes as it is: nothing to keep in fp32")
    if before.status == "ERROR":
        return _result(spec, CANNOT_RUN, before, None, 0, 0, f"it does not run, so no precision can rescue it: {before.error}")
    ranking = ranked_modules(session.layer_pass(spec, modes=("local",)))  # the ranking needs no accumulated mode
    if not ranking:
        return _result(spec, NOT_RESCUED, before, None, 0, 0, "the layer pass compared no module, so there is nothing "
                       "to rank and keep in fp32")
    search = _Search(session, spec, say)
    size = 1
    while not search.passes(ranking[:size]):
        if size >= len(ranking):
            return _result(spec, NOT_RESCUED, before, None, len(ranking), search.evaluations,
                           f"even all {len(ranking)} compared modules kept in fp32 fail, so no fp32 set rescues it: the "
                           "failure is not one of precision (NaN from a broken kernel, or a wrong result)")
        size = min(2 * size, len(ranking))
    kept = search.prune(outermost(ranking[:size]))
    say(f"rescued {spec.label} by keeping {len(kept)} module(s) in fp32; timing it")
    after = session.evaluate(replace(spec, keep_fp32=tuple(kept)))
    return _result(spec, RESCUED, before, after, len(ranking), search.evaluations,
                   f"keeping {len(kept)} module(s) in fp32 makes it pass; removing any one of them makes it fail again",
                   tuple(kept))


def ranked_modules(report: LayerReport) -> list[str]:
    """The module names of the layer pass's rows, largest local error first (a non-finite output first of all);
    each module once (its first call), the model itself left out."""
    def error(row) -> float:
        local = row.local
        if local.target_nonfinite > local.reference_nonfinite:
            return math.inf
        return local.rel_l2 if local.rel_l2 is not None and math.isfinite(local.rel_l2) else -1.0

    names: dict[str, float] = {}
    for row in report.rows:
        name = row.name.split("#", 1)[0]
        if name and name != ROOT_NAME:  # the model as a whole is the fp32 model, not a rescue
            names[name] = max(names.get(name, -1.0), error(row))
    return [name for name, value in sorted(names.items(), key=lambda item: -item[1]) if value >= 0]


class _Search:
    def __init__(self, session: Session, spec: TargetSpec, say: Callable[..., None]):
        self.session, self.spec, self.say = session, spec, say
        self.evaluations = 0

    def passes(self, kept: list[str]) -> bool:
        self.evaluations += 1
        self.say(f"rescue: trying {len(kept)} module(s) in fp32 (variant {self.evaluations})")
        result: TargetResult = self.session.judge_only(replace(self.spec, keep_fp32=tuple(kept)))
        return result.status == "PASS"

    def prune(self, kept: list[str]) -> list[str]:
        """Drop, least harmful first, each module whose removal still passes; repeat until none can go."""
        changed = True
        while changed and len(kept) > 1:
            changed = False
            for name in reversed(list(kept)):
                trial = [n for n in kept if n != name]
                if trial and self.passes(trial):
                    kept, changed = trial, True
        return kept


def _result(spec: TargetSpec, outcome: str, before: TargetResult, after: TargetResult | None, candidates: int,
            evaluations: int, reason: str, modules: tuple[str, ...] = ()) -> RescueResult:
    def median(result: TargetResult | None) -> float | None:
        return result.latency.median_ms if result is not None and result.latency is not None else None

    return RescueResult(target=spec.label, outcome=outcome, modules=modules,
                        rescued_target=after.label if after is not None else None, candidates=candidates,
                        evaluations=evaluations, latency_before_ms=median(before), latency_after_ms=median(after),
                        reason=reason)
