"""The session: load a model once, run the reference (and the float64 noise-floor run) once, then evaluate
any number of targets against it. `run_check` is one session with the targets of its config; tune and
sweep use sessions the same way.

A target that raises while it runs becomes that target's ERROR; the others still run. Problems that make
the whole check meaningless (unknown model, bad weights, absent device) raise a PortproofError before
any target runs.
"""

from __future__ import annotations

import inspect
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import torch
from torch import nn

from . import accuracy, criteria, environment, faults, inputs, models, precision, sides, weights, worker
from .backends import registry
from .compare import compare_outputs, judge, relative_l2, with_noise_floor
from .config import ISOLATION_MODES, CheckConfig, TargetSpec
from .errors import ConfigError, PortproofError, ReferenceRunError
from .report import CAPTURED_OUTPUT_FILE
from .results import CheckResult, InputInfo, LayerReport, ModelInfo, ReferenceResult, TargetResult
from .results.layers import MODES as LAYER_MODES

# progress(message) says a step begins; progress(message, done, total) that the step so named is done/total
# of the way. The session only calls it; the CLI decides what (if anything) the user sees.
Progress = Callable[..., None]
Tensors = dict[str, torch.Tensor]


class Session:
    """One model, one input set, one reference run; `evaluate(spec)` compares and times a target against it.

        session = Session(CheckConfig(model=ModelSpec("resnet18")))
        for spec in session.targets:
            print(session.evaluate(spec).status)
        result = session.result()

    `module` and `inputs` check a model of your own instead of `config.model`: an nn.Module (its weights as
    they are, unless `config.weights.source` is a checkpoint path) and its inputs, a tensor or {name: tensor}
    with the samples in dimension 0 (without them, the module's declared `input_shape` or timm-style
    `pretrained_cfg` gives the default inputs).
    """

    def __init__(self, config: CheckConfig = CheckConfig(), progress: Progress | None = None, *,
                 module: nn.Module | None = None, inputs: torch.Tensor | Mapping[str, torch.Tensor] | None = None):
        self.config = config
        self.progress = _with_counts(progress or _silent)
        self.started_at, self._clock = _now(), time.perf_counter()
        self.notes: list[str] = []
        if config.isolation not in ISOLATION_MODES:
            raise ConfigError(f"isolation {config.isolation!r}: choose one of {', '.join(ISOLATION_MODES)}")
        if config.threads is not None:  # each side's process takes this process's count (worker.run)
            torch.set_num_threads(config.threads)
        criteria.require(config.criteria)
        if config.isolation == "process":
            worker.start()  # the fork server imports torch while this process loads the model
        # what third-party code prints while the sides run; removed by close() (or when the session is collected)
        self._captured = tempfile.NamedTemporaryFile(prefix="portproof-output-", suffix=".log")
        try:
            self._set_up(module, inputs)
        except BaseException:
            self.close()
            raise

    def _set_up(self, module: nn.Module | None, inputs) -> None:
        config = self.config
        with worker.stdout_to(self._captured.name):  # what the factory or a library prints is not our stdout
            self.loaded = self._load(module)
            self.input_set = self._inputs(inputs)
        if config.inputs.batch_size > self.input_set.num_samples:
            raise ConfigError(f"the batch size {config.inputs.batch_size} is larger than the {self.input_set.num_samples} "
                              "samples; lower it or give more samples")
        self.batches = self.input_set.batches(config.inputs.batch_size)
        self.accuracy_pass = self._accuracy_pass()
        self.targets = self._choose_targets()
        # Every device, and every module a target keeps in fp32, is checked before anything runs.
        for spec in (config.reference, *self.targets):
            registry.require(spec)
            precision.check_module_names(self.loaded.network, spec.keep_fp32)
        # where the family's model sits in the module the sides run: `+fp32=` names are the model's own
        self.network_prefix = next(name for name, module in self.loaded.module.named_modules()
                                   if module is self.loaded.network)
        self.reference, self.reference_outputs, self.reference_predictions = self._run_reference()
        self.output_names = tuple(self.reference_outputs)
        self.classifier_output = self.loaded.classifier_output if self.loaded.classifier_output in self.output_names else None
        self.output_masks = {name: mask for name, mask in self.loaded.output_masks.items() if name in self.output_names}
        self.fp64_outputs = self._run_fp64()
        if self.fp64_outputs:
            self.reference = replace(self.reference, rel_l2_vs_fp64={
                name: relative_l2(self.fp64_outputs[name], self.reference_outputs[name], self._keep(name))
                for name in self.output_names})
        self.evaluated: list[TargetResult] = []
        self.target_outputs: dict[str, Tensors] = {}

    def close(self) -> None:
        """Remove the session's temporary file (what third-party code printed: result() has read it)."""
        self._captured.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- setting up -----------------------------------------------------------------------------------------

    def _load(self, module: nn.Module | None) -> models.LoadedModel:
        if module is not None:
            from .families.python import PythonFamily

            origin = f"{type(module).__module__}.{type(module).__qualname__}"
            identity = models.ModelIdentity("python", origin, type(module).__name__, None, None)
            loaded = PythonFamily().wrap(module, identity, self.config.weights, f"the caller's {origin}")
        else:
            self.progress(f"loading {self.config.model.name}")
            loaded = models.load(self.config.model, self.config.weights)
        if loaded.provenance.source_kind == "random":
            self.notes.append("no pretrained weights were loaded: the model is randomly initialised (seed "
                              f"{loaded.provenance.random_seed}); the comparison checks numerics only")
        self.notes.extend(loaded.notes)
        self.notes.extend(weights.risk_notes(loaded.provenance))
        folded = models.fold_parametrizations(loaded.network)
        if folded:
            self.notes.append(f"parametrized weights ({', '.join(folded)}) were folded into plain ones, as computed in "
                              "fp32, so that each side's process can receive the model")
        return loaded

    def _inputs(self, given) -> inputs.InputSet:
        if isinstance(given, torch.Tensor):  # one tensor is the forward's first argument, by its name
            given = {models.first_argument(self.loaded.network): given}
        if given is not None:
            return inputs.given(given, seed=self.config.inputs.seed)
        if inputs.is_callable_spec(self.config.inputs.source):
            return inputs.from_callable(self.config.inputs)
        return self.loaded.family.build_inputs(self.loaded, self.config.inputs)

    def _accuracy_pass(self) -> sides.AccuracyPass | None:
        """What every side streams through for task accuracy: the labelled images, when the inputs are."""
        dataset, model = self.input_set.dataset, self.loaded.identity.requested
        judged_on_accuracy = criteria.needs_labels(self.config.criteria)
        if dataset is None:
            if judged_on_accuracy:
                raise ConfigError(f"the {judged_on_accuracy[0]} criterion judges task accuracy, which needs labelled "
                                  "inputs: set InputSpec.source to a folder with one sub-folder per class, or "
                                  "InputSpec.labels to a CSV of filename,label",
                                  cli_hint="give --inputs DIR with one sub-folder per class, or --labels FILE beside a "
                                           "flat folder of images")
            return None
        if self.loaded.classifier_output is None:
            raise ConfigError(f"labelled inputs measure a classifier's accuracy, and {model} has no classifier output")
        return sides.AccuracyPass(dataset, self.loaded.data_config, next(iter(self.input_set.tensors)),
                                  self.loaded.classifier_output, self.config.inputs.batch_size)

    def _choose_targets(self) -> tuple[TargetSpec, ...]:
        """The targets asked for; for `--target auto`, what is present, and a note saying what was chosen."""
        if self.config.targets is not None:
            return self.config.targets
        specs, why = registry.auto_targets()
        if self.config.single_target and len(specs) > 1:
            specs, why = specs[:1], f"{why}; the layer pass takes the first, {specs[0].label}"
        self.notes.append(why)
        return specs

    def _run_reference(self) -> tuple[ReferenceResult, Tensors, sides.Predictions | None]:
        """The reference's outputs by name, timed, and its predictions on the labelled images; without them
        nothing can be compared, so a failure stops the check."""
        config = self.config
        label = config.reference.label
        self.progress(f"running the reference ({label})")
        try:
            side = self._run_side(config.reference, f"the reference ({label})", config.timing)
        except PortproofError:
            raise
        except Exception as error:
            raise ReferenceRunError(f"the reference ({label}) failed, so nothing can be compared: "
                                    f"{faults.describe_failure(error, config.reference.device_string, config.inputs.batch_size)}") from None
        if not any(bool(torch.isfinite(t).any()) for t in side.outputs.values()):
            raise ReferenceRunError(f"the reference ({label}) produced no finite output (every value is NaN or Inf), so "
                                    "nothing can be compared; check the model and its weights on the reference first")
        result = ReferenceResult(label=label, description=side.description,
                                 output_shapes={name: tuple(t.shape) for name, t in side.outputs.items()},
                                 latency=side.latency, rel_l2_vs_fp64=None,
                                 accuracy=accuracy.side_accuracy(side.predictions, self.accuracy_pass.images)
                                 if side.predictions is not None else None)
        return result, side.outputs, side.predictions

    def _run_fp64(self) -> Tensors | None:
        """The float64 CPU outputs that measure the noise floor; None when skipped or failed (with a note)."""
        if not self.config.fp64_reference:
            return None
        self.progress("running the float64 reference (noise floor)")
        # In this process: it is not timed, and it is the CPU eager code the reference already ran (a child
        # process would cost a fresh process's start-up for nothing it guards against).
        try:
            return worker.run(sides.run_side, (TargetSpec(device="cpu", dtype="fp64"), self.loaded.module, self.batches,
                                               replace(self.config.timing, enabled=False), "the float64 reference"),
                              label="the float64 reference", **{**self._side_settings(TargetSpec()), "isolated": False}
                              ).outputs
        except Exception as error:  # the noise floor is context, not the verdict: go on without it
            self.notes.append(f"the float64 run failed, so there is no noise floor: "
                              f"{faults.describe_failure(error, 'cpu', self.config.inputs.batch_size)}")
            return None

    # --- targets ----------------------------------------------------------------------------------------------

    def evaluate(self, spec: TargetSpec) -> TargetResult:
        """One target, start to end: run, compare, judge, time (and, with config.layers, the layer pass).
        Any exception it raises becomes its ERROR result."""
        position = len(self.evaluated)
        self.progress(f"running target {position} ({spec.label})")
        result, outputs = self._run_target(spec, self.config.timing)
        if self.config.layers and result.status != "ERROR":
            self.progress(f"comparing target {position} ({spec.label}) module by module")
            result = replace(result, layers=self.layer_pass(spec))
        self.evaluated.append(result)
        self.target_outputs[f"target-{position}"] = outputs
        return result

    def judge_only(self, spec: TargetSpec) -> TargetResult:
        """A target run, compared and judged as evaluate() does, but neither timed nor part of the result: what
        a search over many variants (a precision rescue) asks of each one."""
        return self._run_target(spec, replace(self.config.timing, enabled=False))[0]

    def _run_target(self, spec: TargetSpec, timing) -> tuple[TargetResult, Tensors]:
        config = self.config
        description = {"backend": spec.backend, "device": spec.device_string, "dtype": spec.dtype}
        try:
            side = self._run_side(spec, spec.label, timing)
            outputs, latency, description = side.outputs, side.latency, side.description
            if tuple(outputs) != self.output_names:
                raise RuntimeError(f"returned the outputs {', '.join(outputs) or 'none'}, the reference "
                                   f"{', '.join(self.output_names)}")
            comparisons = []
            for name in self.output_names:
                comparison = compare_outputs(self.reference_outputs[name], outputs[name], config.criteria, name=name,
                                             classifier=name == self.classifier_output, keep=self._keep(name))
                if self.fp64_outputs is not None and comparison.shape_match:
                    comparison = with_noise_floor(
                        comparison,
                        self.reference.rel_l2_vs_fp64[name],  # the reference's own, measured once
                        relative_l2(self.fp64_outputs[name], outputs[name], self._keep(name)),
                    )
                comparisons.append(comparison)
            task_accuracy = None
            if side.predictions is not None:
                task_accuracy = accuracy.target_accuracy(self.reference_predictions, side.predictions,
                                                         self.accuracy_pass.images, self.reference.accuracy)
            evidence = criteria.Evidence(tuple(comparisons), self._kept(self.reference_outputs), self._kept(outputs),
                                         self.reference.accuracy, task_accuracy)
            verdicts = criteria.judge(evidence, config.criteria)
        except Exception as error:  # the target's failure is its result; the check goes on
            message = faults.describe_failure(error, spec.device_string, config.inputs.batch_size)
            return TargetResult(spec.label, "ERROR", description, error=message), {}
        speedup = None
        if latency is not None and self.reference.latency is not None and latency.median_ms > 0:
            speedup = self.reference.latency.median_ms / latency.median_ms
        # the first criterion asked for decides the status (and the exit code)
        return TargetResult(spec.label, verdicts[0].status, description, tuple(comparisons),
                            judge(comparisons, features_only=self.classifier_output is None), latency,
                            speedup, criteria_verdicts=verdicts, accuracy=task_accuracy), outputs

    def _kept(self, outputs: Tensors) -> Tensors:
        """The outputs as elementwise criteria see them: a masked output's kept positions only."""
        return {name: tensor if (keep := self._keep(name)) is None or tensor.shape[:keep.dim()] != keep.shape
                else tensor[keep] for name, tensor in outputs.items()}

    def _keep(self, name: str) -> torch.Tensor | None:
        """The positions of output `name` that its metrics consider: where its mask input (an attention mask)
        is non-zero; None for an output that has no mask, or whose shape does not begin with the mask's."""
        mask_name = self.output_masks.get(name)
        if mask_name is None:
            return None
        keep = self.input_set.tensors[mask_name] != 0
        return keep if self.reference_outputs[name].shape[:keep.dim()] == keep.shape else None

    def layer_pass(self, spec: TargetSpec, modes: tuple[str, ...] = LAYER_MODES) -> LayerReport:
        """The module-by-module comparison of one target, on every sample in one batch, in `modes` (see
        layers.compare_layers). A failure of the layer pass is reported in it and does not change the target's verdict."""
        config, samples, label = self.config, self.input_set.tensors, spec.label
        count = self.input_set.num_samples
        notes: tuple[str, ...] = tuple(
            f"module outputs are compared at every position: the padding that {output} leaves out ({mask} = 0) is "
            "included here" for output, mask in self.output_masks.items())
        if config.reference.backend != "eager" or config.reference.dtype.startswith("amp-"):
            return LayerReport(spec.label, count, config.criteria, (), None, None, (), (
                f"no layer pass: it needs an eager reference without autocast, and the reference is {config.reference.label}",))
        mode = registry.info(spec.backend).layer_pass
        if mode == "none":
            return LayerReport(spec.label, count, config.criteria, (), None, None, (), (
                f"no layer pass: the {spec.backend} backend offers no way to observe its modules",))
        if mode == "eager" and spec.backend != "eager":
            notes += (f"the layer pass ran {spec.device_string}/{spec.dtype} eagerly: {spec.backend} fuses modules, "
                      "so their outputs cannot be observed one by one",)
            spec = replace(spec, backend="eager")
        try:
            report = worker.run(sides.run_layer_pass, (config.reference, self.loaded.network, samples, spec, mode,
                                                       config.criteria, notes, modes),
                                label=f"the layer pass of {spec.label}", **self._side_settings(spec))
            return replace(report, target=label)  # a compile target's pass ran eagerly, but is that target's
        except Exception as error:  # the target's verdict stands; the layer pass says why it has no rows
            return LayerReport(label, count, config.criteria, (), None, None, (),
                               notes + (f"layer pass failed: {faults.describe_failure(error, spec.device_string, count)}",))

    # --- the result ---------------------------------------------------------------------------------------------

    def result(self, targets: tuple[TargetResult, ...] | None = None) -> CheckResult:
        """The check's result: the given target results, or every one evaluated so far."""
        config = self.config
        targets = tuple(self.evaluated) if targets is None else tuple(targets)
        tensors = None
        if config.output.save_tensors:
            # fp16/bf16 outputs are stored as float32 (exact), so any tool, numpy included, can read them.
            tensors = {"inputs": dict(self.input_set.tensors),
                       "reference": {n: t.float() for n, t in self.reference_outputs.items()},
                       **{k: {n: t.float() for n, t in v.items()} for k, v in self.target_outputs.items() if v}}
        notes = list(self.notes)
        captured = self.captured_output()
        if captured.strip():
            notes.append(f"third-party code (exporters, compilers, runtimes) printed {len(captured.splitlines())} lines "
                         f"while the sides ran; they are in {CAPTURED_OUTPUT_FILE}, not on the terminal")
        return CheckResult(
            config=replace(config, targets=tuple(self.targets)),
            model=self._model_info(),
            weights=self.loaded.provenance,
            inputs=self._input_info(),
            reference=self.reference,
            targets=targets,
            environment={**environment.collect(), "command_line": config.command_line},
            started_at=self.started_at,
            finished_at=_now(),
            duration_s=time.perf_counter() - self._clock,
            notes=tuple(notes),
            tensors=tensors,
            captured_output=captured or None,
        )

    def _model_info(self) -> ModelInfo:
        identity = self.loaded.identity
        return ModelInfo(requested=identity.requested, family=identity.family, architecture=identity.architecture,
                         tag=identity.tag, hub_repo=identity.hub_repo, num_parameters=self.loaded.num_parameters,
                         output_names=self.output_names, classifier_output=self.classifier_output,
                         output_masks=dict(self.output_masks))

    def _input_info(self) -> InputInfo:
        tensors, dataset = self.input_set.tensors, self.input_set.dataset
        first = next(iter(tensors.values()))
        return InputInfo(kind=self.input_set.kind, num_samples=self.input_set.num_samples,
                         batch_size=self.config.inputs.batch_size, shape=tuple(first.shape), seed=self.input_set.seed,
                         sources=self.input_set.sources, skipped=self.input_set.skipped,
                         preprocessing=self.input_set.preprocessing,
                         shapes={name: tuple(t.shape) for name, t in tensors.items()},
                         dtypes={name: str(t.dtype).replace("torch.", "") for name, t in tensors.items()},
                         labelled_samples=len(dataset.files) if dataset else None,
                         label_source=dataset.source if dataset else None)

    # --- running one side -----------------------------------------------------------------------------------

    def _run_side(self, spec: TargetSpec, label: str, timing) -> sides.SideRun:
        """One side run on every batch, timed and streamed through the labelled images, in its own process (or
        in-process, by config.isolation)."""
        in_module = replace(spec, keep_fp32=tuple(f"{self.network_prefix}.{name}".lstrip(".") for name in spec.keep_fp32))
        return worker.run(sides.run_side, (in_module, self.loaded.module, self.batches, timing, label, self.accuracy_pass),
                          label=label, **self._side_settings(spec))

    def _side_settings(self, spec: TargetSpec) -> dict[str, Any]:
        return dict(timeout_s=self.config.target_timeout_s, capture_path=self._captured.name, device=spec.device_string,
                    batch_size=self.config.inputs.batch_size, progress=self.progress,
                    isolated=self.config.isolation == "process")

    def captured_output(self) -> str:
        """What third-party code printed while the sides ran (exporters, compilers, runtimes)."""
        if self._captured.closed:  # after close(): nothing more was printed by a side of this session
            return ""
        with open(self._captured.name, encoding="utf-8", errors="replace") as captured:
            return captured.read()


def run_check(config: CheckConfig = CheckConfig(), progress: Progress | None = None, *, module: nn.Module | None = None,
              inputs: torch.Tensor | Mapping[str, torch.Tensor] | None = None) -> CheckResult:
    """Every target of `config` (or every accelerator present) against its reference: a Session used once."""
    with Session(config, progress, module=module, inputs=inputs) as session:
        for spec in session.targets:
            session.evaluate(spec)
        return session.result()


def _silent(message: str, done: int | None = None, total: int | None = None) -> None:
    pass


def _with_counts(progress: Progress) -> Progress:
    """A callback that takes only the message still works: it hears of each step, not of the counts."""
    try:
        inspect.signature(progress).bind("", 0, 0)
        return progress
    except (TypeError, ValueError):
        return lambda message, done=None, total=None: None if done is not None else progress(message)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
