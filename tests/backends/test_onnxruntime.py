"""OnnxRuntimeBackend on the CPU with a two-input model (float features, int64 token ids): outputs by name and
equal to eager PyTorch, a batch axis that is really dynamic, an fp16 graph, and what describe() records."""

from __future__ import annotations

import pytest
import torch

import toy_models
from portproof.backends.base import cpu_name
from portproof.backends.onnxruntime import OnnxRuntimeBackend
from portproof.config import TargetSpec

PREPARED_BATCH = 2


def prepared(dtype: str) -> OnnxRuntimeBackend:
    backend = OnnxRuntimeBackend(TargetSpec(backend="onnxruntime", device="cpu", dtype=dtype))
    backend.prepare(toy_models.make_model(), toy_models.make_inputs(PREPARED_BATCH, 0))
    return backend


def eager(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return toy_models.make_model().eval()(**batch)


@pytest.fixture(scope="module")
def fp32_backend() -> OnnxRuntimeBackend:
    return prepared("fp32")


@pytest.fixture(scope="module")
def fp16_backend() -> OnnxRuntimeBackend:
    return prepared("fp16")


def test_outputs_are_named_as_the_model_names_them_and_equal_eager(fp32_backend):
    batch = toy_models.make_inputs(PREPARED_BATCH, 1)
    outputs, expected = fp32_backend.run(batch), eager(batch)
    assert list(outputs) == ["logits", "hidden"]
    for name in expected:
        assert outputs[name].dtype == torch.float32 and outputs[name].shape == expected[name].shape
        assert (outputs[name] - expected[name]).abs().max() <= 1e-5, name


@pytest.mark.parametrize("num_samples", [1, 3])
def test_the_batch_axis_is_dynamic(fp32_backend, num_samples):
    """Prepared with a batch of 2, the session runs any other batch size (the last batch is often smaller)."""
    batch = toy_models.make_inputs(num_samples, 2)
    outputs, expected = fp32_backend.run(batch), eager(batch)
    assert outputs["logits"].shape == (num_samples, 5) and outputs["hidden"].shape == (num_samples, 8)
    assert all((outputs[name] - expected[name]).abs().max() <= 1e-5 for name in expected)


def test_step_runs_the_graph_on_the_batch_placed_once(fp32_backend):
    batch = toy_models.make_inputs(3, 3)
    logits, hidden = fp32_backend.step(batch)()
    run = fp32_backend.run(batch)
    assert torch.equal(torch.from_numpy(logits), run["logits"]) and torch.equal(torch.from_numpy(hidden), run["hidden"])


def test_fp16_graph_takes_half_features_and_integer_ids(fp16_backend):
    session = fp16_backend.session
    assert {i.name: i.type for i in session.get_inputs()} == {"features": "tensor(float16)", "token_ids": "tensor(int64)"}
    assert {o.name: o.type for o in session.get_outputs()} == {"logits": "tensor(float16)", "hidden": "tensor(float16)"}
    batch = toy_models.make_inputs(3, 1)
    placed = fp16_backend.place(batch)
    assert placed["features"].dtype.name == "float16" and placed["token_ids"].dtype.name == "int64"
    outputs, expected = fp16_backend.run(batch), eager(batch)
    assert {t.dtype for t in outputs.values()} == {torch.float16}
    error = max((outputs[name].double() - expected[name].double()).abs().max() for name in expected)
    assert 1e-5 < error < 0.05  # the same model at half precision: not fp32's agreement, not another model's


def test_prepare_leaves_the_callers_model_in_fp32():
    model = toy_models.make_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    OnnxRuntimeBackend(TargetSpec(backend="onnxruntime", device="cpu", dtype="fp16")).prepare(
        model, toy_models.make_inputs(PREPARED_BATCH, 0))
    assert all(torch.equal(model.state_dict()[name], value) for name, value in before.items())


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_describe_names_the_exporter_and_the_provider(fp32_backend, fp16_backend, dtype):
    import onnxruntime

    backend = {"fp32": fp32_backend, "fp16": fp16_backend}[dtype]
    description = backend.describe()
    assert description["exporter"] == backend.graph.exporter
    assert description["exporter"].startswith("torch.onnx (") and description["exporter"].endswith(f") {torch.__version__}")
    assert description["onnx_model_bytes"] == backend.graph.path.stat().st_size > 0
    assert {key: description[key] for key in ("backend", "device", "device_name", "dtype", "onnxruntime", "provider")} == {
        "backend": "onnxruntime", "device": "cpu", "device_name": cpu_name(), "dtype": dtype,
        "onnxruntime": onnxruntime.__version__, "provider": "CPUExecutionProvider",
    }
    assert backend.session.get_providers()[0] == "CPUExecutionProvider"
