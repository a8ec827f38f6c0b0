"""`cast_copy`: what `copy.deepcopy(model).to(device, dtype)` gives, about 4x faster.

Every side and every layer pass copies the model (the caller's must not change), so the copy is a fixed
cost of each: for vit_tiny, `deepcopy` then `.to(bfloat16)` took 23 ms, this 6 ms. Two things make the
difference: each parameter and buffer is copied straight into its device and dtype (deepcopy's fp32
clone, then the cast, made two), and a module whose class keeps torch's own copying protocol has its
attribute dictionary copied directly, an empty hook table by a new empty one, instead of through
deepcopy's generic `__reduce_ex__` path. Anything else (a class with its own `__deepcopy__`,
`__getstate__` or slots, a tensor subclass, a non-empty hook table, any other attribute) goes through
`copy.deepcopy` with the same memo, so shared objects stay shared as deepcopy shares them.
"""

from __future__ import annotations

import copy
import copyreg
import itertools
from collections import OrderedDict
from functools import cache

import torch
from torch import nn

_ATOMIC = (int, float, bool, str, bytes, type(None), torch.dtype, torch.device)
_CONTAINERS = (dict, OrderedDict, set, list)  # copied as new empty ones when empty


def cast_copy(model: nn.Module, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy of `model` on `device`, its floating parameters and buffers in `dtype` (None: unchanged)."""
    memo: dict[int, object] = {}
    subclassed = False
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if type(tensor) not in (nn.Parameter, torch.Tensor):
            subclassed = True  # deep-copied as itself, then moved by .to() below
            continue
        if id(tensor) in memo:
            continue
        moved = tensor.detach().to(device=device, dtype=dtype if tensor.is_floating_point() else None, copy=True)
        memo[id(tensor)] = nn.Parameter(moved, requires_grad=tensor.requires_grad) if type(tensor) is nn.Parameter else moved
    copied = _copy_module(model, memo)
    if subclassed or not all(_plain(type(module)) and type(module)._apply is nn.Module._apply for module in model.modules()):
        copied = copied.to(device=device, dtype=dtype)  # what deepcopy or a module's own _apply() left to move
    return copied


def _copy_module(module: nn.Module, memo: dict) -> nn.Module:
    found = memo.get(id(module))
    if found is not None:
        return found
    cls = type(module)
    if not _plain(cls):
        return copy.deepcopy(module, memo)
    new = cls.__new__(cls)
    memo[id(module)] = new
    state = {}
    for key, value in module.__getstate__().items():
        if type(value) in _ATOMIC:
            state[key] = value
        elif type(value) in _CONTAINERS and not value:
            state[key] = type(value)()
        elif key == "_modules":
            state[key] = {name: None if child is None else _copy_module(child, memo) for name, child in value.items()}
        else:
            state[key] = copy.deepcopy(value, memo)
    new.__dict__.update(state)
    return new


@cache
def _plain(cls: type) -> bool:
    """Whether deepcopy would copy an instance of `cls` exactly as _copy_module does: torch's protocol, no slots."""
    return (getattr(cls, "__deepcopy__", None) is None and cls.__reduce_ex__ is object.__reduce_ex__
            and cls.__reduce__ is object.__reduce__ and cls.__getstate__ is nn.Module.__getstate__
            and cls.__setstate__ is nn.Module.__setstate__ and not copyreg._slotnames(cls))
