"""The layer pass for onnxruntime targets: accumulated mode through the ONNX graph's intermediate values.

The TorchScript exporter names each node after the modules it came from (`/blocks/blocks.0/attn/qkv/Add`),
so a module's output is the last value computed inside its scope. Those values are added to the graph's
outputs, one session run returns them all, and the reference's module outputs are compared with them as
the reference runs. Modules with no operation of their own in the graph (identities, dropout in eval),
second calls of a module, and values whose shape is not the module's output are reported as unmapped.
Local mode needs a module fed the reference's input, which an ONNX graph cannot be: it is reported as
unavailable. Memory: the target's mapped values are held at once (one session run returns them together).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from .backends.base import cast_inputs
from .backends.onnx_export import EXPORT_SCOPE, export
from .config import Criteria, TargetSpec
from .errors import LayerPassError
from .module_copy import cast_copy
from .models import first_argument
from .layers import ROOT_NAME, LayerMetrics, LayerReport, LayerRow, layer_metrics, report_from_rows, tensor_elements

LOCAL_UNAVAILABLE = LayerMetrics(error="not available: an ONNX graph cannot feed one module the reference's input")


def compare_layers_onnx(reference_model: nn.Module, inputs: torch.Tensor | Mapping[str, torch.Tensor], target: TargetSpec,
                        criteria: Criteria, notes: tuple[str, ...] = ()) -> LayerReport:
    """`inputs` as for layers.compare_layers: {name: tensor} passed by keyword, or one tensor."""
    import onnx

    from .backends.onnxruntime import EXPORT_DTYPES, open_session, probe

    provider = probe(target)  # checks that the execution provider is there
    if isinstance(inputs, torch.Tensor):
        inputs = {first_argument(reference_model): inputs}
    dtype = EXPORT_DTYPES[target.dtype]
    reference_model = reference_model.eval()
    with tempfile.TemporaryDirectory(prefix="portproof-layers-") as workdir:
        path = Path(workdir) / "model.onnx"
        first = {name: tensor[:1] for name, tensor in inputs.items()}
        graph = export(cast_copy(reference_model, dtype=dtype), cast_inputs(first, "cpu", dtype), path)
        if "TorchScript" not in graph.exporter:
            raise LayerPassError(f"the layer pass maps ONNX values to modules through the TorchScript exporter's node "
                                 f"names; this torch has only {graph.exporter}")
        graph_model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
        values = module_values(graph_model.graph, module_scopes(reference_model, EXPORT_SCOPE))
        typed = {info.name: info for info in (*graph_model.graph.value_info, *graph_model.graph.output)}
        mapped = {module: value for module, value in values.items() if value in typed}
        existing = {output.name for output in graph_model.graph.output}
        graph_model.graph.output.extend(typed[v] for v in dict.fromkeys(mapped.values()) if v not in existing)
        onnx.save(graph_model, str(path))
        session = open_session(path, target, provider)  # a silent CPU fallback would measure something else
        names = [output.name for output in session.get_outputs()]
        feed = {name: tensor.numpy() for name, tensor in cast_inputs(inputs, "cpu", dtype).items()}
        results = session.run(names, feed)
    target_values = {name: torch.from_numpy(np.asarray(value)) for name, value in zip(names, results)}
    target_values[ROOT_NAME] = target_values[names[0]]  # the graph's first output is the model's

    rows: list[LayerRow] = []
    calls: dict[str, int] = {}
    unmapped: list[str] = []

    def compare(module, args, output, name):
        calls[name] = calls.get(name, 0) + 1
        key = (name or ROOT_NAME) if calls[name] == 1 else f"{name or ROOT_NAME}#{calls[name]}"
        value = target_values.get(ROOT_NAME) if not name else (target_values.get(mapped[name]) if name in mapped else None)
        for element, tensor in tensor_elements(output):
            if value is None or calls[name] > 1 or element or tuple(value.shape) != tuple(tensor.shape):
                metrics = LayerMetrics(error="not mapped: " + _why_unmapped(name, values, calls[name], element, value, tensor))
                unmapped.append(key + element)
            else:
                metrics = layer_metrics(tensor, value)
            rows.append(LayerRow(len(rows), key, element, type(module).__name__, tuple(tensor.shape),
                                 str(tensor.dtype).replace("torch.", ""), metrics, LOCAL_UNAVAILABLE))

    handles = [module.register_forward_hook(lambda m, a, o, _name=name: compare(m, a, o, _name))
               for name, module in reference_model.named_modules()]
    try:
        with torch.no_grad():
            reference_model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    notes = notes + (
        f"onnxruntime target: accumulated mode only, through the graph's intermediate values ({graph.exporter}); "
        f"{len(rows) - len(unmapped)} of {len(rows)} module outputs mapped",
    )
    if unmapped:
        notes += (f"not mapped to a graph value: {', '.join(unmapped[:12])}" + (" ..." if len(unmapped) > 12 else ""),)
    return report_from_rows(target.label, next(iter(inputs.values())).shape[0], criteria, rows, notes)


def module_scopes(model: nn.Module, prefix: str = "") -> dict[str, str]:
    """The exporter's scope of each module: its path, a numbered child written `parent.N` (`blocks.0`), under
    `prefix` (the scope of the wrapper the model was exported in)."""
    scopes = {}
    for name, _ in model.named_modules():
        if not name:
            continue
        components: list[str] = []
        for part in name.split("."):
            components.append(f"{components[-1].split('.')[0]}.{part}" if part.isdigit() and components else part)
        scopes[name] = prefix + "/" + "/".join(components)
    return scopes


def module_values(graph, scopes: dict[str, str]) -> dict[str, str]:
    """Module name -> the last value computed inside its scope, in the graph's (topological) order."""
    by_scope = {scope: name for name, scope in scopes.items()}
    last: dict[str, str] = {}
    for node in graph.node:
        if not node.name.startswith("/") or not node.output:
            continue
        parts = node.name.split("/")[1:-1]
        for depth in range(1, len(parts) + 1):
            module = by_scope.get("/" + "/".join(parts[:depth]))
            if module is not None:
                last[module] = node.output[0]
    return last


def _why_unmapped(name, values, call, element, value, tensor) -> str:
    if call > 1:
        return "a second call of the module is not told apart in the graph"
    if element:
        return "tuple and dict outputs are not mapped"
    if name not in values:
        return "no operation of its own in the exported graph"
    return f"the graph value has shape {list(value.shape) if value is not None else '?'}, the module's output {list(tensor.shape)}"
