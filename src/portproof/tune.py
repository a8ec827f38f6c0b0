"""`portproof tune`: on one device, the fastest configuration that still passes.

One session per batch size loads the model and runs the reference once; each configuration (backend x
dtype, with a channels-last variant of each PyTorch one when the model has 2-D convolutions past its stem and
image inputs; then the fastest passing compile one in the device's other torch.compile modes; then the CPU
thread counts of the fastest passing ones) is judged exactly as `check` judges a target and timed the same
way. Configurations that cannot run here are listed as skipped with the reason, without a run: a backend's
own probe (not installed, no such device), and on the CPU a short matmul probe that finds a dtype the CPU
only emulates. With `--budget`, cheap configurations go first (eager, then the exporters, then compilers)
and the ones that would not finish in time are skipped and listed as such.
With `--rescue`, a failing low-precision configuration gets a rescued variant (rescue.py), which can win.
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import replace
from datetime import datetime, timezone
from functools import cache
from typing import Callable

import torch

from .backends import registry
from .config import CheckConfig, InputSpec, TargetSpec
from .errors import ConfigError, PortproofError
from .results import TargetResult
from .results.tune import SKIPPED, TuneResult, TuneRow
from .session import Session

# Backends in the order their configurations are tried: cheap ones first (a compiler's first call takes the
# longest), and how many times the baseline's duration one of them is expected to take before it has run.
COST_ORDER = {"eager": 0, "onnxruntime": 1, "openvino": 1, "compile": 2}
COST_FACTOR = {"eager": 1.0, "onnxruntime": 2.0, "openvino": 2.0, "compile": 6.0}
# Within a backend: lower precision first (the likelier to be fast), then fp32.
DTYPE_ORDER = ("bf16", "fp16", "amp-bf16", "amp-fp16", "tf32", "fp32")
EMULATED_RATIO = 2.0  # a dtype whose probe matmul takes this many times fp32's time is emulated, not native
# torch.compile modes tried on the fastest passing compile configuration, per device: CUDA graphs cut the launch
# overhead that dominates small batches on a GPU; max-autotune times Triton kernels (compiles several times slower)
COMPILE_MODES = {"cuda": ("reduce-overhead", "max-autotune")}
# a mode's expected duration, until one has run, in times its backend's default mode's (vit_tiny on an H200:
# max-autotune's first call 68 s against 12 s)
MODE_COST_FACTOR = {"max-autotune": 6.0}
BASELINE = "eager"


def tune(config: CheckConfig, device: str, batch_sizes: tuple[int, ...], budget_s: float | None = None,
         backends: tuple[str, ...] | None = None, dtypes: tuple[str, ...] | None = None,
         threads: tuple[int, ...] | None = None, with_rescue: bool = False,
         progress: Callable[..., None] | None = None) -> TuneResult:
    say = progress or (lambda *_: None)
    started, clock = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
    grid = candidates(device, backends, dtypes)
    if not any(reason is None for _, reason in grid):
        raise ConfigError(f"no backend can run on {device} here: " + "; ".join(f"{s.label}: {r}" for s, r in grid))
    if config.threads is not None:  # --threads: the count the grid runs with (and each session sets it again)
        torch.set_num_threads(config.threads)
    thread_counts = cpu_thread_counts(threads) if device == "cpu" else (None,)
    rows: list[TuneRow] = []
    notes: list[str] = []
    budget = _Budget(budget_s, clock)
    for batch_size in batch_sizes:
        session_config = replace(config, targets=(), fp64_reference=False, layers=False,
                                 inputs=replace(config.inputs, batch_size=batch_size,
                                                num_samples=max(config.inputs.num_samples, batch_size)))
        with Session(session_config, say) as session:
            tuner = _Tuner(session, device, batch_size, thread_counts[0], budget, rows, say)
            tuner.run_grid(with_channels_last(grid) if takes_channels_last(session) else grid)
            tuner.run_compile_modes(COMPILE_MODES.get(device, ()))
            if with_rescue:
                tuner.rescue_failures()
            tuner.run_thread_counts(thread_counts[1:])
            notes.extend(n for n in session.notes if n not in notes)
    winners = {b: i for b in batch_sizes if (i := fastest_passing(rows, b)) is not None}
    return TuneResult(
        model=config.model.name, device=device, batch_sizes=tuple(batch_sizes), rows=tuple(rows),
        fastest_passing=winners, pareto={b: pareto_front(rows, b) for b in batch_sizes},
        reproduce={b: reproduce_command(config, rows[i]) for b, i in winners.items()},
        budget_s=budget_s, elapsed_s=time.perf_counter() - clock,
        notes=tuple(notes + ["configurations are compared without the float64 noise-floor run (a check of the "
                             "winner has it)"]),
        started_at=started, command_line=config.command_line)


def candidates(device: str, backends: tuple[str, ...] | None = None,
               dtypes: tuple[str, ...] | None = None) -> list[tuple[TargetSpec, str | None]]:
    """Every (backend, dtype) registered for `device`, with why it cannot run here (None: it can), eager fp32
    first, then cheap and promising ones first."""
    found = []
    for name, info in registry.backends().items():
        if device not in info.devices or (backends is not None and name not in backends):
            continue
        for dtype in info.dtypes:
            if dtypes is not None and dtype not in dtypes:
                continue
            spec = TargetSpec(backend=name, device=device, dtype=dtype)
            found.append((spec, why_not(spec)))
    if backends is None or BASELINE in backends:
        baseline = TargetSpec(backend=BASELINE, device=device)
        found = [(baseline, why_not(baseline))] + [(s, r) for s, r in found if s != baseline]

    def order(item):
        spec = item[0]
        if spec == TargetSpec(backend=BASELINE, device=device):
            return (-1, 0)
        return (COST_ORDER.get(spec.backend, 3), DTYPE_ORDER.index(spec.dtype) if spec.dtype in DTYPE_ORDER else 9)

    return sorted(found, key=order)


def takes_channels_last(session: Session) -> bool:
    """Whether the channels-last memory format can pay: the model has an image-like input and convolutions past its
    stem (two or more 2-D convolutions; a ViT's single patch embedding runs once, so its layout barely counts)."""
    convolutions = sum(isinstance(module, torch.nn.Conv2d) for module in session.loaded.network.modules())
    return convolutions >= 2 and any(tensor.dim() == 4 and tensor.is_floating_point()
                                     for tensor in session.input_set.tensors.values())


def with_channels_last(grid: list[tuple[TargetSpec, str | None]]) -> list[tuple[TargetSpec, str | None]]:
    """Each PyTorch configuration that can run followed by its channels-last variant."""
    extended = []
    for spec, reason in grid:
        extended.append((spec, reason))
        if reason is None and registry.info(spec.backend).keeps_fp32:
            extended.append((replace(spec, channels_last=True), None))
    return extended


def why_not(spec: TargetSpec) -> str | None:
    """Why `spec` cannot run here, found without running it; None when it can."""
    try:
        registry.require(spec)
    except PortproofError as error:
        return str(error)
    if spec.device == "cpu" and registry.info(spec.backend).keeps_fp32 and spec.dtype not in ("fp32", "tf32"):
        ratio = emulation_ratio(spec.dtype.removeprefix("amp-"))
        if ratio > EMULATED_RATIO:
            return (f"emulated on this CPU: a 512x512 matmul in {spec.dtype.removeprefix('amp-')} takes {ratio:.1f}x "
                    "fp32's time (probe), so it cannot be faster")
    return None


@cache
def emulation_ratio(dtype: str) -> float:
    """How many times fp32's time a 512x512 matmul takes in `dtype` on this CPU: about 1 or less where the CPU
    computes the dtype natively (AVX-512 BF16, AMX), far above where it converts each element."""
    wanted = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]

    def seconds(tensor_dtype) -> float:
        a = torch.randn(512, 512).to(tensor_dtype)
        torch.mm(a, a)  # first call: kernel selection
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            torch.mm(a, a)
            best = min(best, time.perf_counter() - start)
        return best

    return seconds(wanted) / seconds(torch.float32)


def cpu_thread_counts(requested: tuple[int, ...] | None) -> tuple[int, ...]:
    """The thread counts to try: the current one first (the grid runs with it), then 1 and half the cores."""
    current = torch.get_num_threads()
    others = requested if requested is not None else (1, max(1, current // 2))
    return tuple(dict.fromkeys((current, *others)))


def fastest_passing(rows: list[TuneRow], batch_size: int) -> int | None:
    passing = [(row.median_ms, i) for i, row in enumerate(rows)
               if row.batch_size == batch_size and row.status == "PASS" and row.median_ms is not None]
    return min(passing)[1] if passing else None


def pareto_front(rows: list[TuneRow], batch_size: int) -> tuple[int, ...]:
    """The passing rows of `batch_size` that no other passing row beats on both latency and rel_l2, fastest first."""
    passing = [i for i, row in enumerate(rows) if row.batch_size == batch_size and row.status == "PASS"
               and row.median_ms is not None and row.rel_l2 is not None]
    front = [i for i in passing if not any(
        rows[j].median_ms <= rows[i].median_ms and rows[j].rel_l2 <= rows[i].rel_l2
        and (rows[j].median_ms, rows[j].rel_l2) != (rows[i].median_ms, rows[i].rel_l2) for j in passing)]
    return tuple(sorted(front, key=lambda i: rows[i].median_ms))


def reproduce_command(config: CheckConfig, row: TuneRow) -> str:
    """The `portproof check` command line that checks `row`'s configuration again."""
    words = ["portproof", "check", config.model.name, "--target", row.target, "--batch-size", str(row.batch_size)]
    if row.threads is not None:
        words += ["--threads", str(row.threads)]
    if config.weights.source != "auto":
        words += ["--weights", config.weights.source]
    if config.inputs.source != InputSpec.source:
        words += ["--inputs", config.inputs.source]
    return shlex.join(words)


class _Budget:
    """What is left of --budget, and the expected duration of a configuration from those already run."""

    def __init__(self, budget_s: float | None, clock: float):
        self.budget_s, self.clock = budget_s, clock
        self.durations: dict[tuple[str, str | None], list[float]] = {}  # by (backend, mode)

    def left(self) -> float:
        return math.inf if self.budget_s is None else self.budget_s - (time.perf_counter() - self.clock)

    def expected(self, spec: TargetSpec) -> float:
        seen = self.durations.get((spec.backend, spec.mode))
        if seen:
            return sum(seen) / len(seen)
        in_default_mode = self.durations.get((spec.backend, None))
        baseline = self.durations.get((BASELINE, None))
        default = (sum(in_default_mode) / len(in_default_mode) if in_default_mode
                   else (baseline[0] if baseline else 0.0) * COST_FACTOR.get(spec.backend, 3.0))
        return default * MODE_COST_FACTOR.get(spec.mode, 1.0)

    def record(self, spec: TargetSpec, seconds: float) -> None:
        self.durations.setdefault((spec.backend, spec.mode), []).append(seconds)


class _Tuner:
    """The configurations of one batch size, against one session's reference."""

    def __init__(self, session: Session, device: str, batch_size: int, threads: int | None, budget: _Budget,
                 rows: list[TuneRow], say: Callable[..., None]):
        self.session, self.device, self.batch_size, self.threads = session, device, batch_size, threads
        self.budget, self.rows, self.say = budget, rows, say
        self.failing: list[tuple[TargetSpec, TargetResult]] = []
        self.baseline_ms: dict[int | None, float] = {}

    def run_grid(self, grid: list[tuple[TargetSpec, str | None]]) -> None:
        for done, (spec, reason) in enumerate(grid):
            self.say(f"tune: {spec.label} at batch {self.batch_size} ({self._best()})", done, len(grid))
            if reason is not None:
                self._add(TuneRow(spec.label, self.batch_size, self.threads, SKIPPED, reason))
                continue
            self.evaluate(spec, self.threads)
        self.say(f"tune: batch {self.batch_size} done ({self._best()})", len(grid), len(grid))

    def run_thread_counts(self, others: tuple[int | None, ...]) -> None:
        """The two fastest passing configurations again at each other thread count (CPU only)."""
        passing = sorted((row for row in self.rows if row.batch_size == self.batch_size and row.status == "PASS"
                          and row.median_ms is not None and row.threads == self.threads), key=lambda r: r.median_ms)
        specs = [TargetSpec(backend=BASELINE, device=self.device)] + [_spec(row.target) for row in passing[:2]]
        for count in others:
            for spec in dict.fromkeys(specs):
                self.evaluate(spec, count)

    def run_compile_modes(self, modes: tuple[str, ...]) -> None:
        """The fastest passing compile configuration again in each of torch.compile's other `modes`."""
        passing = [row for row in self.rows if row.batch_size == self.batch_size and row.status == "PASS"
                   and row.median_ms is not None and _spec(row.target).backend == "compile"]
        if not passing:
            return
        fastest = _spec(min(passing, key=lambda row: row.median_ms).target)
        for mode in modes:
            spec = replace(fastest, mode=mode)
            self.say(f"tune: {spec.label} at batch {self.batch_size} ({self._best()})")
            self.evaluate(spec, self.threads)

    def rescue_failures(self) -> None:
        from .rescue import rescue

        for spec, result in list(self.failing):
            if not registry.info(spec.backend).keeps_fp32 or spec.dtype in ("fp32", "tf32"):
                continue
            if self._skip_for_time(spec, factor=10.0):
                continue
            self.say(f"tune: rescuing {spec.label} at batch {self.batch_size}")
            found = rescue(self.session, spec, self.say, before=result)
            if found.rescued_target is not None:
                rescued = next(r for r in reversed(self.session.evaluated) if r.label == found.rescued_target)
                self._add(self._row(_spec(found.rescued_target), rescued, self.threads, rescued_from=spec.label))

    def evaluate(self, spec: TargetSpec, threads: int | None) -> None:
        is_baseline = spec == TargetSpec(backend=BASELINE, device=self.device)
        if not is_baseline and self._skip_for_time(spec, threads=threads):  # every speedup needs the baseline
            return
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)  # each side's process takes this process's count
        start = time.perf_counter()
        try:
            result = self.session.evaluate(spec)
        finally:
            torch.set_num_threads(before)
        self.budget.record(spec, time.perf_counter() - start)
        if is_baseline and result.latency is not None:
            self.baseline_ms[threads] = result.latency.median_ms
            if self.budget.left() < 0:
                raise ConfigError(f"--budget {self.budget.budget_s:g} s is too small: loading the model, the reference "
                                  f"and the baseline (eager fp32 at batch {self.batch_size}) alone took "
                                  f"{self.budget.budget_s - self.budget.left():.1f} s; raise it")
        if result.status == "FAIL" and threads == self.threads:
            self.failing.append((spec, result))
        self._add(self._row(spec, result, threads))

    def _skip_for_time(self, spec: TargetSpec, factor: float = 1.0, threads: int | None = None) -> bool:
        expected, left = self.budget.expected(spec) * factor, self.budget.left()
        if expected <= left:
            return False
        self._add(TuneRow(spec.label, self.batch_size, threads if threads is not None else self.threads, SKIPPED,
                          f"skipped for time: about {max(left, 0):.0f} s of the --budget left, and it takes about "
                          f"{expected:.0f} s"))
        return True

    def _row(self, spec: TargetSpec, result: TargetResult, threads: int | None, rescued_from: str | None = None) -> TuneRow:
        session = self.session
        output = session.classifier_output or session.output_names[0]
        comparison = result.comparison(output)
        rel_l2s = [c.rel_l2 for c in result.comparisons if c.rel_l2 is not None]
        latency = result.latency
        baseline = self.baseline_ms.get(threads)
        reason = result.error or ("; ".join(result.verdict.failures) if result.verdict and result.status == "FAIL" else None)
        return TuneRow(
            target=spec.label, batch_size=self.batch_size, threads=threads, status=result.status, reason=reason,
            output=output, cosine=comparison.cosine_similarity if comparison else None,
            rel_l2=max(rel_l2s) if rel_l2s else None,
            median_ms=latency.median_ms if latency else None,
            throughput=self.batch_size * 1000.0 / latency.median_ms if latency and latency.median_ms > 0 else None,
            speedup=baseline / latency.median_ms if baseline and latency and latency.median_ms > 0 else None,
            prepare_s=result.description.get("prepare_s"), cold_ms=latency.cold_ms if latency else None,
            rescued_from=rescued_from)

    def _add(self, row: TuneRow) -> None:
        self.rows.append(row)

    def _best(self) -> str:
        index = fastest_passing(self.rows, self.batch_size)
        if index is None:
            return "no passing configuration yet"
        best = self.rows[index]
        return f"best so far {best.target} {best.median_ms:.3f} ms"


def _spec(label: str) -> TargetSpec:
    from .config import parse_target

    return parse_target(label)
