"""`portproof sweep` end to end with real models and real processes: the run folders, the matrix files, a
rerun that keeps what is done, a baseline's changes, `portproof diff`, and bad input refused before any work."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from portproof import cli
from portproof.report.matrix import load_matrix

from conftest import SMALL_MODEL
from helpers import SWEEP_FAST, last_error_line


def matrix(folder) -> dict:
    return json.loads((folder / "matrix.json").read_text())


def verdicts(folder) -> dict[tuple[str, str], str]:
    return {(row["model"], cell["target"]): cell["verdict"] for row in matrix(folder)["rows"] for cell in row["cells"]}


def sweep(out, models: str, *args: str) -> int:
    return cli.main(["sweep", "--models", models, "--out", str(out), *SWEEP_FAST, *args])


def test_each_model_is_a_check_with_its_files_and_the_matrix_holds_its_verdicts(finished_sweep):
    out, code = finished_sweep
    assert code == 1  # some cells are not PASS (the unknown model's)
    found = matrix(out)
    assert found["targets"] == ["onnxruntime@cpu", "cpu/bf16"]
    assert [row["model"] for row in found["rows"]] == [SMALL_MODEL, "test_resnet", "no_such_model"]
    for row in found["rows"][:2]:
        summary = json.loads((out / row["run_dir"] / "summary.json").read_text())  # the check's own summary
        assert row["error"] is None and not row["reused"]
        assert [c["verdict"] for c in row["cells"]] == [t["status"] for t in summary["targets"]]
        assert [c["rel_l2"] for c in row["cells"]] == [t["comparisons"][0]["rel_l2"] for t in summary["targets"]]
        assert {p.name for p in (out / row["run_dir"]).iterdir()} >= {"summary.json", "report.html", "report.md",
                                                                      "accuracy_compare.log"}
        assert summary["settings"]["model"]["name"] == row["model"]
    unknown = found["rows"][2]
    assert "unknown model 'no_such_model'" in unknown["error"]
    assert [c["verdict"] for c in unknown["cells"]] == ["ERROR", "ERROR"]
    assert (out / unknown["run_dir"] / "error.txt").read_text().strip() == unknown["error"]
    counts = found["counts"]["onnxruntime@cpu"]
    assert counts["ERROR"] == 1 and counts["PASS"] + counts["FAIL"] == 2


def test_a_models_check_in_the_sweep_equals_portproof_check_with_the_same_options(finished_sweep, tmp_path):
    out, _ = finished_sweep
    assert cli.main(["check", SMALL_MODEL, "--out", str(tmp_path), *SWEEP_FAST]) in (0, 1)
    alone = json.loads((tmp_path / "summary.json").read_text())
    swept = json.loads((out / "runs" / SMALL_MODEL / "summary.json").read_text())
    assert alone.keys() == swept.keys()  # the same schema
    for mine, theirs in zip(alone["targets"], swept["targets"]):
        assert mine["status"] == theirs["status"]
        assert mine["comparisons"][0]["cosine_similarity"] == theirs["comparisons"][0]["cosine_similarity"]


def test_matrix_csv_has_a_line_per_model_and_target(finished_sweep):
    out, _ = finished_sweep
    with open(out / "matrix.csv", newline="") as stream:
        lines = list(csv.DictReader(stream))
    assert len(lines) == 6
    first = lines[0]
    assert (first["model"], first["target"], first["report"]) == (SMALL_MODEL, "onnxruntime@cpu", f"runs/{SMALL_MODEL}/report.html")
    assert float(first["cosine"]) > 0.99 and float(first["median_ms"]) > 0
    assert lines[-1]["verdict"] == "ERROR" and "unknown model" in lines[-1]["error"] and lines[-1]["report"] == ""


def test_a_rerun_keeps_the_finished_checks_and_force_redoes_them(finished_sweep, tmp_path, capsys):
    folder = tmp_path / "sweep"
    shutil.copytree(finished_sweep[0], folder)
    summary = folder / "runs" / SMALL_MODEL / "summary.json"
    before = summary.read_bytes()
    assert sweep(folder, f"{SMALL_MODEL},test_resnet,no_such_model") == 1
    rows = matrix(folder)["rows"]
    assert [row["reused"] for row in rows] == [True, True, False]  # the unknown name is tried again
    assert summary.read_bytes() == before
    assert "checking 1 models on 1 local worker (2 kept from an earlier run)" in capsys.readouterr().err
    # other settings are another check: redone
    assert sweep(folder, SMALL_MODEL, "--iters", "3") in (0, 1)
    assert json.loads(summary.read_text())["settings"]["timing"]["iters"] == 3
    before = summary.read_bytes()
    assert sweep(folder, SMALL_MODEL, "--iters", "3", "--force") in (0, 1)
    assert matrix(folder)["rows"][0]["reused"] is False and summary.read_bytes() != before


def test_a_baseline_marks_regressions_fixes_and_moves_and_sets_the_exit_code(finished_sweep, tmp_path, capsys):
    folder, baseline = tmp_path / "sweep", tmp_path / "baseline"
    shutil.copytree(finished_sweep[0], folder)
    baseline.mkdir()
    earlier = matrix(folder)
    vit, resnet, _ = earlier["rows"]
    vit["cells"][1]["verdict"] = "FAIL" if vit["cells"][1]["verdict"] == "PASS" else "PASS"
    resnet["cells"][0]["verdict"] = "FAIL"  # it passes now: a fix
    resnet["cells"][0]["rel_l2"] = resnet["cells"][0]["rel_l2"] * 10  # and its rel_l2 moved
    (baseline / "matrix.json").write_text(json.dumps(earlier))
    models = f"{SMALL_MODEL},test_resnet,no_such_model"
    code = sweep(folder, models, "--baseline", str(baseline), "--rel-l2-factor", "3")
    now = matrix(folder)
    vit_change = now["rows"][0]["cells"][1]["change"]
    resnet_change = now["rows"][1]["cells"][0]["change"]
    assert resnet_change["kind"] == "fix" and "FAIL → PASS" in resnet_change["words"]
    assert resnet_change["rel_l2_factor"] == pytest.approx(0.1)
    assert now["baseline"]["fixes"] == 1 and now["baseline"]["rel_l2_factor"] == 3.0
    printed = capsys.readouterr().out
    assert "fix: test_resnet on onnxruntime@cpu: FAIL → PASS; rel_l2 ×0.1" in printed
    if vit_change["kind"] == "regression":  # the small model passed cpu/bf16 in the baseline as edited
        assert code == 1 and now["regressions"] == 1 and "regression: test_vit on cpu/bf16: PASS → FAIL" in printed
    else:
        assert code == 0 and vit_change["kind"] == "fix" and now["regressions"] == 0
    with open(folder / "matrix.csv", newline="") as stream:
        marked = {(line["model"], line["target"]): line["change"] for line in csv.DictReader(stream)}
    assert marked[("test_resnet", "onnxruntime@cpu")] == "fix"
    assert load_matrix(folder).baseline.fixes == now["baseline"]["fixes"]  # matrix.json reads back


def test_diff_compares_two_check_folders_target_by_target(finished_sweep, tmp_path, capsys):
    before, after = tmp_path / "before", tmp_path / "after"
    shutil.copytree(finished_sweep[0] / "runs" / "test_resnet", before)
    shutil.copytree(before, after)
    assert cli.main(["diff", str(before), str(after)]) == 0
    assert "0 regressions" in capsys.readouterr().out
    summary = json.loads((after / "summary.json").read_text())
    summary["targets"][0]["status"] = "FAIL"  # a target that passed before
    summary["targets"][0]["latency"]["median_ms"] *= 4
    (after / "summary.json").write_text(json.dumps(summary))
    assert cli.main(["diff", str(before), str(after), "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    change = found["targets"][0]["change"]
    assert found["regressions"] == 1 and change["kind"] == "regression" and change["latency_factor"] == pytest.approx(4)


@pytest.mark.parametrize("args, words", [
    (["--models", "a,b"], "portproof sweep needs --out DIR"),
    (["--models", "a", "--out", "{out}", "--workers", "0"], "--workers must be at least 1"),
    (["--models", "a", "--out", "{out}", "--workers", "2", "--ray", "auto"], "--workers and --ray exclude each other"),
    (["--models", "timm:nothing_is_called_this*", "--out", "{out}"], "nothing to sweep"),
    (["--models", "a", "--out", "{out}", "--baseline", "{missing}"], "matrix.json does not exist"),
    (["--models", "a", "--out", "{out}", "--latency-factor", "0.5"], "--latency-factor must be a number above 1"),
    (["--models", "a", "--out", "{out}", "--ray", "127.0.0.1:{port}"], "cannot reach the Ray cluster at 127.0.0.1:"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, words):
    from conftest import closed_port

    out = tmp_path / "out"
    filled = [a.format(out=out, missing=tmp_path / "missing", port=closed_port()) for a in args]
    assert cli.main(["sweep", *filled, *SWEEP_FAST]) == 2
    line = last_error_line(capsys)
    assert line.startswith("portproof: error: ") and words in line
    assert not out.exists()


def test_diff_of_a_folder_without_a_summary_is_exit_2(tmp_path, capsys):
    assert cli.main(["diff", str(tmp_path), str(tmp_path)]) == 2
    assert "summary.json does not exist" in last_error_line(capsys)


def test_json_prints_matrix_json_on_stdout_and_quiet_only_the_summary_line(finished_sweep, tmp_path, capsys):
    folder = tmp_path / "sweep"
    shutil.copytree(finished_sweep[0], folder)
    models = f"{SMALL_MODEL},test_resnet,no_such_model"
    assert sweep(folder, models, "--json") == 1
    printed = capsys.readouterr()
    assert json.loads(printed.out) == matrix(folder) and "matrix.json" in printed.err
    assert sweep(folder, models, "--quiet") == 1
    passed = sum(verdict == "PASS" for verdict in verdicts(folder).values())
    assert capsys.readouterr().out == f"3 models (2 reused, 1 could not run): {passed}/6 cells passed\n"
