"""Eager PyTorch on any device (cpu, cuda, npu, xpu, mps) in any dtype, or under autocast."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from torch import nn

from .. import numerics
from ..config import TargetSpec
from ..errors import DeviceUnavailableError
from ..module_copy import cast_copy
from ..numerics import TF32_DEVICES
from ..precision import keep_fp32
from .base import Tensors, cast_inputs, check_device, device_name, make_current, synchronize
from .registry import register_backend

# fp64 is not offered to users as a target dtype; the session uses it for the noise-floor reference.
CAST_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}
# tf32: fp32 weights and activations, with TF32 (CUDA) or HF32 (Ascend) matmuls and convolutions (numerics.py)
TF32 = "tf32"
AUTOCAST_DTYPES = {"amp-fp16": torch.float16, "amp-bf16": torch.bfloat16}
TORCH_DEVICES = ("cpu", "cuda", "npu", "xpu", "mps")
TORCH_DTYPES = ("fp32", "fp16", "bf16", "amp-fp16", "amp-bf16", TF32)


def probe(spec: TargetSpec) -> None:
    if spec.dtype == TF32 and spec.device not in TF32_DEVICES:
        raise DeviceUnavailableError(f"{spec.label}: tf32 is a matmul mode of CUDA (TF32) and Ascend (HF32) devices; "
                                     f"{spec.device} has none, so fp32 is what it runs", cli_hint="--target SPEC")
    check_device(spec.device, spec.index)


@register_backend("eager", devices=TORCH_DEVICES, dtypes=TORCH_DTYPES, layer_pass="eager", probe=probe, keeps_fp32=True)
class EagerBackend:
    def __init__(self, spec: TargetSpec):
        probe(spec)
        self.spec = spec
        self.device = torch.device(spec.device_string)
        self.model: nn.Module | None = None

    @property
    def parameter_dtype(self) -> torch.dtype:
        return CAST_DTYPES.get(self.spec.dtype, torch.float32)

    def prepare(self, model: nn.Module, example: Tensors) -> None:
        make_current(self.device)
        if self.spec.keep_fp32:  # the named modules stay fp32 (precision.py); the others take the dtype
            cast = self.parameter_dtype if self.spec.dtype in CAST_DTYPES else None
            self.model = keep_fp32(cast_copy(model, self.device), self.spec.keep_fp32, cast).eval()
        else:
            self.model = cast_copy(model, self.device, self.parameter_dtype).eval()
        if self.spec.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def place(self, batch: Tensors) -> dict[str, torch.Tensor]:
        placed = cast_inputs(batch, self.device, self.parameter_dtype)
        if self.spec.channels_last:  # image batches in the layout the model's weights now have
            placed = {name: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
                      for name, t in placed.items()}
        return placed

    def forward(self, placed: Tensors) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), self.autocast(), self.matmul_mode():
            return self.model(**placed)

    def run(self, batch: Tensors) -> dict[str, torch.Tensor]:
        return {name: output.cpu() for name, output in self.forward(self.place(batch)).items()}

    def step(self, batch: Tensors) -> Callable[[], Any]:
        placed = self.place(batch)
        return lambda: self.forward(placed)

    def synchronize(self) -> None:
        synchronize(self.device)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.spec.backend,
            "device": self.spec.device_string,
            "device_name": device_name(self.device),
            "dtype": self.spec.dtype,
            "autocast": self.spec.dtype in AUTOCAST_DTYPES,
            "kept_in_fp32": list(self.spec.keep_fp32),
            "channels_last": self.spec.channels_last,
            "numerics": self.numerics(),
            "torch": torch.__version__,
        }

    def numerics(self) -> dict[str, Any]:
        """The settings in force while this side's forward runs."""
        with self.matmul_mode():
            return numerics.torch_settings(self.device.type)

    def matmul_mode(self):
        return numerics.tf32(self.device.type) if self.spec.dtype == TF32 else contextlib.nullcontext()

    def autocast(self):
        if self.spec.dtype in AUTOCAST_DTYPES:
            return torch.autocast(device_type=self.device.type, dtype=AUTOCAST_DTYPES[self.spec.dtype])
        return contextlib.nullcontext()
