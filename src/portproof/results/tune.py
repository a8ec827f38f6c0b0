"""What `portproof tune` found: every configuration it judged and timed (or skipped, with the reason), the
fastest passing one per batch size, and the accuracy/latency Pareto front."""

from __future__ import annotations

from dataclasses import dataclass

SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class TuneRow:
    target: str  # the target spec (`onnxruntime@cpu`, `cpu/bf16+fp32=head`)
    batch_size: int
    threads: int | None  # the CPU thread count it ran with; None for an accelerator
    status: str  # PASS | FAIL | ERROR (judged exactly as `check` judges) | SKIPPED
    reason: str | None = None  # why it failed, errored or was skipped
    output: str | None = None  # the output the figures below are of (the classifier's, else the first)
    cosine: float | None = None
    rel_l2: float | None = None  # the largest over the outputs
    median_ms: float | None = None  # per batch
    throughput: float | None = None  # samples per second at the median
    speedup: float | None = None  # eager fp32's median on the same device, batch size and threads, over this one's
    prepare_s: float | None = None  # copy, cast, export or compile, before the first run: not in the latency
    cold_ms: float | None = None  # the first run (a compiler's work on first call shows here)
    rescued_from: str | None = None  # the failing target this one rescues (tune --rescue)


@dataclass(frozen=True)
class TuneResult:
    model: str
    device: str
    batch_sizes: tuple[int, ...]
    rows: tuple[TuneRow, ...]
    fastest_passing: dict[int, int]  # batch size -> index in rows of the fastest PASS (none: no key)
    pareto: dict[int, tuple[int, ...]]  # batch size -> indexes in rows: no PASS is both faster and more accurate
    reproduce: dict[int, str]  # batch size -> the `portproof check` command line of its winner
    budget_s: float | None
    elapsed_s: float
    notes: tuple[str, ...]
    started_at: str
    command_line: str
