"""Orchestration only: load, build inputs, run the reference and each target, compare, time.

A target that raises while it runs becomes that target's ERROR; the others still run. Problems that make
the whole check meaningless (unknown model, bad weights, absent device) raise a PortproofError before
any target runs.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable

import torch

from . import environment, faults, inputs, models, weights
from .backends import registry
from .backends.base import Backend
from .compare import compare_outputs, judge, relative_l2, with_noise_floor
from .config import CheckConfig, TargetSpec
from .errors import PortproofError, ReferenceRunError, describe
from .layers import LayerReport, compare_layers
from .layers_onnx import compare_layers_onnx
from .result import CheckResult, InputInfo, ModelInfo, ReferenceResult, TargetResult
from .timing import measure

# progress(message) says a step begins; progress(message, done, total) that the step so named is done/total
# of the way. The pipeline only calls it; the CLI decides what (if anything) the user sees.
Progress = Callable[..., None]


def run_check(config: CheckConfig, progress: Progress = lambda message, done=None, total=None: None) -> CheckResult:
    progress = _with_counts(progress)
    started, clock = _now(), time.perf_counter()
    notes: list[str] = []

    progress(f"loading {config.model.name}")
    loaded = models.load(config.model, config.weights)
    if not loaded.provenance.pretrained_used:
        notes.append("no pretrained weights were loaded: the model is randomly initialised (seed "
                     f"{loaded.provenance.random_seed}); the comparison checks numerics only")
    notes.extend(weights.risk_notes(loaded.provenance))
    input_set = inputs.build(config.inputs, loaded.data_config)
    batches = input_set.batches(config.inputs.batch_size)
    target_specs = _choose_targets(config, notes)
    # Every backend is created before anything runs, so an absent device stops the check at once.
    reference_backend = registry.create(config.reference)
    target_backends = [registry.create(spec) for spec in target_specs]

    reference, reference_outputs = _run_reference(reference_backend, loaded, batches, config, progress)
    reference_backend = None  # free the reference model before the targets load
    fp64_outputs = _run_fp64(loaded, batches, config, progress, notes)
    if fp64_outputs:
        reference = replace(reference, rel_l2_vs_fp64={
            name: relative_l2(fp64_outputs[name], reference_outputs[name]) for name in loaded.output_names})

    targets, target_tensors = [], {}
    for position, (spec, backend) in enumerate(zip(target_specs, target_backends)):
        progress(f"running target {position} ({spec.label})")
        result, outputs = _run_target(spec, backend, loaded, batches, reference_outputs, fp64_outputs,
                                      reference.latency, config, progress)
        target_backends[position] = backend = None  # free the target's model before the layer pass and the next target
        if config.layers and result.status != "ERROR":
            progress(f"comparing target {position} ({spec.label}) module by module")
            result = replace(result, layers=run_layer_pass(spec, loaded, input_set.tensor, config))
        targets.append(result)
        target_tensors[f"target-{position}"] = outputs

    tensors = None
    if config.output.save_tensors:
        # fp16/bf16 outputs are stored as float32 (exact), so any tool, numpy included, can read them.
        tensors = {"inputs": {"input": input_set.tensor}, "reference": {n: t.float() for n, t in reference_outputs.items()},
                   **{k: {n: t.float() for n, t in v.items()} for k, v in target_tensors.items() if v}}
    return CheckResult(
        config=replace(config, targets=tuple(target_specs)),
        model=_model_info(loaded, config),
        weights=loaded.provenance,
        inputs=_input_info(input_set, config),
        reference=reference,
        targets=tuple(targets),
        environment={**environment.collect(), "command_line": config.command_line},
        started_at=started,
        finished_at=_now(),
        duration_s=time.perf_counter() - clock,
        notes=tuple(notes),
        tensors=tensors,
    )


def _choose_targets(config: CheckConfig, notes: list[str]) -> tuple[TargetSpec, ...]:
    """The targets asked for; for `--target auto`, what is present, and a note saying what was chosen."""
    if config.targets is not None:
        return config.targets
    specs, why = registry.auto_targets()
    if config.single_target and len(specs) > 1:
        specs, why = specs[:1], f"{why}; the layer pass takes the first, {specs[0].label}"
    notes.append(why)
    return specs


def _run_reference(backend: Backend, loaded, batches, config: CheckConfig, progress: Progress):
    """The reference's outputs by name, timed; without them nothing can be compared, so a failure stops the check."""
    label = config.reference.label
    progress(f"running the reference ({label})")
    try:
        outputs, latency = faults.run_with_deadline(
            lambda step_progress: _run_side(backend, loaded.module, batches, config, step_progress,
                                            f"timing the reference ({label})"),
            config.target_timeout_s, progress)
    except PortproofError:
        raise
    except Exception as error:
        raise ReferenceRunError(f"the reference ({label}) failed, so nothing can be compared: "
                                f"{faults.describe_failure(error, config.reference.device_string, config.inputs.batch_size)}") from None
    named = dict(zip(loaded.output_names, outputs))
    result = ReferenceResult(label=label, description=backend.describe(),
                             output_shapes={name: tuple(t.shape) for name, t in named.items()},
                             latency=latency, rel_l2_vs_fp64=None)
    return result, named


def _run_fp64(loaded, batches, config: CheckConfig, progress: Progress, notes: list[str]) -> dict | None:
    """The float64 CPU outputs that measure the noise floor; None when skipped or failed (with a note)."""
    if not config.fp64_reference:
        return None
    progress("running the float64 reference (noise floor)")
    backend = registry.create(TargetSpec(device="cpu", dtype="fp64"))
    try:
        return dict(zip(loaded.output_names, faults.run_with_deadline(
            lambda step_progress: _run_all(backend, loaded.module, batches)[0], config.target_timeout_s)))
    except Exception as error:  # the noise floor is context, not the verdict: go on without it
        notes.append(f"the float64 run failed, so there is no noise floor: "
                     f"{faults.describe_failure(error, 'cpu', config.inputs.batch_size)}")
        return None


def _model_info(loaded, config: CheckConfig) -> ModelInfo:
    identity = loaded.identity
    return ModelInfo(requested=config.model.name, family=identity.family, architecture=identity.architecture,
                     tag=identity.tag, hub_repo=identity.hub_repo, num_parameters=loaded.num_parameters,
                     output_names=loaded.output_names, classifier_output=loaded.classifier_output)


def _input_info(input_set, config: CheckConfig) -> InputInfo:
    return InputInfo(kind=input_set.kind, num_samples=input_set.tensor.shape[0], batch_size=config.inputs.batch_size,
                     shape=tuple(input_set.tensor.shape), seed=input_set.seed, sources=input_set.sources,
                     skipped=input_set.skipped, preprocessing=input_set.preprocessing)


def _run_target(spec, backend, loaded, batches, named_reference, fp64_outputs, reference_latency, config,
                progress: Progress | None = None):
    """One target, start to end; any exception it raises becomes its ERROR result."""
    description = {"backend": spec.backend, "device": spec.device_string, "dtype": spec.dtype}
    try:
        outputs, latency = faults.run_with_deadline(
            lambda step_progress: _run_side(backend, loaded.module, batches, config, step_progress, f"timing {spec.label}"),
            config.target_timeout_s, progress)
        description = backend.describe()
        if len(outputs) != len(loaded.output_names):
            raise RuntimeError(f"returned {len(outputs)} outputs, the reference {len(loaded.output_names)}")
        named = dict(zip(loaded.output_names, outputs))
        comparisons = []
        for name in loaded.output_names:
            comparison = compare_outputs(named_reference[name], named[name], config.criteria, name=name,
                                         classifier=name == loaded.classifier_output)
            if fp64_outputs is not None and comparison.shape_match:
                comparison = with_noise_floor(
                    comparison,
                    relative_l2(fp64_outputs[name], named_reference[name]),
                    relative_l2(fp64_outputs[name], named[name]),
                )
            comparisons.append(comparison)
    except Exception as error:  # the target's failure is its result; the check goes on
        message = faults.describe_failure(error, spec.device_string, config.inputs.batch_size)
        return TargetResult(spec.label, "ERROR", description, error=message), {}
    verdict = judge(comparisons)
    speedup = None
    if latency is not None and reference_latency is not None and latency.median_ms > 0:
        speedup = reference_latency.median_ms / latency.median_ms
    return TargetResult(spec.label, verdict.status, description, tuple(comparisons), verdict, latency, speedup), named


def run_layer_pass(spec: TargetSpec, loaded, samples: torch.Tensor, config: CheckConfig) -> LayerReport:
    """The module-by-module comparison of one target, on every sample in one batch. A failure of the
    layer pass is reported in it and does not change the target's verdict."""
    notes: tuple[str, ...] = ()
    if config.reference.backend != "eager" or config.reference.dtype.startswith("amp-"):
        return LayerReport(spec.label, samples.shape[0], config.criteria, (), None, None, (), (
            f"no layer pass: it needs an eager reference without autocast, and the reference is {config.reference.label}",))
    if spec.backend == "compile":
        notes = (f"the layer pass ran {spec.device_string}/{spec.dtype} eagerly: torch.compile fuses modules, "
                 "so their outputs cannot be observed one by one",)
        spec = replace(spec, backend="eager")
    try:
        reference = registry.create(config.reference)
        reference.prepare(loaded.network, samples)
        if spec.backend == "onnxruntime":
            return compare_layers_onnx(reference.model, reference.place(samples), spec, config.criteria)
        return compare_layers(reference.model, loaded.network, reference.place(samples), spec, config.criteria, notes)
    except Exception as error:  # the target's verdict stands; the layer pass says why it has no rows
        return LayerReport(spec.label, samples.shape[0], config.criteria, (), None, None, (),
                           notes + (f"layer pass failed: {describe(error)}",))


def _run_side(backend: Backend, module, batches, config: CheckConfig, progress: Progress | None = None,
              timing_step: str = "timing"):
    outputs, cold_ms = _run_all(backend, module, batches)
    latency = None
    if config.timing.enabled:
        on_step = None
        if progress is not None:
            progress(timing_step)
            on_step = lambda done, total: progress(timing_step, done, total)  # noqa: E731
        latency = measure(backend.step(batches[0]), backend.synchronize, config.timing, batches[0].shape[0], cold_ms,
                          on_step)
    return outputs, latency


def _run_all(backend: Backend, module, batches) -> tuple[tuple[torch.Tensor, ...], float]:
    """Every batch through the backend, outputs concatenated per output; also the first call's time."""
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
    return tuple(torch.cat(parts) for parts in zip(*per_batch)), cold_ms


def _with_counts(progress: Progress) -> Progress:
    """A callback that takes only the message still works: it hears of each step, not of the counts."""
    try:
        inspect.signature(progress).bind("", 0, 0)
        return progress
    except (TypeError, ValueError):
        return lambda message, done=None, total=None: None if done is not None else progress(message)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
