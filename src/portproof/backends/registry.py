"""Backend names to classes, the `--target auto` choice, and what `portproof env` reports."""

from __future__ import annotations

import torch

from ..config import ACCELERATORS, TargetSpec, parse_target
from ..errors import PortproofError
from .base import Backend, check_device


def create(spec: TargetSpec) -> Backend:
    if spec.backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(spec)
    if spec.backend == "compile":
        from .torch_compile import CompileBackend

        return CompileBackend(spec)
    from .torch_eager import EagerBackend

    return EagerBackend(spec)


def present_accelerators() -> list[str]:
    found = []
    for device in ACCELERATORS:
        try:
            check_device(device, None)
            found.append(device)
        except PortproofError:
            pass
    return found


def auto_targets() -> tuple[tuple[TargetSpec, ...], str]:
    """Every accelerator present; with none, ONNX Runtime and bf16 on the CPU. Returns (targets, why)."""
    found = present_accelerators()
    if found:
        return tuple(parse_target(d) for d in found), f"--target auto: accelerators present: {', '.join(found)}"
    fallback = ("onnxruntime@cpu", "cpu/bf16")
    return tuple(parse_target(t) for t in fallback), (
        f"--target auto: no accelerator (npu, cuda, xpu, mps) present, so comparing {' and '.join(fallback)} against the reference"
    )


def availability() -> list[tuple[str, str]]:
    """(name, "available" or "unavailable: <reason>") for every backend and device, for `portproof env`."""
    rows = []
    for device in ("cpu", *ACCELERATORS):
        try:
            check_device(device, None)
            rows.append((f"eager@{device}", "available"))
        except PortproofError as error:
            rows.append((f"eager@{device}", f"unavailable: {error}"))
    rows.append(("compile@<device>", f"available with torch {torch.__version__}" if hasattr(torch, "compile") else "unavailable"))
    try:
        import onnxruntime

        rows.append(("onnxruntime", f"available: {', '.join(onnxruntime.get_available_providers())}"))
    except ImportError:
        rows.append(("onnxruntime", "unavailable: pip install onnxruntime"))
    return rows
