"""backends/onnx_export.export, read back with the `onnx` package: every input and output keeps its name
(outputs named as models.named_outputs names them), and dimension 0 of each is a symbolic batch axis."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

import toy_models
from portproof.backends import onnx_export


class Doubled(nn.Module):
    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return signal * 2


class Pair(nn.Module):
    def forward(self, signal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return signal * 2, signal.sum(dim=1)


def graph_values(path) -> tuple[list, list]:
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return list(model.graph.input), list(model.graph.output)


def dims(value: onnx.ValueInfoProto) -> list:
    """Each dimension: its symbol (str) where symbolic, its size (int) where fixed."""
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value.type.tensor_type.shape.dim]


def test_inputs_and_outputs_keep_their_names_and_dimension_0_is_symbolic(tmp_path):
    graph = onnx_export.export(toy_models.make_model().eval(), toy_models.make_inputs(2, 0), tmp_path / "model.onnx")
    inputs, outputs = graph_values(graph.path)
    assert graph.input_names == ("features", "token_ids") and graph.output_names == ("logits", "hidden")
    assert [v.name for v in inputs] == ["features", "token_ids"]
    assert [v.name for v in outputs] == ["logits", "hidden"]
    shapes = {v.name: dims(v) for v in inputs + outputs}
    assert all(isinstance(shape[0], str) and shape[0] for shape in shapes.values()), shapes
    assert {name: shape[1:] for name, shape in shapes.items()} == {
        "features": [8], "token_ids": [4], "logits": [5], "hidden": [8]}
    elem = {v.name: v.type.tensor_type.elem_type for v in inputs + outputs}
    assert elem["token_ids"] == onnx.TensorProto.INT64 and elem["features"] == onnx.TensorProto.FLOAT
    assert graph.exporter.startswith("torch.onnx (") and graph.exporter.endswith(torch.__version__)


@pytest.mark.parametrize("model, output_names", [(Doubled(), ["output"]), (Pair(), ["output_0", "output_1"])])
def test_a_tensor_or_a_tuple_is_named_as_named_outputs_names_it(tmp_path, model, output_names):
    graph = onnx_export.export(model, {"signal": torch.randn(3, 6)}, tmp_path / "model.onnx")
    inputs, outputs = graph_values(graph.path)
    assert [v.name for v in inputs] == ["signal"] and [v.name for v in outputs] == output_names
    assert list(graph.output_names) == output_names
    assert all(isinstance(dims(v)[0], str) and dims(v)[0] for v in inputs + outputs)


def test_where_the_torchscript_exporter_fails_the_dynamo_exporter_keeps_names_and_the_batch_axis(tmp_path, monkeypatch):
    """A torch release without the TorchScript exporter, or a model it cannot export: the dynamo exporter
    writes the file, and the graph is the same to its users."""
    real_export = torch.onnx.export

    def without_torchscript(*args, dynamo, **options):
        if not dynamo:
            raise RuntimeError("the TorchScript exporter is not available")
        return real_export(*args, dynamo=dynamo, **options)

    monkeypatch.setattr(torch.onnx, "export", without_torchscript)
    graph = onnx_export.export(toy_models.make_model().eval(), toy_models.make_inputs(2, 0), tmp_path / "model.onnx")
    inputs, outputs = graph_values(graph.path)
    assert graph.exporter == f"torch.onnx (dynamo) {torch.__version__}"
    assert [v.name for v in inputs] == ["features", "token_ids"] and [v.name for v in outputs] == ["logits", "hidden"]
    assert all(isinstance(dims(v)[0], str) and dims(v)[0] for v in inputs + outputs)
