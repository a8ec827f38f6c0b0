"""`portproof check` end to end, as a user runs it: exit codes, files, and numbers checked independently."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import save_file

from portproof import cli
from portproof.backends import registry
from portproof.backends.torch_eager import EagerBackend
from portproof.results import RANDOM_WEIGHTS_BANNER

from conftest import SMALL_MODEL
from helpers import last_error_line, run_check

FAST = ["--iters", "2", "--warmup", "1", "--num-samples", "4"]
REPORT_FILES = {"summary.json", "accuracy_compare.log", "report.md"}


def check(tmp_path: Path, *args: str, model: str = SMALL_MODEL) -> tuple[int, dict | None]:
    out = tmp_path / "out"
    code = cli.main(["check", model, "--out", str(out), *FAST, *args])
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    return code, summary


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


@pytest.fixture(scope="module")
def two_target_run(tmp_path_factory):
    """One invocation with onnxruntime@cpu and cpu/bf16, tensors saved."""
    tmp = tmp_path_factory.mktemp("run")
    code = cli.main(["check", SMALL_MODEL, "--out", str(tmp), "--offline", *FAST, "--target", "onnxruntime@cpu",
                     "--target", "cpu/bf16", "--save-tensors"])
    return code, json.loads((tmp / "summary.json").read_text()), tmp


def test_onnxruntime_fp32_agrees_and_bf16_shows_larger_errors(two_target_run):
    code, summary, _ = two_target_run
    ort, bf16 = summary["targets"]
    assert [ort["label"], bf16["label"]] == ["onnxruntime@cpu", "cpu/bf16"]
    assert ort["status"] == "PASS"
    for name in ("logits", "features"):
        ort_c = next(c for c in ort["comparisons"] if c["name"] == name)
        bf16_c = next(c for c in bf16["comparisons"] if c["name"] == name)
        assert ort_c["cosine_similarity"] > 0.99999
        assert bf16_c["rel_l2"] > 20 * ort_c["rel_l2"]  # bf16 keeps 8 mantissa bits, fp32 24
        assert bf16_c["noise_multiple"] > ort_c["noise_multiple"]
    assert code == (0 if bf16["status"] == "PASS" else 1)
    assert ort["latency"]["iters"] == 2 and ort["latency"]["median_ms"] > 0 and ort["speedup"] > 0


def test_summary_has_the_original_reports_flat_fields(two_target_run):
    _, summary, _ = two_target_run
    ort_logits = next(c for c in summary["targets"][0]["comparisons"] if c["name"] == "logits")
    assert summary["status"] == "SUCCESS" and summary["verdict"] == "PASS"
    assert summary["scoring_target"] == "onnxruntime@cpu" and summary["scoring_output"] == "logits"
    assert summary["output_shape"] == [4, 1000]
    assert summary["latency_ms"] == summary["targets"][0]["latency"]["mean_ms"]
    assert summary["pretrained_used"] is False and summary["local_weight_used"] is False and summary["weight_path"] is None
    assert summary["max_abs_diff"] == ort_logits["max_abs_diff"]
    assert summary["cosine_similarity"] == ort_logits["cosine_similarity"]
    assert summary["top1_match"] is True and summary["top5_match"] is True
    assert summary["match_within_1_percent"] is True
    assert f"cosine_similarity={ort_logits['cosine_similarity']:.6f} ≥ 0.99" in summary["match_basis"]
    assert summary["warning"] == RANDOM_WEIGHTS_BANNER
    assert summary["schema_version"] == "1.0"
    assert summary["environment"]["packages"]["torch"] and summary["environment"]["python"]
    assert summary["environment"]["command_line"].startswith("portproof check test_vit")
    assert summary["settings"]["timing"]["iters"] == 2 and summary["settings"]["criteria"]["min_cosine"] == 0.99


def test_reports_carry_the_random_weights_banner_on_top(two_target_run):
    _, _, out = two_target_run
    assert files_in(out) >= REPORT_FILES | {"tensors"}
    assert (out / "report.md").read_text().startswith(f"> **{RANDOM_WEIGHTS_BANNER}**")
    assert (out / "accuracy_compare.log").read_text().startswith(f"!!! {RANDOM_WEIGHTS_BANNER} !!!")
    report = (out / "report.md").read_text()
    for section in ("## Model", "## Hardware", "## Software", "## Install and run", "## Weight loading", "## Run result",
                    "## Comparison", "## Scoring fields", "## Conclusion"):
        assert section in report


def test_every_metric_recomputed_from_saved_tensors_with_numpy_agrees(two_target_run):
    _, summary, out = two_target_run
    reference = load_numpy(str(out / "tensors" / "reference.safetensors"))
    inputs = load_numpy(str(out / "tensors" / "inputs.safetensors"))["x"]
    assert inputs.shape == (4, 3, 160, 160)
    for position, target in enumerate(summary["targets"]):
        outputs = load_numpy(str(out / "tensors" / f"target-{position}.safetensors"))
        for comparison in target["comparisons"]:
            r = reference[comparison["name"]].astype(np.float64)
            t = outputs[comparison["name"]].astype(np.float64)
            diff = np.abs(t - r)
            relative = diff / np.maximum(np.abs(r), 1e-12)
            expected = {
                "max_abs_diff": diff.max(),
                "mean_abs_diff": diff.mean(),
                "max_rel_diff": relative.max(),
                "rel_l2": np.linalg.norm(t - r) / np.linalg.norm(r),
                "cosine_similarity": float(np.dot(r.ravel(), t.ravel()) / (np.linalg.norm(r) * np.linalg.norm(t))),
                "min_sample_cosine": min(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(r, t)),
            }
            for key, value in expected.items():
                assert comparison[key] == pytest.approx(value, rel=1e-9, abs=1e-15), (target["label"], key)
            assert comparison["within_tolerance"]["1%"] == pytest.approx((relative <= 0.01).mean())
            if comparison["name"] == "logits":
                top1_agreement = (r.argmax(1) == t.argmax(1)).mean()
                top5_equal = [set(np.argsort(-a)[:5]) == set(np.argsort(-b)[:5]) for a, b in zip(r, t)]
                assert comparison["topk"]["top1_agreement"] == pytest.approx(top1_agreement)
                assert comparison["topk"]["topk_agreement"] == pytest.approx(np.mean(top5_equal))


def test_checkpoint_in_the_ascend_machines_modelscope_layout_is_used_and_recorded(tmp_path):
    """The layout of the machine that produced the original vit_tiny report, with the default model."""
    import timm

    torch.manual_seed(99)
    state = timm.create_model("vit_tiny_patch16_224").state_dict()
    path = tmp_path / "model_weights_cache" / "timm" / "vit_tiny_patch16_224___augreg_in21k_ft_in1k" / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file(state, str(path))
    out = tmp_path / "out"
    code = cli.main(["check", "--weights-cache", str(tmp_path / "model_weights_cache"), "--require-pretrained",
                     "--target", "cpu", "--no-bench", "--num-samples", "2", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and summary["verdict"] == "PASS"
    assert summary["pretrained_used"] is True and summary["local_weight_used"] is True
    assert summary["weight_path"] == str(path.resolve())
    assert summary["weights"]["sha256"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert summary["weights"]["source_kind"] == "modelscope-cache" and summary["warning"] is None
    assert "RANDOM WEIGHTS" not in (out / "report.md").read_text()
    assert summary["latency_ms"] is None and summary["targets"][0]["latency"] is None


class PerturbedBackend(EagerBackend):
    """A wrong port: one weight of the target's copy is scaled."""

    def prepare(self, model, example):
        super().prepare(model, example)
        with torch.no_grad():
            self.model.model.blocks[0].mlp.fc2.weight.mul_(3.0)


class CrashingBackend(EagerBackend):
    """A flaky device: the third forward raises."""

    calls = 0

    def run(self, batch):
        CrashingBackend.calls += 1
        if CrashingBackend.calls == 3:
            raise RuntimeError("device lost\nsecond line of a driver dump")
        return super().run(batch)


def substitute_backend(monkeypatch, label: str, backend_class) -> None:
    """The swap lives in this process: the checks that use it run --in-process."""
    original = registry.create
    monkeypatch.setattr(registry, "create", lambda spec: backend_class(spec) if spec.label == label else original(spec))


def test_a_perturbed_target_fails_with_exit_1(tmp_path, monkeypatch):
    substitute_backend(monkeypatch, "cpu/fp16", PerturbedBackend)
    code, summary = check(tmp_path, "--offline", "--in-process", "--target", "cpu", "--target", "cpu/fp16")
    good, bad = summary["targets"]
    assert code == 1 and good["status"] == "PASS" and bad["status"] == "FAIL"
    assert summary["all_passed"] is False
    assert any("cosine_similarity" in f or "rel_l2" in f for f in bad["verdict"]["failures"])


def test_a_target_that_raises_is_an_error_and_the_others_still_run(tmp_path, monkeypatch):
    CrashingBackend.calls = 0
    substitute_backend(monkeypatch, "cpu/fp16", CrashingBackend)
    code, summary = check(tmp_path, "--offline", "--in-process", "--target", "cpu/fp16", "--target", "cpu")
    crashed, fine = summary["targets"]
    assert code == 1
    assert crashed["status"] == "ERROR" and crashed["error"] == "RuntimeError: device lost"
    assert fine["status"] == "PASS" and summary["status"] == "ERROR" and summary["match_within_1_percent"] is False
    assert "device lost" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--target", "gpu"], "unknown device 'gpu'"),
    (["--target", "cpu/int4"], "unknown dtype 'int4'"),
    (["--iters", "-1"], "--iters must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--min-cosine", "1.5"], "--min-cosine must be between 0 and 1"),
    (["--weights", "/nonexistent/model.safetensors"], "does not exist"),
    (["--offline", "--require-pretrained"], "no pretrained weights found"),
    (["--inputs", "/nonexistent-folder"], "not a directory"),
    (["--target", "onnxruntime@cpu/bf16"], "onnxruntime takes fp32, fp16, not bf16"),
])
def test_bad_input_is_a_one_line_error_with_exit_2_and_no_files(tmp_path, capsys, args, message):
    code, summary = check(tmp_path, *args)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and summary is None and message in error and error.startswith("portproof: error:")
    assert not any(p.suffix in (".json", ".log", ".md") for p in (tmp_path / "out").glob("*"))


def test_unknown_model_exits_2_with_suggestions(tmp_path, capsys):
    code, _ = check(tmp_path, model="vit_tiny_patch16")
    assert code == 2 and "did you mean" in capsys.readouterr().err


def test_absent_device_names_what_is_missing(tmp_path, capsys):
    if registry.present_accelerators():
        pytest.skip("this machine has an accelerator")
    code, _ = check(tmp_path, "--target", "npu")
    assert code == 2 and "torch_npu not installed" in capsys.readouterr().err


def test_unwritable_output_directory_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = cli.main(["check", SMALL_MODEL, "--out", str(blocker / "out")])
    assert code == 2 and "cannot write to output directory" in capsys.readouterr().err


def test_argparse_errors_exit_2_in_one_line(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["check", "--num-samples", "many"])
    assert caught.value.code == 2 and capsys.readouterr().err.startswith("portproof: error:")


def test_target_auto_without_accelerators_says_what_it_chose(tmp_path):
    if registry.present_accelerators():
        pytest.skip("this machine has an accelerator")
    code, summary = check(tmp_path, "--offline", "--no-bench", "--no-fp64-reference")
    assert [t["label"] for t in summary["targets"]] == ["onnxruntime@cpu", "cpu/bf16"]
    assert any("no accelerator" in note for note in summary["notes"])
    assert summary["reference"]["rel_l2_vs_fp64"] is None


def test_module_entry_point_and_env_command():
    result = subprocess.run([sys.executable, "-m", "portproof", "env"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "eager@cpu: available" in result.stdout and "onnxruntime@cpu: available" in result.stdout
    assert "compile@cpu: available" in result.stdout
    assert "model families: python, timm, transformers" in result.stdout


def test_layers_command_writes_the_module_table_and_its_summary(tmp_path):
    out = tmp_path / "out"
    code = cli.main(["layers", SMALL_MODEL, "--offline", "--target", "cpu/bf16", "--num-samples", "2", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    target = summary["targets"][0]
    assert code in (0, 1) and target["latency"] is None  # `layers` does not time
    layers = target["layers"]
    assert layers["first_divergent"] is None and layers["first_divergent_accumulated"] is None
    assert len(layers["worst_local"]) == 10 and layers["samples"] == 2
    rows = (out / "layers.csv").read_text().splitlines()
    document = json.loads((out / "layers.json").read_text())
    assert len(rows) - 1 == layers["modules_compared"] == len(document["targets"][0]["rows"]) > 100
    worst = document["targets"][0]["rows"]
    by_label = {r["module"] + r["element"]: r for r in worst}
    assert by_label[layers["worst_local"][0]["module"]]["local"]["rel_l2"] == layers["worst_local"][0]["rel_l2"]
    assert "## Layer-by-layer comparison" in (out / "report.md").read_text()
    assert "first divergent module (local):       none" in (out / "accuracy_compare.log").read_text()


def test_layers_command_takes_one_target(tmp_path, capsys):
    code = cli.main(["layers", SMALL_MODEL, "--target", "cpu", "--target", "cpu/bf16", "--out", str(tmp_path)])
    assert code == 2 and "one target at a time" in capsys.readouterr().err


def test_batch_larger_than_the_samples_is_refused(tmp_path, capsys):
    code = cli.main(["check", SMALL_MODEL, "--num-samples", "2", "--batch-size", "4", "--out", str(tmp_path)])
    assert code == 2 and "--batch-size 4 is larger than the 2 samples" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_with_a_way_to_the_traceback(tmp_path, capsys, monkeypatch):
    def broken(config, progress=None):
        raise ValueError("something no one foresaw\nsecond line")

    monkeypatch.setattr("portproof.session.run_check", broken)
    code = cli.main(["check", SMALL_MODEL, "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1
    assert error[0].startswith("portproof: internal error: ValueError: something no one foresaw (at test_cli.py:")
    assert "PORTPROOF_DEBUG=1" in error[0]
    monkeypatch.setenv("PORTPROOF_DEBUG", "1")
    with pytest.raises(ValueError):
        cli.main(["check", SMALL_MODEL, "--out", str(tmp_path / "out")])


def test_check_layers_without_bench_still_compares_every_auto_target(tmp_path):
    if registry.present_accelerators():
        pytest.skip("this machine has an accelerator")
    code, summary = check(tmp_path, "--offline", "--layers", "--no-bench", "--target", "auto", "--target", "auto",
                          "--num-samples", "2")
    assert [t["label"] for t in summary["targets"]] == ["onnxruntime@cpu", "cpu/bf16"]
    assert all(t["layers"]["modules_compared"] > 50 for t in summary["targets"])


def test_a_reference_the_layer_pass_cannot_use_is_a_note_not_a_crash(tmp_path):
    code, summary = check(tmp_path, "--offline", "--layers", "--no-bench", "--reference", "onnxruntime@cpu",
                          "--target", "cpu")
    layers = summary["targets"][0]["layers"]
    assert code == 0 and layers["modules_compared"] == 0
    assert "needs an eager reference" in layers["notes"][0]


def test_saved_tensors_of_a_half_precision_reference_are_float32(tmp_path):
    code, _ = check(tmp_path, "--offline", "--no-bench", "--reference", "cpu/bf16", "--target", "cpu", "--save-tensors")
    reference = load_numpy(str(tmp_path / "out" / "tensors" / "reference.safetensors"))
    assert reference["logits"].dtype == np.float32


def test_random_weights_with_require_pretrained_is_a_contradiction(tmp_path, capsys):
    code, _ = check(tmp_path, "--weights", "random", "--require-pretrained")
    assert code == 2 and "contradict" in capsys.readouterr().err


def test_report_language_is_a_setting_and_the_report_command_keeps_it(tmp_path):
    code, summary = check(tmp_path, "--offline", "--no-bench", "--target", "cpu", "--lang", "zh")
    assert summary["settings"]["output"]["lang"] == "zh"
    out = tmp_path / "out"
    (out / "report.md").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert "适配结论" in (out / "report.md").read_text()
    assert cli.main(["report", str(out), "--lang", "en"]) == 0
    assert "## Conclusion" in (out / "report.md").read_text()


# --- unknown option values, negative iterations, batch size 0, threshold outside [0, 1] ----------------


@pytest.mark.parametrize("args, message", [
    (["--iters", "0"], "--iters must be at least 1, got 0"),
    (["--iters", "-5"], "--iters must be at least 1, got -5"),
    (["--warmup", "-1"], "--warmup must be at least 0, got -1"),
    (["--num-samples", "0"], "--num-samples must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--batch-size", "-2"], "--batch-size must be at least 1, got -2"),
    (["--min-cosine", "-0.1"], "--min-cosine must be between 0 and 1, got -0.1"),
    (["--min-cosine", "nan"], "--min-cosine must be between 0 and 1, got nan"),
    (["--max-rel-l2", "2"], "--max-rel-l2 must be between 0 and 1, got 2.0"),
    (["--target-timeout", "0"], "--target-timeout must be a number of seconds above 0, got 0.0"),
    (["--target-timeout", "-3"], "--target-timeout must be a number of seconds above 0, got -3.0"),
    (["--target-timeout", "inf"], "--target-timeout must be a number of seconds above 0, got inf"),
    (["--target", "cpu/int4"], "unknown dtype 'int4' in target 'cpu/int4'; choose one of: fp32, fp16, bf16"),
    (["--target", "tpu"], "unknown device 'tpu' in target 'tpu'; choose one of: cpu, cuda, npu, xpu, mps"),
    (["--reference", "trt@cpu"], "unknown backend 'trt' in target 'trt@cpu'; choose one of: eager, compile, onnxruntime"),
])
def test_bad_option_values_name_the_option_and_the_allowed_range(tmp_path, capsys, args, message):
    code, summary = run_check(tmp_path / "out", *args)
    error = last_error_line(capsys)
    assert code == 2 and summary is None and error.startswith("portproof: error:") and message in error
    assert not (tmp_path / "out").exists()  # refused before anything was created


@pytest.mark.parametrize("args, message", [
    (["--lang", "fr"], "argument --lang: invalid choice: 'fr'"),
    (["--num-samples", "many"], "argument --num-samples: invalid int value: 'many'"),
    (["--target-timeout", "soon"], "argument --target-timeout: invalid float value: 'soon'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_unparseable_option_values_exit_2_naming_the_option(capsys, args, message):
    with pytest.raises(SystemExit) as caught:
        cli.main(["check", SMALL_MODEL, *args])
    error = capsys.readouterr().err.strip()
    assert caught.value.code == 2 and error.startswith("portproof: error:") and message in error


# --- argument bounds, names that could drive the terminal, --json on errors, Ctrl-C during start-up -------


@pytest.mark.parametrize("args, message", [
    (["--target-timeout", "1e300"], "--target-timeout must be at most {timeout_max} seconds (the longest wait this "
                                    "platform accepts), got 1e+300"),
    (["--num-samples", "100001"], "--num-samples must be at most 100,000, got 100,001: every sample and every "
                                  "side's outputs for it are held in memory at once"),
    (["--seed", "-1"], "--seed must be between 0 and 2**64 - 1 (what torch's generator takes), got -1"),
    (["--seed", str(2**64)], f"--seed must be between 0 and 2**64 - 1 (what torch's generator takes), got {2**64}"),
    (["--out", ""], "--out is empty; give a directory, or leave it out for logs"),
    (["--weights", ""], "--weights is empty; give auto, random or the path of a checkpoint"),
    (["--inputs", " "], "--inputs is empty; give images, random, a folder of images or pkg.module:make_inputs"),
    (["--weights-cache", ""], "--weights-cache is empty; give a cache directory"),
    (["--inputs", "imag\x1b[2Jes"], "--inputs 'imag\\x1b[2Jes' holds a control character, which no model or file "
                                    "name needs; check the quoting"),
    (["--target", "cpu:99"], "cpu:99 does not exist: the CPU is a single device, cpu:0; give cpu"),
    (["--target", "onnxruntime@cpu:1"], "cpu:1 does not exist: the CPU is a single device, cpu:0; give cpu"),
    (["--reference", "cpu:1"], "cpu:1 does not exist: the CPU is a single device, cpu:0; give cpu"),
])
def test_out_of_bounds_values_are_refused_before_any_work(tmp_path, capsys, args, message):
    import threading

    code, summary = run_check(tmp_path / "out", *args)
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and summary is None and len(error) == 1
    assert error[0] == f"portproof: error: {message.format(timeout_max=f'{threading.TIMEOUT_MAX:.0f}')}"
    assert not (tmp_path / "out").exists()  # refused before anything was created


def test_the_widest_seed_torch_takes_is_accepted():
    args = cli.build_parser().parse_args(["check", "--seed", str(2**64 - 1), "--weights", "random"])
    config = cli.config_from_args(args, [])
    assert config.inputs.seed == config.weights.seed == 2**64 - 1
    assert torch.Generator().manual_seed(config.inputs.seed).initial_seed() == 2**64 - 1


def test_an_escape_sequence_in_a_model_name_is_refused_and_shown_inert(tmp_path, capsys):
    code, _ = run_check(tmp_path / "out", model="\x1b[31mred\x1b]0;owned\x07")
    captured = capsys.readouterr()
    assert code == 2 and "\x1b" not in captured.err + captured.out and "\x07" not in captured.err
    assert captured.err.strip() == ("portproof: error: the model name '\\x1b[31mred\\x1b]0;owned\\x07' holds a control "
                                    "character, which no model or file name needs; check the quoting")
    assert not (tmp_path / "out").exists()


def test_an_escape_sequence_in_an_image_file_name_is_shown_inert(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "notes\x1b[2J.txt").write_text("not an image")
    code, _ = run_check(tmp_path / "out", "--inputs", str(folder), "--target", "cpu")
    err = capsys.readouterr().err
    assert code == 2 and "\x1b" not in err
    assert err.strip().splitlines()[-1].endswith("(notes\\x1b[2J.txt: not an image PIL can read); give a folder of images")


def test_inert_writes_every_control_character_as_a_visible_escape():
    from portproof.terminal import inert

    assert inert("a\x1b[31mb\nc\td\x7f\x9b\u202eé中") == "a\\x1b[31mb\\x0ac\\x09d\\x7f\\x9b\\u202eé中"


def test_json_errors_are_json_on_stdout_with_the_one_line_on_stderr(tmp_path, capsys, monkeypatch):
    assert run_check(tmp_path / "out", "--seed", "-1", "--json")[0] == 2
    captured = capsys.readouterr()
    error = "--seed must be between 0 and 2**64 - 1 (what torch's generator takes), got -1"
    assert json.loads(captured.out) == {"status": "ERROR", "exit_code": 2, "error": error}
    assert captured.err == f"portproof: error: {error}\n"

    with pytest.raises(SystemExit) as caught:  # argparse's usage errors too, when --json is among the options
        cli.main(["check", "--jso", "--no-such-option"])
    assert caught.value.code == 2
    assert json.loads(capsys.readouterr().out) == {
        "status": "ERROR", "exit_code": 2, "error": "unrecognized arguments: --no-such-option (see portproof --help)"}

    monkeypatch.setattr("portproof.session.run_check", lambda config, progress=None: 1 / 0)
    assert run_check(tmp_path / "out", "--json", "--target", "cpu")[0] == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "ERROR" and answer["error"].startswith("internal error: ZeroDivisionError")


def test_errors_without_json_leave_stdout_empty(tmp_path, capsys):
    assert run_check(tmp_path / "out", "--seed", "-1")[0] == 2
    assert capsys.readouterr().out == ""


def test_ctrl_c_while_torch_imports_exits_130_in_one_line(tmp_path):
    """A real process and a real SIGINT, sent to its process group as a terminal's Ctrl-C is, while
    `import torch` runs (libtorch is mapped, the import is not done): exit 130, one line, no traceback, no
    files, the JSON error object on stdout, and no process left behind."""
    import os
    import signal
    import time

    out, stdout, stderr = tmp_path / "out", tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "w") as out_file, open(stderr, "w") as err_file:
        process = subprocess.Popen([sys.executable, "-m", "portproof", "check", SMALL_MODEL, "--out", str(out),
                                    "--offline", "--json"], stdout=out_file, stderr=err_file, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "libtorch" not in Path(f"/proc/{process.pid}/maps").read_text():
            assert process.poll() is None and time.monotonic() < deadline, "torch was never imported"
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
    error = stderr.read_text()
    assert error == ("portproof: interrupted; no report was written; files already in the output directory were "
                     "left as they were\n")
    assert json.loads(stdout.read_text())["status"] == "INTERRUPTED" and not out.exists()
    assert not processes_in_session(process.pid)


def processes_in_session(session: int) -> list[int]:
    import os

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    found.append(int(entry.name))
            except OSError:  # ended meanwhile
                pass
    return found
