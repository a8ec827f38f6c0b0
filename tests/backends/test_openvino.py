"""OpenVinoBackend on this CPU: outputs by name equal to eager PyTorch under the fp32 hint (which must be stated:
OpenVINO's own default on a CPU with native bf16 is bf16), bf16 only where the CPU computes it natively, and a
timm model checked end to end against the reference."""

from __future__ import annotations

import json

import pytest
import torch

import toy_models
from conftest import SMALL_MODEL
from helpers import FAST
from portproof import cli
from portproof.config import TargetSpec
from portproof.errors import DeviceUnavailableError

openvino = pytest.importorskip("openvino")  # in the dev extras: make test installs it
NATIVE_BF16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def backend(dtype: str):
    from portproof.backends.openvino import OpenVinoBackend

    prepared = OpenVinoBackend(TargetSpec(backend="openvino", device="cpu", dtype=dtype))
    prepared.prepare(toy_models.make_model(), toy_models.make_inputs(2, 0))
    return prepared


def test_fp32_target_states_the_f32_hint_and_equals_eager():
    fp32 = backend("fp32")
    batch = toy_models.make_inputs(3, 1)  # another batch size than the one exported: the batch axis is dynamic
    with torch.no_grad():
        expected = toy_models.make_model().eval()(**batch)
    outputs = fp32.run(batch)
    assert list(outputs) == list(expected)
    for name in expected:
        torch.testing.assert_close(outputs[name], expected[name], rtol=1e-5, atol=1e-5)
    numerics = fp32.describe()["numerics"]
    assert numerics["inference_precision_hint"] == "f32" and numerics["inference_num_threads"] == torch.get_num_threads()


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16: the probe refuses openvino@cpu/bf16 (tested below)")
def test_bf16_target_runs_in_bf16():
    bf16 = backend("bf16")
    assert bf16.describe()["numerics"]["inference_precision_hint"] == "bf16"
    batch = toy_models.make_inputs(2, 1)
    with torch.no_grad():
        expected = toy_models.make_model().eval()(**batch)["logits"]
    error = float((bf16.run(batch)["logits"] - expected).norm() / expected.norm())
    assert 1e-6 < error < 0.05  # not fp32 (the hint took effect), not garbage


@pytest.mark.skipif(NATIVE_BF16, reason="this CPU computes bf16 natively")
def test_bf16_is_refused_where_the_cpu_would_emulate_it():
    from portproof.backends.openvino import probe

    with pytest.raises(DeviceUnavailableError, match="no native bf16"):
        probe(TargetSpec(backend="openvino", device="cpu", dtype="bf16"))


def test_timm_model_checked_end_to_end_passes_with_the_fp32_hint(tmp_path):
    out = tmp_path / "out"
    code = cli.main(["check", SMALL_MODEL, "--target", "openvino@cpu", "--out", str(out), *FAST])
    summary = json.loads((out / "summary.json").read_text())
    target = summary["targets"][0]
    assert code == 0 and target["status"] == "PASS"
    assert target["description"]["numerics"]["inference_precision_hint"] == "f32"
    logits = next(c for c in target["comparisons"] if c["name"] == "logits")
    assert logits["rel_l2"] < 1e-5 and logits["topk"]["top1_match"] is True
