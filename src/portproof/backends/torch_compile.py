"""torch.compile on any device: the eager backend with a compiled model (compilation happens on the
first call, which the latency figures report as the cold run)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .torch_eager import EagerBackend


class CompileBackend(EagerBackend):
    def prepare(self, model: nn.Module, example: torch.Tensor) -> None:
        super().prepare(model, example)
        self.model = torch.compile(self.model)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "compiler": "torch.compile (inductor)"}
