"""The session and models of the caller's own: a two-input model (float + integer ids) through every
kind of target and the layer pass, a `module:factory` from the CLI, an nn.Module from Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import toy_models
from portproof import CheckConfig, ModelSpec, Session, TimingSpec, WeightsSpec, parse_target, run_check
from portproof.config import InputSpec
from portproof.errors import ConfigError, InputError, ModelNotFoundError

from conftest import SMALL_MODEL

TESTS = Path(__file__).parent
QUICK = TimingSpec(enabled=False)


def portproof_in_tests_folder(*args: str) -> subprocess.CompletedProcess:
    """The CLI run from this folder, so that `toy_models:...` is importable as it is for a user in theirs."""
    return subprocess.run([sys.executable, "-m", "portproof", *args], cwd=TESTS, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def two_input_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("two-input")
    run = portproof_in_tests_folder(
        "check", "toy_models:make_model", "--inputs", "toy_models:make_inputs", "--num-samples", "6",
        "--batch-size", "2", "--target", "cpu/fp16", "--target", "cpu/bf16", "--target", "onnxruntime@cpu",
        "--layers", "--iters", "2", "--warmup", "1", "--out", str(out), "--json")
    return run, json.loads(run.stdout) if run.stdout else None


def test_two_input_model_runs_on_every_kind_of_target_with_ids_kept_integer(two_input_run):
    run, summary = two_input_run
    assert run.returncode == 0, run.stderr
    assert [t["label"] for t in summary["targets"]] == ["cpu/fp16", "cpu/bf16", "onnxruntime@cpu"]
    # the model raises when its ids arrive as anything but int64: an ERROR here would mean they were cast
    assert [t["status"] for t in summary["targets"]] == ["PASS", "PASS", "PASS"]
    assert summary["inputs"]["dtypes"] == {"features": "float32", "token_ids": "int64"}
    assert summary["inputs"]["shapes"] == {"features": [6, 8], "token_ids": [6, 4]}
    assert summary["model"]["output_names"] == ["logits", "hidden"]
    assert summary["model"]["classifier_output"] == "logits"
    onnx = summary["targets"][2]["comparisons"][0]
    assert onnx["name"] == "logits" and onnx["rel_l2"] < 1e-6
    # lower precision shows as a larger error than ONNX Runtime's fp32
    assert summary["targets"][1]["comparisons"][0]["rel_l2"] > 100 * onnx["rel_l2"]


def test_two_input_model_goes_through_the_layer_pass_in_both_modes(two_input_run):
    run, summary = two_input_run
    for target in summary["targets"]:
        assert target["layers"]["modules_compared"] >= 7, target["label"]  # embedding, projection, block, head...
    bf16 = summary["targets"][1]["layers"]
    assert {item["module"] for item in bf16["worst_local"]} >= {"embedding", "projection"}


def test_a_factory_model_records_where_it_came_from(two_input_run):
    run, summary = two_input_run
    assert summary["model"]["family"] == "python" and summary["model"]["requested"] == "toy_models:make_model"
    weights = summary["weights"]
    assert weights["source_kind"] == "as-given" and weights["factory"] == "toy_models:make_model"
    assert weights["pretrained_used"] is False and summary["warning"] is None  # not random: as the factory made them
    assert any("as toy_models:make_model made them" in note for note in summary["notes"])


def test_a_module_from_python_is_checked_with_its_own_inputs():
    model = toy_models.make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = CheckConfig(targets=(parse_target("cpu/bf16"),), timing=QUICK)
    result = run_check(config, module=model, inputs=toy_models.make_inputs(4, 0))
    assert result.targets[0].status == "PASS"
    assert result.model.family == "python" and result.weights.factory == "the caller's toy_models.TwoInputModel"
    assert result.inputs.kind == "given" and result.inputs.num_samples == 4
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's module is untouched


def test_a_module_that_declares_its_input_shape_gets_seeded_random_inputs():
    config = CheckConfig(model=ModelSpec("toy_models:make_declared"), targets=(parse_target("cpu/fp16"),), timing=QUICK,
                         inputs=InputSpec(num_samples=3, seed=7))
    result = run_check(config)
    assert result.inputs.kind == "random" and result.inputs.shapes == {"signal": (3, 6)}
    assert result.model.output_names == ("output",) and result.model.classifier_output is None
    assert result.targets[0].status == "PASS"


def test_a_module_without_declared_inputs_asks_for_them():
    with pytest.raises(InputError, match="make_inputs"):
        Session(CheckConfig(model=ModelSpec("toy_models:make_model"), targets=(), timing=QUICK))


@pytest.mark.parametrize("name, message", [
    ("no_such_module:make", "cannot import 'no_such_module'"),
    ("toy_models:no_such_factory", "has no attribute 'no_such_factory'"),
    ("toy_models:FEATURES", "gave a int, not a torch.nn.Module"),
])
def test_a_factory_that_cannot_give_a_module_is_a_clear_error(name, message):
    with pytest.raises(ModelNotFoundError, match=message):
        Session(CheckConfig(model=ModelSpec(name), targets=(), timing=QUICK))


def test_one_session_evaluates_targets_against_one_reference_run():
    config = CheckConfig(model=ModelSpec(SMALL_MODEL), weights=WeightsSpec(source="random"), targets=(), timing=QUICK,
                         inputs=InputSpec(num_samples=2))
    session = Session(config)
    reference = session.reference_outputs["logits"].clone()
    first = session.evaluate(parse_target("cpu/bf16"))
    second = session.evaluate(parse_target("onnxruntime@cpu"))
    assert torch.equal(session.reference_outputs["logits"], reference)  # the reference ran once, and stays
    assert (first.status, second.status) == ("PASS", "PASS")
    result = session.result()
    assert [t.label for t in result.targets] == ["cpu/bf16", "onnxruntime@cpu"] and result.config.targets == ()


def test_the_session_leaves_torchs_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Session(CheckConfig(model=ModelSpec(SMALL_MODEL), weights=WeightsSpec(source="random"), targets=(), timing=QUICK,
                        fp64_reference=False, inputs=InputSpec(source="random", num_samples=1)))
    assert torch.equal(torch.rand(3), expected)


def test_a_batch_larger_than_the_given_samples_is_refused():
    config = CheckConfig(targets=(), timing=QUICK, inputs=InputSpec(batch_size=8))
    with pytest.raises(ConfigError, match="batch size 8 is larger than the 4 samples"):
        Session(config, module=toy_models.make_model(), inputs=toy_models.make_inputs(4, 0))


class AllNaN(torch.nn.Module):
    input_shape = (3,)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return torch.full_like(signal, float("nan"))


def test_a_reference_with_no_finite_output_stops_the_check_instead_of_failing_every_target():
    from portproof.errors import ReferenceRunError

    config = CheckConfig(targets=(parse_target("cpu/bf16"),), timing=QUICK, isolation="none")
    with pytest.raises(ReferenceRunError, match="produced no finite output"):
        run_check(config, module=AllNaN())


def test_reports_say_a_factory_models_weights_are_its_own_not_random(two_input_run, tmp_path):
    from portproof.report import markdown
    from portproof.report.load import from_summary

    run, summary = two_input_run
    text = markdown.render(from_summary(summary))
    assert "as toy_models:make_model made them (portproof loaded no checkpoint)" in text
    assert "random initialisation" not in text and "RANDOM WEIGHTS" not in text


def test_a_bare_tensor_is_the_forwards_first_argument():
    model = toy_models.make_declared()
    config = CheckConfig(targets=(parse_target("cpu/bf16"),), timing=QUICK, isolation="none")
    result = run_check(config, module=model, inputs=torch.randn(3, 6))
    assert result.inputs.shapes == {"signal": (3, 6)} and result.targets[0].status == "PASS"
