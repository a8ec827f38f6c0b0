"""Running a model in low precision with some modules kept in fp32: what a precision rescue (rescue.py) finds,
what a `+fp32=` target spec (`cpu/bf16+fp32=blocks.11.mlp,head`) applies, and what a user applies to their own
model afterwards:

    model = portproof.keep_fp32(model, ["blocks.11.mlp", "head"], torch.bfloat16)

Each kept module keeps its fp32 weights and runs in fp32, outside autocast: its floating inputs are cast to
fp32 on the way in and its floating outputs back to the model's dtype on the way out.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any, Iterable

import torch
from torch import nn

from .errors import ConfigError


def keep_fp32(model: nn.Module, names: Iterable[str], dtype: torch.dtype | None = None) -> nn.Module:
    """`model` (fp32) with every module cast to `dtype` except `names` (module names, as `named_modules`
    gives them), which stay fp32 with casts around them; in place, and returned. Without `dtype` the model
    keeps its dtype (an autocast target: the kept modules then run outside autocast)."""
    names = list(names)
    kept = {name: module for name, module in check_module_names(model, names).items()
            if name in outermost(names)}  # a kept module inside another kept one is already fp32
    outputs_dtype = dtype or torch.float32
    if dtype is not None:
        for module in model.modules():
            if not any(module is k or _contains(k, module) for k in kept.values()):
                _cast_own_tensors(module, dtype)
    for module in kept.values():
        module.float()
        module.forward = _Fp32Forward(module.forward, outputs_dtype if dtype is not None else None)
    return model


def check_module_names(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """The modules `names` name; ConfigError listing the unknown ones with close names."""
    modules = dict(model.named_modules())
    wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in modules or name == ""]
    if unknown:
        close = difflib.get_close_matches(unknown[0], [n for n in modules if n], n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; the layer pass (--layers) lists the module names"
        raise ConfigError(f"+fp32= names {len(unknown)} module(s) the model does not have: {', '.join(unknown)}{hint}")
    return {name: modules[name] for name in wanted}


def outermost(names: list[str]) -> list[str]:
    """`names` without those inside another one of them (a kept block keeps its layers)."""
    return [n for n in names if not any(n.startswith(other + ".") for other in names if other != n)]


def _contains(ancestor: nn.Module, module: nn.Module) -> bool:
    return any(module is m for m in ancestor.modules())


def _cast_own_tensors(module: nn.Module, dtype: torch.dtype) -> None:
    """The module's own floating parameters and buffers (not its children's) in `dtype`."""
    for name, parameter in module.named_parameters(recurse=False):
        if parameter.is_floating_point():
            parameter.data = parameter.data.to(dtype)
    for name, buffer in module.named_buffers(recurse=False):
        if buffer.is_floating_point():
            setattr(module, name, buffer.to(dtype))


class _Fp32Forward:
    """A module's forward run in fp32 outside autocast; its outputs cast to `outputs_dtype` (None: left fp32).
    A class, not a closure, so that a model holding it can still be pickled to a side's process."""

    def __init__(self, forward, outputs_dtype: torch.dtype | None):
        self.forward = forward
        self.outputs_dtype = outputs_dtype

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        device_type = next((t.device.type for t in _tensors((args, kwargs))), "cpu")
        with torch.autocast(device_type, enabled=False):
            output = self.forward(*_cast(args, torch.float32), **_cast(kwargs, torch.float32))
        return output if self.outputs_dtype is None else _cast(output, self.outputs_dtype)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(_cast(v, dtype) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    if isinstance(value, dict):  # a copy of the same class: a Hugging Face ModelOutput stays one
        cast = copy.copy(value)
        for key in cast:
            cast[key] = _cast(cast[key], dtype)
        return cast
    return value


def _tensors(value: Any):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
