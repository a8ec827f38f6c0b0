"""Module-by-module comparison: where do the reference's and the target's numbers part ways?

Two modes, for every module call (leaves and containers, named by their qualified name, `name#2` for a
module's second call in one forward):

* accumulated: reference and target each run the whole model; a module's target output is compared with
  the same module's reference output. Error grows through the network here.
* local: each target module is fed exactly the reference's input to that module (cast to the target's
  device and dtype), and its output is handed on as the reference's output, so a module's error is its
  own: for a leaf, the error of its computation; for a container, the error of its own code between its
  children (residual additions, attention arithmetic), since its children's outputs are the reference's.

Streaming, in one reference forward: the reference's forward and a target pass per mode run as coroutines
(greenlets) on one thread, in step (see _Relay): the reference publishes each module's inputs and output
as it happens, and each target pass reads them in the same order. What is held at any time is one
module's inputs or output of the reference (not copied), the target's tensors alive in its own forward,
a few recent tensors remembered to recognise pass-through modules (MEMO_SIZE), and the per-module metrics.
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Mapping

import greenlet
import torch
from torch import nn

from .backends.torch_eager import EagerBackend
from .config import Criteria, TargetSpec
from .layer_metrics import Scratch, layer_metrics
from .results.layers import MODES, LayerMetrics, LayerReport, LayerRow
from .errors import ConfigError, LayerPassError, PortproofError, describe
from .models import first_argument

MEMO_SIZE = 8  # recent tensor pairs remembered, to recognise pass-through modules
TOP_COUNT = 10
ROOT_NAME = "(model)"


def compare_layers(
    reference_model: nn.Module,
    target_model: nn.Module,
    inputs: torch.Tensor | Mapping[str, torch.Tensor],
    target: TargetSpec | str = TargetSpec(),
    criteria: Criteria = Criteria(),
    notes: tuple[str, ...] = (),
    modes: tuple[str, ...] = MODES,
) -> LayerReport:
    """Compare two models with the same module names, module by module, on one batch of inputs.

    `inputs` is {name: tensor}, passed by keyword (`model(**inputs)`), or one tensor, passed as the forward's
    first argument. `reference_model` runs as given, on the device and in the dtype where it is, and `inputs`
    must be there too; a copy of `target_model` runs on the target's device and dtype (floating inputs cast
    to it, integer ones as they are). Neither model is changed (the reference is put in eval mode).
    `modes`: one of them alone saves a target forward and its metrics (rescue ranks by the local mode only);
    the other mode's metrics then say "not compared: only the local mode ran" (or "accumulated").
    """
    from .config import parse_target

    spec = parse_target(target) if isinstance(target, str) else target
    if spec.backend != "eager":
        raise ConfigError(f"compare_layers runs eager PyTorch targets; got {spec.label}")
    if not modes or not set(modes) <= set(MODES):
        raise ConfigError(f"the layer pass's modes are accumulated and local; got {', '.join(modes) or 'none'}")
    check_same_names(reference_model, target_model)
    if isinstance(inputs, torch.Tensor):
        inputs = {first_argument(reference_model): inputs}
    with _cyclic_gc_paused():
        backend = EagerBackend(spec)
        backend.prepare(target_model, inputs)  # a copy, on the target's device and dtype
        session = _Session(reference_model.eval(), backend, dict(inputs), modes)  # hooks are removed when it ends
        rows = session.run()
    samples = next(iter(inputs.values())).shape[0]
    return report_from_rows(spec.label, samples, criteria, rows, notes + session.notes)


@contextlib.contextmanager
def _cyclic_gc_paused():
    """The pass allocates many small objects (the model's copy, closures, events), each batch of which starts a
    collection over a heap that holds torch and the model; paused, vit_tiny's pass took 7 ms less. Whatever
    cycles the pass leaves are collected after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_same_names(reference_model: nn.Module, target_model: nn.Module) -> None:
    reference_names = [n for n, _ in reference_model.named_modules()]
    target_names = [n for n, _ in target_model.named_modules()]
    if reference_names != target_names:
        only_reference = [n for n in reference_names if n not in set(target_names)][:5]
        only_target = [n for n in target_names if n not in set(reference_names)][:5]
        raise ConfigError(
            "the target model's modules are not the reference's: "
            f"only in the reference: {', '.join(only_reference) or 'none'}; only in the target: {', '.join(only_target) or 'none'}"
            + ("" if only_reference or only_target else "; the same names come in another order")
        )


def tensor_elements(value: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """The tensors of a module output, each with its place: "" for a tensor, "[0]" / "[key]" inside."""
    if isinstance(value, torch.Tensor):
        return [(prefix, value)]
    if isinstance(value, (tuple, list)):
        return [item for i, v in enumerate(value) for item in tensor_elements(v, f"{prefix}[{i}]")]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in tensor_elements(v, f"{prefix}[{k}]")]
    return []


def map_tensors(value: Any, function) -> Any:
    if isinstance(value, torch.Tensor):
        return function(value)
    if isinstance(value, tuple):
        return tuple(map_tensors(v, function) for v in value)
    if isinstance(value, list):
        return [map_tensors(v, function) for v in value]
    if isinstance(value, dict):
        return {k: map_tensors(v, function) for k, v in value.items()}
    return value


# --- the streaming run ------------------------------------------------------------------------------------


@dataclass
class _Event:
    kind: str  # "pre" (inputs) or "post" (output)
    key: str
    value: Any  # (args, kwargs) for "pre", the output for "post"


class _Cancelled(Exception):
    """The other side stopped; unwind quietly."""


class _Relay:
    """The reference's forward and the two target forwards as coroutines (greenlets) on one thread.

    The producer runs until it publishes an event; each consumer in turn takes it and runs until it asks
    for the next; then the producer goes on. Being one OS thread, they share one pool of compute threads
    (OS threads taking turns would leave each other's pools spinning), and the producer cannot change an
    event's tensors in place while a consumer still reads them: no copies, one event held at a time.
    """

    def __init__(self, producer, consumers, enter_consumer):
        self._main = greenlet.getcurrent()
        self._producer = greenlet.greenlet(producer)
        self._consumers = [greenlet.greenlet(c) for c in consumers]
        # a context manager factory for the state the consumers run under: autocast is per OS thread and
        # TF32/HF32 flags are global, so the targets' settings are entered for their turns only
        self._enter_consumer = enter_consumer
        self.errors: dict[int, BaseException] = {}  # -1 the producer, else the consumer's index

    # called from inside the coroutines
    def put(self, event: _Event) -> None:
        self._main.switch(event)

    def get(self) -> _Event:
        return self._main.switch()

    # called by the driver
    def run(self) -> None:
        for index in range(len(self._consumers)):
            self._resume(index)  # each runs up to its first get()
        while True:
            try:
                event = self._producer.switch()
            except BaseException as error:  # the reference raised
                self.errors[-1] = error
                event = None
            if self._producer.dead:
                break
            for index in range(len(self._consumers)):
                self._resume(index, event)
        for index, consumer in enumerate(self._consumers):
            if not consumer.dead:
                self._resume(index, error=_Cancelled())

    def _resume(self, index: int, event: _Event | None = None, error: BaseException | None = None) -> None:
        consumer = self._consumers[index]
        if consumer.dead or index in self.errors:
            return
        try:
            with self._enter_consumer():
                if error is not None:
                    consumer.throw(error)
                elif event is None:
                    consumer.switch()  # start it: it runs up to its first get()
                else:
                    consumer.switch(event)
        except _Cancelled:
            pass
        except BaseException as raised:
            self.errors[index] = raised


class _Session:
    """One layer pass: installs hooks, runs the three coroutines, collects the rows.

    Hooks, not forward wrappers, see each call, so that forward hooks already on a model (a user's
    alteration, an instrumentation) are part of what is compared: the reference's output is taken after
    its hooks, and the target's inputs are replaced before its own pre-hooks run. A thin forward wrapper
    on the target only catches what a module raises.
    """

    ACCUMULATED, LOCAL = 0, 1

    def __init__(self, reference: nn.Module, backend: EagerBackend, inputs: dict[str, torch.Tensor], modes: tuple[str, ...]):
        self.reference = reference
        self.backend = backend
        self.inputs = inputs
        self.modes = [mode for mode in (self.ACCUMULATED, self.LOCAL) if MODES[mode] in modes]  # one consumer each
        self.relay = _Relay(self._run_reference, [lambda mode=mode: self._run_target(mode) for mode in self.modes],
                            lambda: _target_settings(backend))
        self.roles: dict = {}  # per coroutine: mode, call counts, stack of keys, memo, casts
        self.reference_squares: dict = {}  # reference output identity -> (‖r‖², r), shared by the two modes
        self.scratch = Scratch()
        self.order: list[tuple[str, str, str, tuple]] = []  # (key, element, module type, (shape, dtype))
        self.results: dict[tuple[int, str], LayerMetrics] = {}
        self.notes: tuple[str, ...] = ()

    def run(self) -> list[LayerRow]:
        handles = self._install_reference() + self._install_target()
        try:
            with torch.no_grad():  # not inference_mode: its tensors have no version counter (see _identity)
                self.relay.run()
        finally:
            for handle in handles:
                handle()
        for index, error in self.relay.errors.items():
            if isinstance(error, (PortproofError, KeyboardInterrupt)):
                raise error
            role = "reference" if index == -1 else MODES[self.modes[index]]
            raise LayerPassError(f"the layer pass failed in its {role} run: {describe(error)}")
        return self._rows()

    @property
    def role(self):
        """The state of the coroutine now running."""
        return self.roles[greenlet.getcurrent()]

    # Each side numbers the calls itself (name, name#2, ...), so keys agree when both run the same code.
    def _enter(self, name: str) -> str:
        role = self.role
        role.counts[name] = role.counts.get(name, 0) + 1
        shown = name or ROOT_NAME
        key = shown if role.counts[name] == 1 else f"{shown}#{role.counts[name]}"
        role.stack.append(key)
        return key

    # --- reference: publish every module's inputs and output ---------------------------------------------

    def _install_reference(self) -> list:
        handles = []
        for name, module in self.reference.named_modules():
            def publish_inputs(module, args, kwargs, _name=name):
                self.relay.put(_Event("pre", self._enter(_name), (args, kwargs)))

            def publish_output(module, args, output):
                key = self.role.stack.pop()
                for element, tensor in tensor_elements(output):
                    self.order.append((key, element, type(module).__name__, _meta(tensor)))
                self.relay.put(_Event("post", key, output))

            handles.append(module.register_forward_pre_hook(publish_inputs, with_kwargs=True).remove)
            handles.append(module.register_forward_hook(publish_output).remove)
        return handles

    def _run_reference(self) -> None:
        self.roles[greenlet.getcurrent()] = SimpleNamespace(counts={}, stack=[])
        self.reference(**self.inputs)

    # --- targets: accumulated and local passes -------------------------------------------------------------

    def _install_target(self) -> list:
        handles = []
        for name, module in self.backend.model.named_modules():
            handles.append(module.register_forward_pre_hook(
                lambda module, args, kwargs, _name=name: self._target_inputs(_name, args, kwargs),
                with_kwargs=True, prepend=True).remove)
            handles.append(module.register_forward_hook(lambda module, args, output: self._target_output(output)).remove)
            original = module.forward

            def catching(*args, _original=original, **kwargs):
                try:
                    return _original(*args, **kwargs)
                except (_Aborted, _Cancelled):
                    raise
                except Exception as error:
                    return self._target_raised(error)

            module.forward = catching
            handles.append(lambda _module=module: _module.__dict__.pop("forward", None))
        return handles

    def _run_target(self, mode: int) -> None:
        self.roles[greenlet.getcurrent()] = SimpleNamespace(mode=mode, counts={}, stack=[], memo={}, casts={}, raised=None)
        try:
            self.backend.model(**self.backend.place(self.inputs))
        except _Aborted:
            pass

    def _take(self, kind: str, key: str, use):
        """Read the next event, which must be `kind` of `key`, and apply `use` to its value."""
        event = self.relay.get()
        if (event.kind, event.key) != (kind, key):
            raise LayerPassError(
                f"the target's modules ran in another order than the reference's: the reference's next is "
                f"{event.kind} of {event.key}, the target's {kind} of {key}; models with data-dependent control flow "
                "cannot be compared module by module"
            )
        return use(event.value)

    def _target_inputs(self, name: str, args, kwargs):
        key = self._enter(name)
        if self.role.mode == self.LOCAL:
            # the module sees exactly the reference's inputs; most already are (what the last module handed on)
            return self._take("pre", key, lambda value: None if self._already_fed((args, kwargs), value) else self._feed(value))
        self._take("pre", key, lambda value: None)
        return None

    def _already_fed(self, actual: Any, reference: Any) -> bool:
        """Every tensor of `actual` is an unchanged copy this pass made of the matching reference tensor."""
        casts = self.role.casts
        reference_elements = tensor_elements(reference)
        pairs = list(zip(tensor_elements(actual), reference_elements))
        return len(pairs) == len(reference_elements) and all(
            place == reference_place and casts.get(_identity(tensor), (None, None))[1] == _identity(reference_tensor)
            for (place, tensor), (reference_place, reference_tensor) in pairs
        )

    def _target_output(self, output):
        role = self.role
        key = role.stack.pop()
        if role.raised == key:  # already handled in _target_raised
            role.raised = None
            return None
        local = role.mode == self.LOCAL

        def compare(reference_output):
            for (element, reference), (_, target) in zip(tensor_elements(reference_output), tensor_elements(output)):
                self.results[(role.mode, key + element)] = self._metrics(reference, target)
            if not local or self._already_fed(output, reference_output):  # (a pass-through hands on our copy)
                return None
            return self._feed(reference_output)  # the reference's values go on, so the next module's error is its own

        return self._take("post", key, compare)

    def _target_raised(self, error: Exception):
        role = self.role
        key = role.stack[-1]
        self.results[(role.mode, key)] = LayerMetrics(error=f"raised {describe(error)}")
        if role.mode == self.ACCUMULATED:
            raise _Aborted(key) from None
        role.raised = key
        return self._skip_to_post(key)  # its unreached children published events too

    def _skip_to_post(self, key: str) -> Any:
        while True:
            event = self.relay.get()
            if event.kind == "post" and event.key == key:
                return self._feed(event.value)

    def _feed(self, value: Any) -> Any:
        """Copies of the reference's tensors on the target's device and dtype (copies: the target may
        change them in place). Each copy is remembered, so a module that hands it back unchanged
        (Identity, Dropout in eval) is recognised in `_metrics`."""
        casts = self.role.casts

        def cast(tensor: torch.Tensor) -> torch.Tensor:
            dtype = self.backend.parameter_dtype if tensor.is_floating_point() else tensor.dtype
            copy_ = tensor.to(device=self.backend.device, dtype=dtype, copy=True)
            casts[_identity(copy_)] = (copy_, _identity(tensor))
            return copy_

        return map_tensors(value, cast)

    def _metrics(self, reference: torch.Tensor, target: torch.Tensor) -> LayerMetrics:
        """layer_metrics, computed once per distinct pair: modules that pass a tensor through unchanged
        give the pair (or, in the local pass, the cast of the same reference tensor) again."""
        role = self.role
        reference_id, target_id = _identity(reference), _identity(target)
        fed_from = role.casts.get(target_id)
        key = ("cast", reference_id) if fed_from is not None and fed_from[1] == reference_id else (reference_id, target_id)
        found = role.memo.get(key)
        if found is None:
            reference_sq = self.reference_squares.get(reference_id)
            found = (layer_metrics(reference, target, reference_sq and reference_sq[0], self.scratch), reference, target)
            metrics = found[0]
            if reference_sq is None and metrics.reference_norm is not None and not metrics.reference_nonfinite + metrics.target_nonfinite:
                # both modes meet the same reference output
                self.reference_squares[reference_id] = (metrics.reference_norm ** 2, reference)
                while len(self.reference_squares) > MEMO_SIZE:
                    self.reference_squares.pop(next(iter(self.reference_squares)))
            role.memo[key] = found
            while len(role.memo) > MEMO_SIZE:
                role.memo.pop(next(iter(role.memo)))
        while len(role.casts) > MEMO_SIZE:
            role.casts.pop(next(iter(role.casts)))
        return found[0]

    # --- rows ------------------------------------------------------------------------------------------------

    def _rows(self) -> list[LayerRow]:
        aborted_at = next((k for (mode, k), m in self.results.items()
                           if mode == self.ACCUMULATED and m.error and m.error.startswith("raised")), None)
        not_run = LayerMetrics(error=f"not compared: only the {MODES[self.modes[0]]} mode ran")
        missing = {self.ACCUMULATED: LayerMetrics(error=f"not reached: {aborted_at} raised first" if aborted_at else "not compared"),
                   self.LOCAL: LayerMetrics(error="not reached: a container around it raised")}
        missing.update({mode: not_run for mode in missing if mode not in self.modes})
        rows = []
        for order, (key, element, module_type, (shape, dtype)) in enumerate(self.order):
            label = key + element
            accumulated, local = (self.results.get((mode, label)) or self.results.get((mode, key)) or missing[mode]
                                  for mode in (self.ACCUMULATED, self.LOCAL))
            rows.append(LayerRow(order, key, element, module_type, shape, dtype, accumulated, local))
        return rows


@contextlib.contextmanager
def _target_settings(backend: EagerBackend):
    """What the target's forward runs under besides no_grad: its autocast and its TF32/HF32 matmul mode."""
    with backend.autocast(), backend.matmul_mode():
        yield


class _Aborted(Exception):
    """The accumulated target pass cannot go on after a module raised."""


def _identity(tensor: torch.Tensor) -> tuple:
    """Equal for the same storage, view and contents version: the same values, without reading them."""
    return (tensor.data_ptr(), tensor._version, tuple(tensor.shape), tensor.stride(), tensor.dtype, tensor.device)


def _meta(tensor: torch.Tensor) -> tuple[tuple[int, ...], str]:
    return tuple(tensor.shape), str(tensor.dtype).replace("torch.", "")


def report_from_rows(target: str, samples: int, criteria: Criteria, rows: list[LayerRow], notes: tuple[str, ...]) -> LayerReport:
    """The first divergent modules of each mode and the ranking, from the rows in execution order."""
    def first(mode: str) -> str | None:
        return next((r.label for r in rows if getattr(r, mode).diverges(criteria)), None)

    # diverging modules first (raised, NaN/Inf, over a threshold), then by local rel_l2, largest first
    ranked = sorted(
        (r for r in rows if r.local.rel_l2 is not None or r.local.diverges(criteria)),
        key=lambda r: (not r.local.diverges(criteria), -(r.local.rel_l2 or 0.0)),
    )
    worst = tuple(r.label for r in ranked[:TOP_COUNT])
    return LayerReport(target, samples, criteria, tuple(rows), first("local"), first("accumulated"), worst, notes)
