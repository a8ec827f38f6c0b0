"""EagerBackend on the CPU: the model copied at the target's dtype, inputs placed with integer ids kept
integer, outputs by name on the CPU, autocast for the amp dtypes, and fp64 for the noise-floor reference."""

from __future__ import annotations

import pytest
import torch

import toy_models
from portproof.backends.base import cpu_name
from portproof.backends.torch_eager import EagerBackend
from portproof.config import TargetSpec

LOWER_PRECISION = {"fp16": torch.float16, "bf16": torch.bfloat16}


def prepared(dtype: str, model: torch.nn.Module | None = None) -> EagerBackend:
    backend = EagerBackend(TargetSpec(device="cpu", dtype=dtype))
    backend.prepare(model if model is not None else toy_models.make_model(), toy_models.make_inputs(2, 0))
    return backend


def forward_in_float64(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The toy model run in float64 outside any backend: what each dtype is measured against."""
    model = toy_models.make_model().double().eval()
    with torch.no_grad():
        return model(**{name: t.double() if t.is_floating_point() else t for name, t in batch.items()})


def test_prepare_copies_the_model_and_leaves_the_callers_untouched():
    model = toy_models.make_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    backend = prepared("fp16", model)
    assert backend.model is not model
    assert all(p.dtype == torch.float16 for p in backend.model.parameters())
    with torch.no_grad():
        next(backend.model.parameters()).fill_(7.0)  # the copy changes; the caller's must not
    after = model.state_dict()
    assert all(after[name].dtype == torch.float32 and torch.equal(after[name], value) for name, value in before.items())
    assert model.training and not backend.model.training  # the copy is put in eval mode, the caller's is not


def test_run_returns_cpu_tensors_named_as_the_model_names_them_and_equal_to_its_forward():
    model = toy_models.make_model().eval()
    batch = toy_models.make_inputs(3, 1)
    outputs = prepared("fp32", model).run(batch)
    with torch.no_grad():
        expected = model(**batch)
    assert list(outputs) == ["logits", "hidden"]
    assert all(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in outputs.values())
    assert outputs["logits"].shape == (3, 5) and outputs["hidden"].shape == (3, 8)
    assert all(torch.equal(outputs[name], expected[name]) for name in expected)


def test_step_runs_the_same_forward_on_the_batch_placed_once():
    backend = prepared("fp32")
    batch = toy_models.make_inputs(3, 2)
    forward = backend.step(batch)
    stepped, run = forward(), backend.run(batch)
    assert list(stepped) == list(run) and all(torch.equal(stepped[name], run[name]) for name in run)
    backend.synchronize()  # nothing queued on the CPU: returns


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_place_casts_only_floating_inputs_to_the_target_dtype(dtype):
    backend = prepared(dtype)
    batch = toy_models.make_inputs(3, 1)
    placed = backend.place(batch)
    assert placed["features"].dtype == LOWER_PRECISION[dtype]
    assert torch.equal(placed["features"], batch["features"].to(LOWER_PRECISION[dtype]))
    assert placed["token_ids"].dtype == torch.int64 and torch.equal(placed["token_ids"], batch["token_ids"])
    # the model raises on ids that are not int64; here it ran, at the target's precision
    outputs = backend.run(batch)
    assert {t.dtype for t in outputs.values()} == {LOWER_PRECISION[dtype]}
    reference = forward_in_float64(batch)
    error = (outputs["logits"].double() - reference["logits"]).abs().max()
    assert 1e-5 < error < 0.05  # the same model, at a precision well below fp32's (whose error here is ~1e-7)


@pytest.mark.parametrize("dtype, autocast_dtype", [("amp-fp16", torch.float16), ("amp-bf16", torch.bfloat16)])
def test_amp_dtypes_run_under_autocast_with_fp32_parameters_and_inputs(dtype, autocast_dtype):
    backend = prepared(dtype)
    batch = toy_models.make_inputs(3, 1)
    assert all(p.dtype == torch.float32 for p in backend.model.parameters())
    placed = backend.place(batch)
    assert placed["features"].dtype == torch.float32 and placed["token_ids"].dtype == torch.int64
    outputs = backend.run(batch)
    # the head is a Linear, which autocast runs in the lower precision; without autocast it would be fp32
    assert outputs["logits"].dtype == autocast_dtype
    reference = forward_in_float64(batch)
    assert 1e-5 < (outputs["logits"].double() - reference["logits"]).abs().max() < 0.05
    assert backend.describe()["autocast"] is True


def test_fp64_runs_in_float64_and_agrees_with_float64_arithmetic():
    """The session's noise-floor reference: parameters, floating inputs and outputs in float64."""
    model = toy_models.make_model()
    backend = prepared("fp64", model)
    batch = toy_models.make_inputs(3, 1)
    assert all(p.dtype == torch.float64 for p in backend.model.parameters())
    placed = backend.place(batch)
    assert placed["features"].dtype == torch.float64 and placed["token_ids"].dtype == torch.int64
    outputs = backend.run(batch)
    reference = forward_in_float64(batch)
    assert all(outputs[name].dtype == torch.float64 for name in reference)
    assert all(torch.equal(outputs[name], reference[name]) for name in reference)


@pytest.mark.parametrize("dtype, autocast", [("fp32", False), ("bf16", False), ("amp-fp16", True)])
def test_describe_names_what_ran(dtype, autocast):
    assert prepared(dtype).describe() == {
        "backend": "eager", "device": "cpu", "device_name": cpu_name(), "dtype": dtype, "autocast": autocast,
        "torch": torch.__version__, "kept_in_fp32": [], "channels_last": False,
        "numerics": {"float32_matmul_precision": torch.get_float32_matmul_precision(), "deterministic_algorithms": False},
    }


def test_tf32_is_refused_on_the_cpu_and_recorded_where_it_runs():
    from portproof.backends.torch_eager import probe
    from portproof.errors import DeviceUnavailableError
    from portproof.numerics import torch_settings

    with pytest.raises(DeviceUnavailableError, match="tf32 is a matmul mode of CUDA"):
        probe(TargetSpec(dtype="tf32"))
    if torch.cuda.is_available():  # on a GPU the flags are on inside the forward, and restored after
        before = torch_settings("cuda")
        backend = EagerBackend(TargetSpec(device="cuda", dtype="tf32"))
        assert backend.numerics()["cuda_matmul_allow_tf32"] is True and torch_settings("cuda") == before
