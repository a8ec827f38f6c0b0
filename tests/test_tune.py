"""portproof tune on small models: every "fastest passing" configuration passed and no passing one at its
batch size is faster; failing and skipped configurations carry their reason; --budget skips for time and
refuses a budget the baseline alone exceeds; --rescue adds a rescued variant that can win."""

from __future__ import annotations

import json
import time

from portproof import cli

from conftest import SMALL_MODEL
from helpers import last_error_line

QUICK = ["--offline", "--iters", "3", "--warmup", "1", "--num-samples", "4"]


def tune(tmp_path, model: str, *args: str) -> tuple[int, dict | None]:
    out = tmp_path / "out"
    code = cli.main(["tune", model, "--out", str(out), *QUICK, *args])
    path = out / "tune.json"
    return code, json.loads(path.read_text()) if path.exists() else None


def test_fastest_passing_configuration_passed_and_nothing_passing_is_faster(tmp_path):
    code, result = tune(tmp_path, SMALL_MODEL, "--backends", "eager,onnxruntime", "--dtypes", "fp32,bf16,fp16",
                        "--batch-sizes", "1,2", "--thread-counts", "1")
    assert code == 0 and result["batch_sizes"] == [1, 2]
    rows = result["rows"]
    for batch, winner in result["fastest_passing"].items():
        assert winner["status"] == "PASS" and winner["batch_size"] == int(batch)
        assert all(r["median_ms"] >= winner["median_ms"] for r in rows
                   if r["status"] == "PASS" and r["batch_size"] == int(batch))
        assert result["reproduce"][batch].startswith(f"portproof check {SMALL_MODEL} --target {winner['target']}")
    assert {r["target"] for r in rows} >= {"cpu", "cpu/bf16", "onnxruntime@cpu", "onnxruntime@cpu/fp16"}
    assert all(r["reason"] for r in rows if r["status"] in ("SKIPPED", "FAIL", "ERROR"))
    assert any(r["threads"] == 1 for r in rows)  # the thread-count stage ran
    baseline = next(r for r in rows if r["target"] == "cpu" and r["batch_size"] == 1)
    assert baseline["speedup"] == 1.0 and baseline["throughput"] == 1000.0 / baseline["median_ms"]
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"tune.json", "tune.csv", "report.md", "report.html"}
    assert (tmp_path / "out" / "tune.csv").read_text().count("\n") == len(rows) + 1
    assert "data:image/png;base64," in (tmp_path / "out" / "report.html").read_text()  # the Pareto figure


def test_a_failing_configuration_is_never_the_fastest_and_rescue_can_win(tmp_path):
    code, result = tune(tmp_path, "toy_models:make_loses_digits", "--backends", "eager", "--dtypes", "fp32,bf16",
                        "--thread-counts", "1", "--rescue")
    rows = result["rows"]
    failing = next(r for r in rows if r["target"] == "cpu/bf16")
    assert failing["status"] == "FAIL" and "rel_l2" in failing["reason"]
    rescued = next(r for r in rows if r["rescued_from"] == "cpu/bf16")
    assert rescued["status"] == "PASS" and rescued["target"].startswith("cpu/bf16+fp32=") and "cancel" in rescued["target"]
    assert code == 0 and result["fastest_passing"]["1"]["status"] == "PASS"


def test_unavailable_and_emulated_configurations_are_skipped_with_the_reason(tmp_path):
    code, result = tune(tmp_path, SMALL_MODEL, "--backends", "eager", "--dtypes", "fp32,tf32", "--thread-counts", "1")
    tf32 = next(r for r in result["rows"] if r["target"] == "cpu/tf32")
    assert tf32["status"] == "SKIPPED" and "CUDA" in tf32["reason"] and tf32["median_ms"] is None


def test_budget_skips_what_is_expected_not_to_finish():
    from portproof.config import TargetSpec
    from portproof.tune import COST_FACTOR, _Budget

    budget = _Budget(10.0, time.perf_counter() - 8.0)  # 2 s of 10 left
    budget.record(TargetSpec(), 1.5)  # the baseline took 1.5 s
    assert budget.expected(TargetSpec(backend="compile")) == 1.5 * COST_FACTOR["compile"] > budget.left()
    assert budget.expected(TargetSpec(dtype="bf16")) == 1.5 < budget.left()  # eager: as long as the baseline
    assert _Budget(None, time.perf_counter()).left() == float("inf")


def test_budget_too_small_for_the_baseline_is_a_one_line_error(tmp_path, capsys):
    code, result = tune(tmp_path, SMALL_MODEL, "--backends", "eager", "--budget", "0.01")
    assert code == 2 and result is None and "--budget 0.01 s is too small" in last_error_line(capsys)
    assert not (tmp_path / "out" / "tune.json").exists()


def test_bad_tune_options_are_one_line_errors(tmp_path, capsys):
    for args, expected in ((["--target", "cpu"], "tune chooses the targets itself"),
                           (["--backends", "nosuch"], "--backends: unknown nosuch"),
                           (["--batch-sizes", "0"], "positive integers"),
                           (["--device", "tpu"], "--device 'tpu'")):
        code, result = tune(tmp_path, SMALL_MODEL, *args)
        assert code == 2 and result is None and expected in last_error_line(capsys), args


def test_a_folder_holds_one_runs_files_whether_check_or_tune_wrote_it(tmp_path):
    out = tmp_path / "out"
    assert cli.main(["check", SMALL_MODEL, "--target", "cpu/fp16", "--out", str(out), *QUICK, "--no-bench"]) in (0, 1)
    assert (out / "summary.json").exists()
    tune(tmp_path, SMALL_MODEL, "--backends", "eager", "--dtypes", "fp32", "--thread-counts", "1")
    assert {p.name for p in out.iterdir()} == {"tune.json", "tune.csv", "report.md", "report.html"}
    assert cli.main(["check", SMALL_MODEL, "--target", "cpu/fp16", "--out", str(out), *QUICK, "--no-bench"]) in (0, 1)
    assert not (out / "tune.json").exists() and not (out / "tune.csv").exists()


def test_a_convolutional_model_gets_channels_last_variants_that_reproduce_as_checks(tmp_path):
    code, result = tune(tmp_path, "test_resnet", "--backends", "eager", "--dtypes", "fp32", "--thread-counts", "1")
    variant = next(r for r in result["rows"] if r["target"] == "cpu+channels_last")
    assert variant["status"] == "PASS" and variant["rel_l2"] < 1e-5
    out = tmp_path / "check"
    assert cli.main(["check", "test_resnet", "--target", "cpu+channels_last", "--out", str(out), *QUICK]) == 0
    target = json.loads((out / "summary.json").read_text())["targets"][0]
    assert target["label"] == "cpu+channels_last" and target["description"]["channels_last"] is True


def test_the_fastest_passing_compile_configuration_is_tried_in_the_devices_compile_modes(tmp_path, monkeypatch):
    from portproof import tune as tune_module

    # CUDA's modes (CUDA graphs, autotuning) have no GPU here: the same stage runs with a mode the CPU takes
    monkeypatch.setitem(tune_module.COMPILE_MODES, "cpu", ("reduce-overhead",))
    code, result = tune(tmp_path, "toy_models:make_model", "--inputs", "toy_models:make_inputs", "--backends",
                        "eager,compile", "--dtypes", "fp32",
                        "--thread-counts", "1")
    targets = [r["target"] for r in result["rows"]]
    assert targets[:3] == ["cpu", "compile@cpu", "compile@cpu+mode=reduce-overhead"]
    moded = result["rows"][2]
    assert code == 0 and moded["status"] == "PASS" and moded["median_ms"] > 0


def test_a_compile_mode_is_budgeted_by_its_own_runs_and_never_inflates_the_default_modes_estimate():
    from portproof.config import parse_target
    from portproof.tune import _Budget

    budget = _Budget(100.0, time.perf_counter())
    default, autotune = parse_target("compile@cuda/bf16"), parse_target("compile@cuda/bf16+mode=max-autotune")
    budget.record(parse_target("cuda"), 2.0)
    assert budget.expected(default) == 12.0  # the baseline's time x a compiler's factor, before any compile ran
    assert budget.expected(autotune) == 72.0  # and x max-autotune's factor on top
    budget.record(default, 10.0)
    assert budget.expected(autotune) == 60.0
    budget.record(autotune, 70.0)
    assert budget.expected(autotune) == 70.0 and budget.expected(parse_target("compile@cuda")) == 10.0
