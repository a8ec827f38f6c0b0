"""What runs inside a side's process (worker.py): one side run on every batch and timed, or one layer pass.
Module-level functions of picklable arguments, so that a fresh child can be handed them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .backends import registry
from .backends.torch_eager import EagerBackend
from .config import Criteria, TargetSpec, TimingSpec
from .results import LatencyStats, LayerReport
from .timing import measure

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SideRun:
    outputs: Tensors  # every batch's outputs, concatenated per name, on the CPU
    latency: LatencyStats | None
    description: dict[str, Any]


def make_backend(spec: TargetSpec):
    """The backend for `spec`; fp64 (the noise floor's dtype, not offered to users) is eager on the CPU."""
    return EagerBackend(spec) if spec.dtype == "fp64" else registry.create(spec)


def run_side(spec: TargetSpec, module: nn.Module, batches: list[Tensors], timing: TimingSpec, timing_step: str, *,
             progress: Callable[..., None] | None = None) -> SideRun:
    """Prepare the backend, run every batch (the first one's time is the cold start), then time the first batch."""
    backend = make_backend(spec)
    backend.prepare(module, batches[0])
    per_batch = []
    for index, batch in enumerate(batches):
        if index == 0:
            start = time.perf_counter()
            per_batch.append(backend.run(batch))
            backend.synchronize()
            cold_ms = (time.perf_counter() - start) * 1000.0
        else:
            per_batch.append(backend.run(batch))
    outputs = {name: torch.cat([outputs[name] for outputs in per_batch]) for name in per_batch[0]}
    latency = None
    if timing.enabled:
        on_step = None
        if progress is not None:
            progress(timing_step)
            on_step = lambda done, total: progress(timing_step, done, total)  # noqa: E731
        first = batches[0]
        latency = measure(backend.step(first), backend.synchronize, timing, next(iter(first.values())).shape[0],
                          cold_ms, on_step)
    return SideRun(outputs, latency, backend.describe())


def run_layer_pass(reference: TargetSpec, network: nn.Module, samples: Tensors, target: TargetSpec, mode: str,
                   criteria: Criteria, notes: tuple[str, ...], *, progress: Callable[..., None] | None = None) -> LayerReport:
    """The layer pass of one target ("eager" or "graph", as its backend declares) against an eager reference."""
    from .layers import compare_layers
    from .layers_onnx import compare_layers_onnx

    reference_backend = EagerBackend(reference)
    reference_backend.prepare(network, samples)
    placed = reference_backend.place(samples)
    if mode == "graph":
        return compare_layers_onnx(reference_backend.model, placed, target, criteria, notes)
    return compare_layers(reference_backend.model, network, placed, target, criteria, notes)
