"""What a check found: plain dataclasses that the writers render and nothing else computes on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .compare import OutputComparison, Verdict
from .layers import LayerReport
from .config import CheckConfig
from .timing import LatencyStats
from .weights import WeightsProvenance

SCHEMA_VERSION = "1.0"
RANDOM_WEIGHTS_BANNER = "RANDOM WEIGHTS — numerics check only, not a scoring report"


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


@dataclass(frozen=True)
class InputInfo:
    kind: str
    num_samples: int
    batch_size: int
    shape: tuple[int, ...]
    seed: int
    sources: tuple[str, ...]
    skipped: tuple[str, ...]
    preprocessing: dict[str, Any]


@dataclass(frozen=True)
class ReferenceResult:
    label: str
    description: dict[str, Any]
    output_shapes: dict[str, tuple[int, ...]]
    latency: LatencyStats | None
    # rel_l2 of this fp32 reference against a float64 run of the same model, per output (the noise floor)
    rel_l2_vs_fp64: dict[str, float] | None


@dataclass(frozen=True)
class TargetResult:
    label: str
    status: str  # "PASS" | "FAIL" | "ERROR"
    description: dict[str, Any]
    comparisons: tuple[OutputComparison, ...] = ()
    verdict: Verdict | None = None
    latency: LatencyStats | None = None
    speedup: float | None = None  # reference median latency / target median latency
    error: str | None = None
    layers: LayerReport | None = None  # with --layers: the module-by-module comparison

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
    # Kept only with --save-tensors: {"inputs": {...}, "reference": {...}, "target-0": {...}, ...}
    tensors: dict[str, dict[str, torch.Tensor]] | None = field(default=None, repr=False)

    @property
    def all_passed(self) -> bool:
        return all(t.status == "PASS" for t in self.targets)

    @property
    def random_weights(self) -> bool:
        return not self.weights.pretrained_used
