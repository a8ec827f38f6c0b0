"""Faults while a side runs (issue 4): a target that raises while timed, hangs, or runs out of memory, and Ctrl-C
during the run, each as a user meets it; then describe_failure itself.

Failing backends are EagerBackend subclasses swapped in for one target label (helpers.substitute, in-process).
Where a real mechanism exists it is used: a real SIGINT, a real forward that never returns in a real process
(toy_models.HangsInFp16). Crashes by signal and timeouts inside C++ are in test_worker.py. The issue's other
rows live beside what they exercise: test_weights.py, test_inputs.py, test_lockfile.py, test_cli.py,
test_compare.py, report/test_writing.py and report/test_escaping.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from portproof import faults
from portproof.backends.torch_eager import EagerBackend

from helpers import assert_previous_intact, last_error_line, run_check, substitute, write_previous


# --- target raises during run (its 3rd call: tests/test_cli.py); here it raises while being timed ------


class CrashWhileTimedBackend(EagerBackend):
    def step(self, batch):
        forward = super().step(batch)
        calls = iter(range(1_000_000))

        def flaky():
            if next(calls) == 1:
                raise RuntimeError("NPU error 507035: device lost during timing")
            return forward()
        return flaky


def test_target_that_raises_while_timed_is_an_error_and_the_others_complete(tmp_path, monkeypatch):
    substitute(monkeypatch, {"cpu/fp16": CrashWhileTimedBackend})
    code, summary = run_check(tmp_path / "out", "--target", "cpu/fp16", "--target", "cpu")
    crashed, fine = summary["targets"]
    assert code == 1 and summary["status"] == "ERROR" and fine["status"] == "PASS" and fine["latency"]["iters"] == 2
    assert crashed["status"] == "ERROR" and crashed["error"] == "RuntimeError: NPU error 507035: device lost during timing"


# --- target hangs (in a real process: a forward that never returns, in toy_models) --------------------------

TESTS = Path(__file__).parent


def start_hanging(out: Path, *args: str) -> subprocess.Popen:
    """`portproof check` of a model whose fp16 forward blocks for good, from the tests folder (for toy_models);
    SIGINT at its default, as in a terminal."""
    return subprocess.Popen([sys.executable, "-m", "portproof", "check", "toy_models:make_hanging", "--out", str(out),
                             "--iters", "2", "--warmup", "1", "--target", "cpu/fp16", *args], cwd=TESTS,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_hanging_target_ends_as_timed_out_and_the_rest_continues(tmp_path):
    # 20 s: the limit bounds the reference and the other target too, which need a fraction of it
    process = start_hanging(tmp_path / "out", "--target", "cpu", "--target-timeout", "20")
    stdout, stderr = process.communicate(timeout=300)  # a guard against a hang, not a measurement
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    hung, fine = summary["targets"]
    assert process.returncode == 1, stderr
    assert fine["status"] == "PASS"
    assert hung["status"] == "ERROR" and hung["error"].startswith("timed out after 20 s (--target-timeout)")
    assert summary["settings"]["target_timeout_s"] == 20.0


def test_default_target_timeout_is_generous():
    from portproof.config import CheckConfig

    assert CheckConfig().target_timeout_s >= 600


# --- out-of-memory on the target ---------------------------------------------------------------------


class OutOfMemoryBackend(EagerBackend):
    def run(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 15.77 GiB total capacity)")


def test_out_of_memory_is_reported_with_the_batch_size_and_a_hint(tmp_path, monkeypatch):
    substitute(monkeypatch, {"cpu/fp16": OutOfMemoryBackend})
    code, summary = run_check(tmp_path / "out", "--batch-size", "2", "--target", "cpu/fp16", "--target", "cpu")
    oom, fine = summary["targets"]
    assert code == 1 and fine["status"] == "PASS" and oom["status"] == "ERROR"
    assert oom["error"] == ("out of memory on cpu at batch size 2 (OutOfMemoryError: CUDA out of memory. Tried to allocate "
                            "20.00 GiB (GPU 0; 15.77 GiB total capacity)); lower --batch-size")


def test_out_of_memory_at_batch_size_1_suggests_a_lower_precision():
    message = faults.describe_failure(RuntimeError("NPU out of memory. Tried to allocate 3.00 GiB"), "npu:0", 1)
    assert message.startswith("out of memory on npu:0 at batch size 1 (RuntimeError: NPU out of memory")
    assert "lower-precision target" in message


def test_reference_out_of_memory_stops_the_check_with_exit_2(tmp_path, monkeypatch, capsys):
    substitute(monkeypatch, {"cpu": OutOfMemoryBackend})
    code, summary = run_check(tmp_path / "out", "--batch-size", "2", "--target", "cpu/bf16")
    error = last_error_line(capsys)
    assert code == 2 and summary is None
    assert error.startswith("portproof: error: the reference (cpu) failed, so nothing can be compared: out of memory")
    assert "at batch size 2" in error and "lower --batch-size" in error


# --- Ctrl-C during the run ---------------------------------------------------------------------------


class InterruptedBackend(EagerBackend):
    def run(self, batch):
        raise KeyboardInterrupt


def test_ctrl_c_leaves_previous_files_notes_it_and_exits_130(tmp_path, monkeypatch, capsys):
    substitute(monkeypatch, {"cpu/fp16": InterruptedBackend})
    out = tmp_path / "out"
    write_previous(out)
    code, _ = run_check(out, "--target", "cpu", "--target", "cpu/fp16")
    assert code == 130 and "interrupted; no report was written" in last_error_line(capsys)
    assert_previous_intact(out)


def test_ctrl_c_before_any_output_creates_no_files(tmp_path, monkeypatch):
    substitute(monkeypatch, {"cpu/fp16": InterruptedBackend})
    code, _ = run_check(tmp_path / "out", "--target", "cpu/fp16")
    assert code == 130 and list((tmp_path / "out").iterdir()) == []


def test_real_sigint_while_a_target_is_stuck(tmp_path):
    write_previous(tmp_path / "out")
    process = start_hanging(tmp_path / "out")
    watchdog = threading.Timer(300, process.kill)  # a guard against a hang, not a measurement
    watchdog.start()
    try:
        for line in process.stderr:
            if "running target 0" in line:
                break
        time.sleep(2)  # inside the blocked forward
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate()
    finally:
        watchdog.cancel()
    assert process.returncode == 130 and "portproof: interrupted" in stderr
    assert_previous_intact(tmp_path / "out")
