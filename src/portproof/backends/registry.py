"""Every way of running a model registers itself here; nothing else lists them.

A backend is a class decorated with `register_backend(name, devices=..., dtypes=..., ...)`, reached
through the `portproof.backends` entry-point group: portproof's own (eager, compile, onnxruntime) are
declared in its pyproject.toml exactly as a third-party package declares its own, e.g.

    [project.entry-points."portproof.backends"]
    myengine = "my_package.portproof_backend:MyEngineBackend"

The target syntax's vocabulary, `--target` validation, `--target auto`, `portproof env` and the layer
pass's dispatch all read this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Callable

from ..config import TargetSpec
from ..errors import ConfigError, PortproofError, describe

ENTRY_POINT_GROUP = "portproof.backends"
ACCELERATORS = ("npu", "cuda", "xpu", "mps")  # what `--target auto` looks for, in this order
# How the layer pass observes a backend's target: "eager" hooks every module of the model run as eager
# PyTorch on the target's device and dtype (for a backend other than eager itself, which fuses modules, a
# note says the layer pass ran eagerly); "graph" reads the intermediate values of the model exported to
# ONNX and run by ONNX Runtime on the target's device; "none" has no layer pass (a note says so).
LAYER_PASS_MODES = ("eager", "graph", "none")


@dataclass(frozen=True)
class BackendInfo:
    name: str
    factory: type  # the class: factory(spec) makes a Backend (base.Backend)
    devices: tuple[str, ...]
    dtypes: tuple[str, ...]  # "amp-*" dtypes mean autocast applies
    layer_pass: str
    probe: Callable[[TargetSpec], None]  # raises DeviceUnavailableError naming what is missing
    keeps_fp32: bool = False  # runs a torch module, so a `+fp32=` spec can keep some of its modules in fp32
    modes: tuple[str, ...] = ()  # what a `+mode=` spec may name (e.g. torch.compile's modes); () takes none

    @property
    def autocast(self) -> bool:
        return any(d.startswith("amp-") for d in self.dtypes)


def register_backend(name: str, *, devices: tuple[str, ...], dtypes: tuple[str, ...], layer_pass: str = "none",
                     probe: Callable[[TargetSpec], None] | None = None, keeps_fp32: bool = False,
                     modes: tuple[str, ...] = ()):
    """Class decorator: declare a backend. `probe(spec)` raises DeviceUnavailableError when the spec cannot
    run here (default: constructing the class is the probe); `keeps_fp32`: it applies a spec's `+fp32=`
    modules (precision.keep_fp32); `modes`: the values a spec's `+mode=` may take (spec.mode)."""
    if layer_pass not in LAYER_PASS_MODES:
        raise ValueError(f"layer_pass must be one of {LAYER_PASS_MODES}, got {layer_pass!r}")

    def decorate(cls: type) -> type:
        cls.info = BackendInfo(name, cls, tuple(devices), tuple(dtypes), layer_pass, probe or cls, keeps_fp32,
                               tuple(modes))
        return cls

    return decorate


@cache
def _discover() -> tuple[dict[str, BackendInfo], dict[str, str]]:
    """(registered backends by name, entry points that failed to load with why); read once per process."""
    found: dict[str, BackendInfo] = {}
    broken: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            info = getattr(point.load(), "info", None)
        except Exception as error:  # a broken plugin is reported, never fatal to the others
            broken[point.name] = f"cannot be imported ({describe(error)})"
            continue
        if not isinstance(info, BackendInfo):
            broken[point.name] = f"{point.value} is not decorated with portproof.register_backend"
        elif info.name in found and found[info.name].factory is not info.factory:
            broken[point.name] = f"the name {info.name!r} is taken by {found[info.name].factory.__module__}"
        else:
            found[info.name] = info
    if not found:
        raise PortproofError("no backend is registered: portproof's entry points are missing from this environment; "
                             "reinstall it (pip install -e . from its folder, or pip install portproof)")
    # the default backend first, then the others by name: a stable order for messages and `portproof env`
    ordered = dict(sorted(found.items(), key=lambda item: (item[0] != TargetSpec.backend, item[0])))
    return ordered, broken


def backends() -> dict[str, BackendInfo]:
    return _discover()[0]


def info(name: str) -> BackendInfo:
    return backends()[name]


def devices() -> tuple[str, ...]:
    """Every device some backend runs on, in the order first declared."""
    return tuple(dict.fromkeys(d for b in backends().values() for d in b.devices))


def dtypes() -> tuple[str, ...]:
    return tuple(dict.fromkeys(d for b in backends().values() for d in b.dtypes))


def validate(spec: TargetSpec, text: str | None = None) -> TargetSpec:
    """The spec, if some registered backend takes its backend, device and dtype; else a ConfigError."""
    text = spec.label if text is None else text
    known = backends()
    for value, allowed, what in ((spec.backend, tuple(known), "backend"), (spec.device, devices(), "device"),
                                 (spec.dtype, dtypes(), "dtype")):
        if value not in allowed:
            raise ConfigError(f"unknown {what} {value!r} in target {text!r}; choose one of: {', '.join(allowed)}")
    backend = known[spec.backend]
    if spec.device not in backend.devices:
        raise ConfigError(f"target {text!r}: {spec.backend} runs on {', '.join(backend.devices)}, not {spec.device}")
    if spec.dtype not in backend.dtypes:
        why = f"autocast ({spec.dtype}) exists only in PyTorch backends; " if spec.dtype.startswith("amp-") else ""
        raise ConfigError(f"target {text!r}: {why}{spec.backend} takes {', '.join(backend.dtypes)}, not {spec.dtype}")
    if spec.channels_last and not backend.keeps_fp32:
        raise ConfigError(f"target {text!r}: +channels_last is a PyTorch memory format, and {spec.backend} runs its own "
                          "graph (which chooses its own layout)")
    if spec.mode is not None and spec.mode not in backend.modes:
        offered = f"choose one of: {', '.join(backend.modes)}" if backend.modes else f"{spec.backend} has no modes"
        raise ConfigError(f"target {text!r}: unknown mode {spec.mode!r}; {offered}")
    if spec.keep_fp32 and not backend.keeps_fp32:
        keeping = ", ".join(name for name, b in known.items() if b.keeps_fp32)
        raise ConfigError(f"target {text!r}: +fp32= keeps torch modules in fp32, which {spec.backend} cannot do "
                          f"(it runs its own graph); use {keeping}")
    return spec


def require(spec: TargetSpec) -> None:
    """Raise DeviceUnavailableError, naming what is missing, unless `spec` can run here."""
    info(validate(spec).backend).probe(spec)


def create(spec: TargetSpec):
    """A Backend for `spec` (checked against the registry; its constructor checks the device)."""
    return info(validate(spec).backend).factory(spec)


def present_accelerators() -> list[str]:
    found = []
    for device in ACCELERATORS:
        try:
            require(TargetSpec(device=device))
            found.append(device)
        except PortproofError:
            pass
    return found


def auto_targets() -> tuple[tuple[TargetSpec, ...], str]:
    """Every accelerator present; with none, ONNX Runtime and bf16 on the CPU. Returns (targets, why)."""
    from ..config import parse_target

    found = present_accelerators()
    if found:
        return tuple(parse_target(d) for d in found), f"--target auto: accelerators present: {', '.join(found)}"
    fallback = ("onnxruntime@cpu", "cpu/bf16")
    return tuple(parse_target(t) for t in fallback), (
        f"--target auto: no accelerator (npu, cuda, xpu, mps) present, so comparing {' and '.join(fallback)} against the reference"
    )


def availability() -> list[tuple[str, str]]:
    """(backend@device, "available" or "unavailable: <reason>") for every registered backend and device,
    and every plugin that failed to load, for `portproof env`."""
    registered, broken = _discover()
    rows = []
    for name, backend in registered.items():
        for device in backend.devices:
            try:
                backend.probe(TargetSpec(backend=name, device=device, dtype=backend.dtypes[0]))
                rows.append((f"{name}@{device}", "available"))
            except PortproofError as error:
                rows.append((f"{name}@{device}", f"unavailable: {error}"))
            except Exception as error:  # a plugin's probe that fails in its own way
                rows.append((f"{name}@{device}", f"unavailable: {describe(error)}"))
    rows += [(f"plugin {name}", f"not loaded: {why}") for name, why in broken.items()]
    return rows

