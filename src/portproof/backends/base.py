"""The small protocol every way of running a model follows, and the device helpers they share."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

import torch
from torch import nn

from ..config import TargetSpec
from ..errors import DeviceUnavailableError


# Inputs and outputs travel by name: {"x": images} for a timm model, {"input_ids": ..., "attention_mask": ...}
# for a text model. Dimension 0 of every tensor is the sample dimension.
Tensors = Mapping[str, torch.Tensor]


class Backend(Protocol):
    """One way of running a model (registered with registry.register_backend). Everything callers use is here."""

    spec: TargetSpec

    def prepare(self, model: nn.Module, example: Tensors) -> None:
        """Take a CPU fp32 model whose forward(**inputs) returns {output name: tensor}; the backend copies (or
        exports) it, and the caller's stays untouched. `example` is one CPU batch."""

    def run(self, batch: Tensors) -> dict[str, torch.Tensor]:
        """One forward of a CPU batch; the outputs by name, on the CPU, in the model's order."""

    def step(self, batch: Tensors) -> Callable[[], Any]:
        """A forward with the batch already placed on the device: what the latency figures time."""

    def synchronize(self) -> None:
        """Wait for the device to finish queued work, so a timer measures it."""

    def describe(self) -> dict[str, Any]:
        """What ran: backend, device name, dtype, runtime versions."""


def cast_inputs(batch: Tensors, device: torch.device | str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Each input on `device`; floating ones in `dtype`, the others (token ids, masks) as they are."""
    return {name: tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else tensor.dtype)
            for name, tensor in batch.items()}


def check_device(device: str, index: int | None) -> None:
    """Raise DeviceUnavailableError, naming what is missing, unless `device[:index]` can run torch code."""
    if device == "cpu":
        if index not in (None, 0):  # torch takes cpu:99 silently and runs on the one CPU device there is
            raise DeviceUnavailableError(f"cpu:{index} does not exist: the CPU is a single device, cpu:0; give cpu")
        return
    if device == "npu":
        try:
            import torch_npu  # noqa: F401  (registers torch.npu)
        except ImportError as error:
            raise DeviceUnavailableError(
                f"torch_npu not installed ({error}); install the torch_npu that matches your CANN and torch, "
                "e.g. pip install 'portproof[npu]'"
            ) from None
    if device == "mps":
        available, count = torch.backends.mps.is_available(), 1
    else:
        module = getattr(torch, device, None)
        available = module is not None and module.is_available()
        count = module.device_count() if available else 0
    if not available:
        raise DeviceUnavailableError(f"device {device!r} is not available here ({_why_absent(device)}); choose another target",
                                     cli_hint="--target SPEC")
    if index is not None and index >= count:
        raise DeviceUnavailableError(f"{device}:{index} does not exist: this machine has {count} {device} device(s)")


def make_current(device: torch.device) -> None:
    """Make `device` the calling thread's current device: CUDA and torch_npu keep it per thread, and a side
    (worker.py) may run in any thread of the caller's in-process mode, where a new thread starts on device 0."""
    if device.type == "cpu":
        return
    index = device.index if device.index is not None else 0
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "set_device_index") and accelerator.is_available() \
            and accelerator.current_accelerator().type == device.type:
        accelerator.set_device_index(index)
    elif hasattr(getattr(torch, device.type, None), "set_device"):
        getattr(torch, device.type).set_device(index)


def synchronize(device: torch.device) -> None:
    if device.type == "cpu":
        return
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and accelerator.is_available() and accelerator.current_accelerator().type == device.type:
        accelerator.synchronize(device)
    else:
        getattr(torch, device.type).synchronize()


def device_name(device: torch.device) -> str:
    if device.type == "cpu":
        return cpu_name()
    if device.type == "mps":
        return "Apple MPS"
    module = getattr(torch, device.type)
    return str(module.get_device_name(device)) if hasattr(module, "get_device_name") else device.type


def cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _why_absent(device: str) -> str:
    if device == "cuda":
        built = torch.version.cuda
        return f"torch {torch.__version__} is built with CUDA {built} but finds no GPU" if built else f"torch {torch.__version__} has no CUDA support"
    if device == "npu":
        return "torch_npu is installed but finds no NPU; check the driver with npu-smi info"
    return f"torch {torch.__version__} finds no {device} device"
