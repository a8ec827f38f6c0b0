"""Precision rescue and `+fp32=` targets, on models made to fail in low precision (toy_models.py): the set
contains the culprit, applying it passes, dropping any one module fails again, and the specs round-trip."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from portproof import cli, keep_fp32
from portproof.config import parse_target
from portproof.errors import ConfigError

import toy_models
from helpers import FAST, last_error_line


def rescue(tmp_path, model: str, target: str) -> tuple[int, dict]:
    out = tmp_path / "out"
    code = cli.main(["rescue", model, "--target", target, "--out", str(out), *FAST, "--num-samples", "8"])
    return code, json.loads((out / "summary.json").read_text())


def verdict(tmp_path, model: str, target: str) -> str:
    out = tmp_path / target.replace("/", "_")
    cli.main(["check", model, "--target", target, "--out", str(out), *FAST, "--num-samples", "8", "--no-bench"])
    return json.loads((out / "summary.json").read_text())["targets"][0]["status"]


@pytest.mark.parametrize("model, target, culprit", [
    ("toy_models:make_loses_digits", "cpu/bf16", "cancel"),  # bf16 misses the 1% rule in one module
    ("toy_models:make_overflowing", "cpu/fp16", "amplify"),  # fp16 overflows unless the whole block is fp32
])
def test_rescue_finds_the_culprit_and_the_set_is_minimal(tmp_path, model, target, culprit):
    code, summary = rescue(tmp_path, model, target)
    found = summary["rescue"]
    assert code == 0 and found["outcome"] == "rescued"
    assert culprit in found["modules"]
    assert [t["status"] for t in summary["targets"]] == ["FAIL", "PASS"]
    assert summary["targets"][1]["label"] == found["rescued_target"] == f"{target}+fp32={','.join(found['modules'])}"
    assert found["latency_before_ms"] > 0 and found["latency_after_ms"] > 0 and found["latency_cost"] > 0
    # what the rescue says, checked by plain checks of the specs it names
    assert verdict(tmp_path, model, found["rescued_target"]) == "PASS"
    for dropped in found["modules"]:
        rest = [m for m in found["modules"] if m != dropped]
        spec = f"{target}+fp32={','.join(rest)}" if rest else target
        assert verdict(tmp_path, model, spec) == "FAIL", f"{found['modules']} without {dropped} still passes"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Precision rescue" in report and found["rescued_target"] in report


def test_overflow_is_not_rescued_by_one_layer_of_the_block(tmp_path):
    assert verdict(tmp_path, "toy_models:make_overflowing", "cpu/fp16+fp32=amplify.0") == "FAIL"


def test_a_broken_kernel_is_not_rescued_after_trying_every_module(tmp_path):
    code, summary = rescue(tmp_path, "toy_models:make_broken", "cpu/bf16")
    found = summary["rescue"]
    assert code == 1 and found["outcome"] == "not rescued" and found["modules"] == []
    assert "not one of precision" in found["reason"] and found["candidates"] >= 1


def test_a_target_that_passes_needs_no_rescue(tmp_path):
    code, summary = rescue(tmp_path, "toy_models:make_overflowing", "cpu/bf16")  # bf16 has fp32's range
    assert code == 0 and summary["rescue"]["outcome"] == "already passes" and len(summary["targets"]) == 1


@pytest.mark.parametrize("args, expected", [
    (["--target", "cpu"], "a dtype below fp32"),
    (["--target", "cpu/bf16", "--target", "cpu/fp16"], "a single --target"),
    (["--target", "onnxruntime@cpu/fp16"], "which onnxruntime cannot do"),
])
def test_rescue_bad_input_is_one_line(tmp_path, capsys, args, expected):
    code = cli.main(["rescue", "toy_models:make_loses_digits", "--out", str(tmp_path / "out"), *FAST, *args])
    assert code == 2 and expected in last_error_line(capsys) and not (tmp_path / "out").exists()


# --- +fp32= specs and keep_fp32 -------------------------------------------------------------------------------


def test_fp32_specs_round_trip_and_keep_the_case_of_module_names():
    spec = parse_target("CPU/BF16+fp32=blocks.11.mlp,Head")
    assert spec.keep_fp32 == ("blocks.11.mlp", "Head") and spec.dtype == "bf16"
    assert parse_target(spec.label) == spec
    both = parse_target("compile@cpu/bf16+channels_last+fp32=head")
    assert both.channels_last and both.keep_fp32 == ("head",) and parse_target(both.label) == both


@pytest.mark.parametrize("text, expected", [
    ("cpu+fp32=head", "fp32 already"),
    ("cpu/bf16+fp32=", "names no module"),
    ("onnxruntime@cpu/fp16+fp32=head", "onnxruntime cannot do"),
    ("openvino@cpu+channels_last", "PyTorch memory format"),
    ("cpu+cl", "cannot read target"),
])
def test_bad_fp32_specs_are_refused(text, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_target(text)


def test_unknown_module_names_stop_the_check_before_it_runs(tmp_path, capsys):
    code = cli.main(["check", "toy_models:make_loses_digits", "--target", "cpu/bf16+fp32=cancle", "--out",
                     str(tmp_path / "out"), *FAST])
    assert code == 2 and "did you mean cancel" in last_error_line(capsys)


def test_keep_fp32_runs_the_named_modules_in_fp32_with_casts_around_them():
    model = keep_fp32(toy_models.make_loses_digits(), ["cancel"], torch.bfloat16)
    assert model.stem.weight.dtype == torch.bfloat16 and model.head.weight.dtype == torch.bfloat16
    seen = []
    hook = model.cancel[1].register_forward_hook(lambda module, args, output: seen.append((args[0].dtype, output.dtype)))
    x = torch.randn(4, 16)
    with torch.no_grad():
        out = model(x.bfloat16())["logits"]
        reference = toy_models.make_loses_digits()(x)["logits"]
    hook.remove()
    assert seen == [(torch.float32, torch.float32)] and out.dtype == torch.bfloat16
    assert float((out.float() - reference).norm() / reference.norm()) < 0.01
    pickle.loads(pickle.dumps(model))  # a side's process receives the model by pickle


def test_rescue_ranks_by_a_local_only_layer_pass(tmp_path, monkeypatch):
    """Rescue ranks modules by their local error, so its layer pass runs the local mode only (two forwards, not three)."""
    from portproof.session import Session

    passes = []
    layer_pass = Session.layer_pass
    monkeypatch.setattr(Session, "layer_pass", lambda session, spec, **kwargs: passes.append(
        layer_pass(session, spec, **kwargs)) or passes[-1])
    code, summary = rescue(tmp_path, "toy_models:make_loses_digits", "cpu/bf16")
    assert code == 0 and summary["rescue"]["outcome"] == "rescued" and len(passes) == 1
    rows = passes[0].rows
    assert rows and all(row.local.rel_l2 is not None for row in rows)
    assert {row.accumulated.error for row in rows} == {"not compared: only the local mode ran"}
