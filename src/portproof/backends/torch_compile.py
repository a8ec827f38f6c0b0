"""torch.compile on any device: the eager backend with a compiled model (compilation happens on the
first call, which the latency figures report as the cold run). `+mode=` picks torch.compile's mode:
`reduce-overhead` replays CUDA graphs, `max-autotune` also times Triton kernels for each matmul and
convolution at compile time (slow to compile, often the fastest on a GPU)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import TargetSpec
from ..errors import DeviceUnavailableError
from .base import Tensors
from .registry import register_backend
from .torch_eager import TORCH_DEVICES, TORCH_DTYPES, EagerBackend, probe as eager_probe


def probe(spec: TargetSpec) -> None:
    if not hasattr(torch, "compile"):
        raise DeviceUnavailableError(f"torch {torch.__version__} has no torch.compile; install torch 2.0 or newer")
    eager_probe(spec)


MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


# The layer pass runs compile targets eagerly: torch.compile fuses modules, so their outputs cannot be observed.
@register_backend("compile", devices=TORCH_DEVICES, dtypes=TORCH_DTYPES, layer_pass="eager", probe=probe,
                  keeps_fp32=True, modes=MODES)
class CompileBackend(EagerBackend):
    def prepare(self, model: nn.Module, example: Tensors) -> None:
        super().prepare(model, example)
        self.model = torch.compile(self.model, mode=self.spec.mode)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "compiler": "torch.compile (inductor)", "compile_mode": self.spec.mode or "default"}
