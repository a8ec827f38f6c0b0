"""Export a torch model to an ONNX file, for every backend that runs a graph (onnxruntime, and any plugin).

Every input and output keeps its name (outputs named as models.named_outputs names them), and dimension 0 of each is a dynamic batch axis. The TorchScript
exporter is tried first: it is an order of magnitude faster and keeps module names in node names (the
layer pass maps graph values to modules through them). Where a torch release has dropped it, or it fails
on the model, the dynamo exporter is used, and the summary says which one wrote the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..models import named_outputs
from .base import Tensors


@dataclass(frozen=True)
class ExportedGraph:
    path: Path
    exporter: str  # e.g. "torch.onnx (TorchScript) 2.14.1"
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


EXPORT_SCOPE = "/model"  # the TorchScript exporter names the exported model's nodes under its wrapper's attribute


class _Positional(nn.Module):
    """forward(*inputs) -> tuple of outputs, around a model called by keyword: what the exporters take best."""

    def __init__(self, model: nn.Module, input_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs):
        return tuple(named_outputs(self.model(**dict(zip(self.input_names, inputs)))).values())


def export(model: nn.Module, example: Tensors, path: Path) -> ExportedGraph:
    """Write `model` (called as model(**example)) to `path`; the model and example are used as they are
    (cast them first for an fp16 graph)."""
    input_names = tuple(example)
    with torch.no_grad():
        names = tuple(named_outputs(model(**example)))
    wrapped, args = _Positional(model, input_names).eval(), tuple(example.values())
    dynamic = {name: {0: "batch"} for name in (*input_names, *names)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapped, args, str(path), dynamo=False, input_names=list(input_names),
                              output_names=list(names), dynamic_axes=dynamic)
            exporter = f"torch.onnx (TorchScript) {torch.__version__}"
        except (TypeError, RuntimeError, NotImplementedError):
            batch = torch.export.Dim("batch")
            torch.onnx.export(wrapped, args, str(path), dynamo=True, input_names=list(input_names),
                              output_names=list(names),
                              dynamic_shapes=(tuple({0: batch} for _ in args),))  # forward(*inputs): one varargs entry
            exporter = f"torch.onnx (dynamo) {torch.__version__}"
    return ExportedGraph(path, exporter, input_names, names)
