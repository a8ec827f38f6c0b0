"""What a precision rescue found (rescue.py): the modules that, kept in fp32, make a failing low-precision
target pass, and what keeping them costs."""

from __future__ import annotations

from dataclasses import dataclass

RESCUED, ALREADY_PASSES, NOT_RESCUED, CANNOT_RUN = "rescued", "already passes", "not rescued", "cannot run"


@dataclass(frozen=True)
class RescueResult:
    target: str  # the target asked about, as given
    outcome: str  # RESCUED | ALREADY_PASSES | NOT_RESCUED | CANNOT_RUN
    modules: tuple[str, ...]  # kept in fp32 by the rescue; removing any one makes the target fail again
    rescued_target: str | None  # the target spec that applies it: `cpu/bf16+fp32=blocks.11.mlp,head`
    candidates: int  # modules ranked by the layer pass's local error, from which the set was chosen
    evaluations: int  # untimed runs of variants the search made
    latency_before_ms: float | None  # median per batch, without and with the rescue
    latency_after_ms: float | None
    reason: str  # the outcome in a sentence

    @property
    def latency_cost(self) -> float | None:
        """How many times slower the rescued target is than the failing one (1.0: free)."""
        if self.latency_before_ms and self.latency_after_ms:
            return self.latency_after_ms / self.latency_before_ms
        return None
