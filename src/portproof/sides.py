"""What runs inside a side's process (worker.py): one side run on every batch and timed (and streamed through
the labelled images, when there are any), or one layer pass. Module-level functions of picklable arguments,
so that a fresh child can be handed them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .backends import registry
from .backends.torch_eager import EagerBackend
from .config import Criteria, TargetSpec, TimingSpec
from .errors import InputError
from .labelled import Dataset, LabelledImages
from .results import LatencyStats, LayerReport
from .timing import measure

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class AccuracyPass:
    """The labelled images to stream through a side, and where they go in and the class scores come out."""

    images: LabelledImages
    data_config: dict[str, Any]  # timm's preprocessing
    input_name: str
    output_name: str  # the classifier output
    batch_size: int


@dataclass(frozen=True)
class Predictions:
    top: tuple[tuple[int, ...], ...]  # per image: the top-5 classes (fewer when there are fewer), best first
    readable: tuple[bool, ...]  # per image: False when it could not be read (its classes are meaningless)


@dataclass(frozen=True)
class SideRun:
    outputs: Tensors  # every batch's outputs, concatenated per name, on the CPU
    latency: LatencyStats | None
    description: dict[str, Any]
    predictions: Predictions | None = None  # on the labelled images, when an AccuracyPass was given


def make_backend(spec: TargetSpec):
    """The backend for `spec`; fp64 (the noise floor's dtype, not offered to users) is eager on the CPU."""
    return EagerBackend(spec) if spec.dtype == "fp64" else registry.create(spec)


def run_side(spec: TargetSpec, module: nn.Module, batches: list[Tensors], timing: TimingSpec, label: str,
             task: AccuracyPass | None = None, *, progress: Callable[..., None] | None = None) -> SideRun:
    """Prepare the backend, run every batch (the first one's time is the cold start), time the first batch,
    then stream the labelled images of `task` through it."""
    backend = make_backend(spec)
    started = time.perf_counter()
    backend.prepare(module, batches[0])  # copy, cast, export or compile: reported apart from the latency
    prepare_s = time.perf_counter() - started
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
            progress(f"timing {label}")
            on_step = lambda done, total: progress(f"timing {label}", done, total)  # noqa: E731
        first = batches[0]
        latency = measure(backend.step(first), backend.synchronize, timing, next(iter(first.values())).shape[0],
                          cold_ms, on_step)
    predictions = predict(backend, task, f"accuracy of {label}", progress) if task is not None else None
    return SideRun(outputs, latency, {**backend.describe(), "prepare_s": prepare_s}, predictions)


def predict(backend, task: AccuracyPass, step: str, progress: Callable[..., None] | None) -> Predictions:
    """Every labelled image through the prepared backend, one batch in memory at a time: its top-5 classes."""
    from torch.utils.data import DataLoader

    total = len(task.images.files)
    top: list[tuple[int, ...]] = []
    readable: list[bool] = []
    for images, readable_batch in DataLoader(Dataset(task.images, task.data_config), batch_size=task.batch_size):
        outputs = backend.run({task.input_name: images})
        if task.output_name not in outputs:
            raise InputError(f"labelled inputs measure a classifier's accuracy from its {task.output_name} output, and the "
                             f"model returns {', '.join(outputs)}; return the class scores as {task.output_name}")
        scores = outputs[task.output_name].float()
        top += [tuple(row) for row in scores.topk(min(5, scores.shape[1]), dim=1).indices.tolist()]
        readable += readable_batch.tolist()
        if progress is not None:
            progress(f"{step} on {total} labelled images", len(top), total)
    return Predictions(tuple(top), tuple(readable))


def run_layer_pass(reference: TargetSpec, network: nn.Module, samples: Tensors, target: TargetSpec, mode: str,
                   criteria: Criteria, notes: tuple[str, ...], modes: tuple[str, ...], *,
                   progress: Callable[..., None] | None = None) -> LayerReport:
    """The layer pass of one target ("eager" or "graph", as its backend declares) against an eager reference;
    `modes` as compare_layers takes them (a graph has the accumulated mode only)."""
    from .layers import compare_layers
    from .layers_onnx import compare_layers_onnx

    reference_backend = EagerBackend(reference)
    reference_backend.prepare(network, samples)
    placed = reference_backend.place(samples)
    if mode == "graph":
        return compare_layers_onnx(reference_backend.model, placed, target, criteria, notes)
    return compare_layers(reference_backend.model, network, placed, target, criteria, notes, modes)
