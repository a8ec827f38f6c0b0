"""A whole check: the model, its weights' provenance, the inputs, the reference and every target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import CheckConfig
from .accuracy import Accuracy, TargetAccuracy
from .comparison import OutputComparison, Verdict
from .criteria import CriterionVerdict
from .layers import LayerReport
from .rescue import RescueResult

SCHEMA_VERSION = "1.0"
RANDOM_WEIGHTS_BANNER = "RANDOM WEIGHTS — numerics check only, not a scoring report"
HIGH_SPREAD_CV = 0.10  # a latency coefficient of variation above this earns a warning


@dataclass(frozen=True)
class WeightsProvenance:
    # "file" | "modelscope-cache" | "hf-cache" | "hf-download" | "random" | "as-given" (a factory's or the
    # caller's own module, whose weights portproof did not load)
    source_kind: str
    pretrained_used: bool
    local_weight_used: bool  # read from this machine's disk without downloading in this run
    path: str | None = None
    file_size: int | None = None
    sha256: str | None = None
    hub_repo: str | None = None
    missing_keys: tuple[str, ...] = ()
    unexpected_keys: tuple[str, ...] = ()
    partial_allowed: bool = False
    pickle_trusted: bool = False  # the checkpoint was unpickled with weights_only=False (--trust-pickle)
    nonfinite_tensors: tuple[str, ...] = ()  # "<key>: <n> NaN, <m> Inf", loaded under --allow-nonfinite-weights
    random_seed: int | None = None
    searched: tuple[str, ...] = ()  # every place looked at, in order, with what was found there
    factory: str | None = None  # where the module came from when it is not a registered family's: "pkg.mod:make"
    # share of the model's parameters, by element count, that the checkpoint supplied (None: no checkpoint
    # loaded); under weights.PRETRAINED_SHARE the run counts as random weights unless accepted as pretrained
    loaded_share: float | None = None
    unwrapped: tuple[str, ...] = ()  # what was taken off to reach the state dict: "nested under 'state_dict'", ...
    file_format: str | None = None  # "safetensors" | "pickle", as the file's bytes say (not its name)
    dtype_conversions: tuple[str, ...] = ()  # "<n> tensors stored as float16, loaded as float32"
    nonfloat_tensors: tuple[str, ...] = ()  # "<key>: int8 into float32", loaded under --allow-nonfloat-weights


@dataclass(frozen=True)
class LatencyStats:
    """Per-batch latency in milliseconds (timing.summarize fills it)."""

    batch_size: int
    warmup: int
    iters: int
    cold_ms: float | None  # the very first forward (lazy initialisation, compilation)
    mean_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    cv: float  # std / mean
    throughput_samples_per_s: float
    samples_ms: tuple[float, ...]

    @property
    def high_spread(self) -> bool:
        return self.cv > HIGH_SPREAD_CV


@dataclass(frozen=True)
class ModelInfo:
    requested: str
    family: str
    architecture: str
    tag: str | None
    hub_repo: str | None
    num_parameters: int
    output_names: tuple[str, ...]
    classifier_output: str | None
    # output -> the input whose zeros mark positions left out of that output's metrics (padding tokens)
    output_masks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InputInfo:
    kind: str
    num_samples: int
    batch_size: int
    shape: tuple[int, ...]  # of the first input
    seed: int
    sources: tuple[str, ...]
    skipped: tuple[str, ...]
    preprocessing: dict[str, Any]
    # every input by name: shape and dtype ("float32", "int64", ...), in the order the model takes them
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    # labelled inputs (README "Task accuracy"): how many images, and where their labels came from
    labelled_samples: int | None = None
    label_source: str | None = None


@dataclass(frozen=True)
class ReferenceResult:
    label: str
    description: dict[str, Any]
    output_shapes: dict[str, tuple[int, ...]]
    latency: LatencyStats | None
    # rel_l2 of this fp32 reference against a float64 run of the same model, per output (the noise floor)
    rel_l2_vs_fp64: dict[str, float] | None
    accuracy: Accuracy | None = None  # on the labelled inputs, when there are any


@dataclass(frozen=True)
class TargetResult:
    label: str
    status: str  # "PASS" | "FAIL" (by the first criterion of criteria_verdicts) | "ERROR"
    description: dict[str, Any]
    comparisons: tuple[OutputComparison, ...] = ()
    verdict: Verdict | None = None
    latency: LatencyStats | None = None
    speedup: float | None = None  # reference median latency / target median latency
    error: str | None = None
    layers: LayerReport | None = None  # with --layers: the module-by-module comparison
    criteria_verdicts: tuple[CriterionVerdict, ...] = ()  # one per criterion asked for, in the order asked
    accuracy: TargetAccuracy | None = None  # on the labelled inputs, against the reference's predictions

    def comparison(self, name: str) -> OutputComparison | None:
        return next((c for c in self.comparisons if c.name == name), None)


@dataclass(frozen=True)
class CheckResult:
    config: CheckConfig
    model: ModelInfo
    weights: WeightsProvenance
    inputs: InputInfo
    reference: ReferenceResult
    targets: tuple[TargetResult, ...]
    environment: dict[str, Any]
    started_at: str
    finished_at: str
    duration_s: float
    notes: tuple[str, ...] = ()  # what the user should know about how the run was set up
    schema_version: str = SCHEMA_VERSION
    # Kept only with --save-tensors: {"inputs": {...}, "reference": {...}, "target-0": {...}, ...} of torch
    # tensors (typed Any: this module imports no torch)
    tensors: dict[str, dict[str, Any]] | None = field(default=None, repr=False)
    rescue: RescueResult | None = None  # `portproof rescue`: what the precision rescue found
    # what third-party code printed while the sides ran, written beside the reports (runtime_output.log)
    captured_output: str | None = field(default=None, repr=False)

    @property
    def all_passed(self) -> bool:
        return all(t.status == "PASS" for t in self.targets)

    @property
    def random_weights(self) -> bool:
        """No pretrained weights behind the numbers: a random initialisation, or a checkpoint that supplied too
        small a share of the model to count as pretrained. A module of the caller's own whose weights portproof
        did not load ("as-given") has no share measured, so it never counts here."""
        weights = self.weights
        return weights.source_kind == "random" or (weights.loaded_share is not None and not weights.pretrained_used)
