"""A sweep as a real process: a model whose check segfaults or never ends is that model's ERROR row and
the others still run; a real SIGINT or SIGTERM half way stops it with nothing half-written and no process
left, and a rerun finishes only the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import portproof
from helpers import SWEEP_FAST
from test_worker import assert_nothing_left_running, wait_for_line

TESTS = Path(__file__).parent.parent


def start_sweep(*args: str, marker: str) -> subprocess.Popen:
    """`portproof sweep` from the tests folder (so that toy_models imports), its processes findable by `marker`."""
    source = str(Path(portproof.__file__).parents[1])  # the portproof these tests import, wherever it lives
    env = {**os.environ, "PORTPROOF_TEST_RUN": marker, "PYTHONPATH": os.pathsep.join(
        filter(None, (source, os.environ.get("PYTHONPATH"))))}
    return subprocess.Popen([sys.executable, "-m", "portproof", "sweep", *args, *SWEEP_FAST], cwd=TESTS, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_a_model_that_crashes_or_hangs_is_its_row_and_the_others_run(tmp_path):
    marker = uuid.uuid4().hex
    process = start_sweep("--models", "toy_models:make_segfaulting,toy_models:make_never_built,test_resnet",
                          "--workers", "1", "--timeout-per-model", "30", "--out", str(tmp_path), marker=marker)
    # (30 s: the one limit is every model's, and a real check on a loaded machine takes a good part of it)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    crashed, stuck, fine = json.loads((tmp_path / "matrix.json").read_text())["rows"]
    assert crashed["error"].startswith("crashed with SIGSEGV while running the check of toy_models:make_segfaulting")
    assert "building a model that crashes" in (tmp_path / crashed["run_dir"] / "runtime_output.log").read_text()
    assert stuck["error"] == "timed out after 30 s (--timeout-per-model); its process was stopped"
    assert fine["error"] is None and {c["verdict"] for c in fine["cells"]} <= {"PASS", "FAIL"}
    assert "Traceback" not in stderr
    assert_nothing_left_running(marker)


@pytest.mark.parametrize("signal_number, exit_code, then_rerun", [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, True)])
def test_a_signal_half_way_keeps_the_finished_checks_and_a_rerun_does_only_the_rest(tmp_path, signal_number, exit_code,
                                                                                     then_rerun):
    models = "test_vit,test_resnet,test_efficientnet"
    out = tmp_path / "sweep"
    marker = uuid.uuid4().hex
    process = start_sweep("--models", models, "--workers", "1", "--out", str(out), marker=marker)
    wait_for_line(process, "[1/3] test_vit")
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    assert_nothing_left_running(marker)
    finished = {p.parent.name for p in out.glob("runs/*/summary.json")}
    assert "test_vit" in finished and len(finished) < 3
    assert not (out / "matrix.json").exists()  # no matrix of half a sweep
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no file half-written
    if not then_rerun:  # one signal's rerun is enough: the folder it finds is the same
        return
    kept = {name: (out / "runs" / name / "summary.json").read_bytes() for name in finished}

    rerun = start_sweep("--models", models, "--workers", "1", "--out", str(out), marker=uuid.uuid4().hex)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode in (0, 1), stderr
    assert f"checking {3 - len(finished)} models on 1 local worker ({len(finished)} kept from an earlier run)" in stderr
    rows = json.loads((out / "matrix.json").read_text())["rows"]
    assert [row["reused"] for row in rows] == [row["model"] in finished for row in rows]
    assert all(row["error"] is None for row in rows)
    assert {name: (out / "runs" / name / "summary.json").read_bytes() for name in finished} == kept
