"""config: the frozen settings' defaults and the `[backend@]device[:index][/dtype]` target syntax."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from portproof.backends import registry
from portproof.config import (
    CheckConfig,
    Criteria,
    TargetSpec,
    TimingSpec,
    parse_target,
)
from portproof.errors import ConfigError, PortproofError

BACKENDS, DEVICES, DTYPES = tuple(registry.backends()), registry.devices(), registry.dtypes()


# --- defaults -----------------------------------------------------------------------------------


def test_target_spec_defaults_are_eager_cpu_fp32_without_index():
    spec = TargetSpec()
    assert (spec.backend, spec.device, spec.index, spec.dtype) == ("eager", "cpu", None, "fp32")
    assert spec.device_string == "cpu"
    assert spec.label == "cpu"


def test_criteria_and_timing_defaults():
    assert Criteria() == Criteria(min_cosine=0.99, max_rel_l2=0.01)
    assert TimingSpec() == TimingSpec(enabled=True, warmup=10, iters=50)


def test_check_config_defaults():
    config = CheckConfig()
    assert config.reference == TargetSpec()
    assert config.targets is None
    assert config.criteria == Criteria()
    assert config.timing == TimingSpec()
    assert config.fp64_reference is True


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TargetSpec().device = "npu"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Criteria().min_cosine = 0.5  # type: ignore[misc]


def test_config_error_is_a_portproof_error():
    assert issubclass(ConfigError, PortproofError)


# --- parse_target: every documented form ----------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("npu", TargetSpec("eager", "npu", None, "fp32")),
        ("cpu", TargetSpec("eager", "cpu", None, "fp32")),
        ("npu:0/fp16", TargetSpec("eager", "npu", 0, "fp16")),
        ("npu:0", TargetSpec("eager", "npu", 0, "fp32")),
        ("cuda:3", TargetSpec("eager", "cuda", 3, "fp32")),
        ("cuda/amp-bf16", TargetSpec("eager", "cuda", None, "amp-bf16")),
        ("cuda:1/amp-fp16", TargetSpec("eager", "cuda", 1, "amp-fp16")),
        ("cpu/bf16", TargetSpec("eager", "cpu", None, "bf16")),
        ("xpu/fp32", TargetSpec("eager", "xpu", None, "fp32")),
        ("mps", TargetSpec("eager", "mps", None, "fp32")),
        ("onnxruntime@cpu", TargetSpec("onnxruntime", "cpu", None, "fp32")),
        ("onnxruntime@cuda:0/fp16", TargetSpec("onnxruntime", "cuda", 0, "fp16")),
        ("compile@cpu", TargetSpec("compile", "cpu", None, "fp32")),
        ("compile@npu:2/amp-bf16", TargetSpec("compile", "npu", 2, "amp-bf16")),
        ("eager@cuda", TargetSpec("eager", "cuda", None, "fp32")),
        ("cuda:12", TargetSpec("eager", "cuda", 12, "fp32")),
    ],
)
def test_parse_target_documented_forms(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("NPU:0/FP16", TargetSpec("eager", "npu", 0, "fp16")),
        ("  cuda/amp-bf16  ", TargetSpec("eager", "cuda", None, "amp-bf16")),
        ("\tOnnxRuntime@CPU\n", TargetSpec("onnxruntime", "cpu", None, "fp32")),
        ("Compile@Cpu/BF16", TargetSpec("compile", "cpu", None, "bf16")),
    ],
)
def test_parse_target_ignores_case_and_surrounding_whitespace(text, expected):
    assert parse_target(text) == expected


def test_parse_target_keeps_index_zero_distinct_from_no_index():
    with_zero = parse_target("npu:0")
    without = parse_target("npu")
    assert with_zero.index == 0 and without.index is None
    assert with_zero.device_string == "npu:0"
    assert without.device_string == "npu"
    assert with_zero != without


def test_parse_target_leading_zeros_in_index():
    assert parse_target("cuda:007").index == 7


@pytest.mark.parametrize(
    "spec, label",
    [
        (TargetSpec(), "cpu"),
        (TargetSpec("eager", "npu", 0, "fp16"), "npu:0/fp16"),
        (TargetSpec("onnxruntime", "cpu", None, "fp32"), "onnxruntime@cpu"),
        (TargetSpec("compile", "cuda", 1, "amp-bf16"), "compile@cuda:1/amp-bf16"),
        (TargetSpec("eager", "cpu", None, "bf16"), "cpu/bf16"),
    ],
)
def test_label_canonical_spelling(spec, label):
    assert spec.label == label


def test_label_round_trips_through_parse_target_for_every_valid_spec():
    count = 0
    for backend in registry.backends().values():
        for device, index, dtype in itertools.product(backend.devices, (None, 0, 1, 15), backend.dtypes):
            spec = TargetSpec(backend=backend.name, device=device, index=index, dtype=dtype)
            assert parse_target(spec.label) == spec, spec.label
            count += 1
    # eager and compile: 5 devices x 4 indices x 6 dtypes; onnxruntime: 3 devices x 4 indices x 2 dtypes;
    # openvino: the cpu x 4 indices x 2 dtypes
    assert count == 2 * 5 * 4 * 6 + 3 * 4 * 2 + 1 * 4 * 2


def test_a_backend_refuses_a_device_or_dtype_it_does_not_declare():
    with pytest.raises(ConfigError, match="onnxruntime runs on cpu, cuda, npu, not mps"):
        parse_target("onnxruntime@mps")
    with pytest.raises(ConfigError, match="onnxruntime takes fp32, fp16, not bf16"):
        parse_target("onnxruntime@cpu/bf16")


def test_label_of_parsed_text_is_canonical():
    # An explicit default backend and dtype disappear from the label.
    assert parse_target("EAGER@cpu/FP32").label == "cpu"
    assert parse_target(" onnxruntime@cuda:0/fp32 ").label == "onnxruntime@cuda:0"


# --- parse_target: errors ---------------------------------------------------------------------


@pytest.mark.parametrize("text, what, value", [
    ("tensorrt@cuda", "backend", "tensorrt"),
    ("gpu", "device", "gpu"),
    ("tpu:0/fp16", "device", "tpu"),
    ("cuda/int8", "dtype", "int8"),
    ("cpu/fp64", "dtype", "fp64"),
    ("cpu/amp-fp32", "dtype", "amp-fp32"),
])
def test_parse_target_unknown_value_names_it_and_lists_the_choices(text, what, value):
    with pytest.raises(ConfigError) as info:
        parse_target(text)
    message = str(info.value)
    assert f"unknown {what} {value!r}" in message
    assert repr(text) in message
    allowed = {"backend": BACKENDS, "device": DEVICES, "dtype": DTYPES}[what]
    assert "choose one of: " + ", ".join(allowed) in message


def test_parse_target_unknown_value_message_quotes_the_users_spelling():
    with pytest.raises(ConfigError) as info:
        parse_target("TensorRT@CUDA")
    message = str(info.value)
    assert "unknown backend 'tensorrt'" in message
    assert "'TensorRT@CUDA'" in message


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "npu0",
    "npu:",
    "npu:x",
    "npu:-1",
    "cpu/",
    "/fp16",
    "@cpu",
    "eager@",
    "npu :0",
    "npu: 0",
    "cuda / fp16",
    "onnx-runtime@cpu",
    "a@b@cpu",
    "cpu/fp16/fp32",
    "cpu:0:1",
    "cpu,cuda",
])
def test_parse_target_malformed_syntax(text):
    with pytest.raises(ConfigError) as info:
        parse_target(text)
    message = str(info.value)
    assert f"cannot read target {text!r}" in message
    assert "[backend@]device[:index][/dtype]" in message
    assert "npu:0/fp16" in message  # an example of the syntax


@pytest.mark.parametrize("dtype", ["amp-fp16", "amp-bf16"])
def test_parse_target_onnxruntime_refuses_autocast(dtype):
    text = f"onnxruntime@cuda/{dtype}"
    with pytest.raises(ConfigError) as info:
        parse_target(text)
    message = str(info.value)
    assert repr(text) in message
    assert f"autocast ({dtype})" in message
    assert "onnxruntime takes fp32, fp16" in message


@pytest.mark.parametrize("text", ["compile@cuda/amp-fp16", "cuda/amp-bf16", "eager@cpu/amp-bf16"])
def test_autocast_is_fine_for_pytorch_backends(text):
    assert parse_target(text).dtype.startswith("amp-")
