"""Where sides run (worker.py), tested with real processes and real signals: a side that segfaults, one stuck
in a C++ call past its deadline, Ctrl-C and SIGTERM in the middle of a forward; the exit code is always a
documented one and no process is left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from portproof import worker

TESTS = Path(__file__).parent


def start_check(*args: str, marker: str) -> subprocess.Popen:
    """`portproof check` from the tests folder (so that toy_models imports), its children findable by `marker`."""
    env = {**os.environ, "PORTPROOF_TEST_RUN": marker}
    # Ctrl-C's default disposition, as in a terminal (a shell starts background jobs with SIGINT ignored)
    return subprocess.Popen([sys.executable, "-m", "portproof", "check", *args], cwd=TESTS, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def processes_marked(marker: str) -> list[int]:
    """Live processes (zombies aside) whose environment holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"PORTPROOF_TEST_RUN={marker}".encode() in (entry / "environ").read_bytes():
                if "\nState:\tZ" not in (entry / "status").read_text():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def assert_nothing_left_running(marker: str) -> None:
    deadline = time.monotonic() + 10  # the fork server notices its parent's exit on its own
    while processes_marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_marked(marker) == []


def wait_for_line(process: subprocess.Popen, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        if text in line:
            return
        assert time.monotonic() < deadline, f"no {text!r} in time"
    raise AssertionError(f"the check ended before {text!r}")


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def previous_run(tmp_path):
    """An output folder holding an earlier run's files, which an interrupted run must leave as they are."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("summary.json", "report.md", "report.html", "accuracy_compare.log"):
        (out / name).write_text(f"earlier run's {name}\n")
    return out


def test_a_target_that_segfaults_is_its_error_and_the_other_target_still_runs(tmp_path):
    marker = uuid.uuid4().hex
    process = start_check("toy_models:make_crashing", "--target", "cpu/bf16", "--target", "cpu/fp16", "--iters", "2",
                          "--warmup", "1", "--out", str(tmp_path), "--json", marker=marker)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    bf16, fp16 = json.loads(stdout)["targets"]
    assert bf16["status"] == "ERROR" and bf16["error"].startswith("crashed with SIGSEGV while running cpu/bf16")
    assert fp16["status"] == "PASS"
    assert_nothing_left_running(marker)


def test_a_reference_stuck_in_a_cpp_call_times_out_with_exit_2_and_one_line(tmp_path):
    marker = uuid.uuid4().hex
    started = time.monotonic()
    process = start_check("toy_models:make_stuck", "--target", "cpu/bf16", "--target-timeout", "4", "--out",
                          str(tmp_path), marker=marker)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    errors = [line for line in stderr.splitlines() if line.startswith("portproof: error")]
    assert errors == [errors[0]] and "timed out after 4 s" in errors[0] and "reference (cpu)" in errors[0]
    assert "Traceback" not in stderr and "terminate called" not in stderr
    assert time.monotonic() - started < 60  # stopped at the deadline, not at the loop's end
    assert_nothing_left_running(marker)


@pytest.mark.parametrize("signal_number, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_in_the_middle_of_a_forward_leaves_the_earlier_files_intact(previous_run, signal_number, exit_code):
    marker = uuid.uuid4().hex
    before = snapshot(previous_run)
    process = start_check("toy_models:make_stuck", "--target", "cpu/bf16", "--out", str(previous_run), marker=marker)
    wait_for_line(process, "running the reference")
    time.sleep(1.0)  # inside the matmul loop
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    assert "Traceback" not in stderr and "terminate called" not in stderr
    assert snapshot(previous_run) == before  # no report replaced, no temporary file left
    assert_nothing_left_running(marker)


def test_in_process_runs_the_side_in_the_calling_thread(tmp_path):
    capture = tmp_path / "captured.log"
    value = worker.run(_answer, (41,), label="side", timeout_s=1, capture_path=str(capture), device="cpu", batch_size=1,
                       isolated=False)
    assert value == (42, os.getpid())
    assert "printed by the side" in capture.read_text()


def test_a_side_in_its_own_process_answers_and_what_it_prints_is_captured(tmp_path):
    capture = tmp_path / "captured.log"
    heard = []
    value = worker.run(_answer, (41,), label="side", timeout_s=60, capture_path=str(capture), device="cpu",
                       batch_size=1, progress=lambda message, *rest: heard.append(message))
    assert value[0] == 42 and value[1] != os.getpid()
    assert heard == ["answering"]
    assert "printed by the side" in capture.read_text()


def test_a_failure_in_the_side_comes_back_worded_for_its_device_and_batch(tmp_path):
    with pytest.raises(worker.SideFailed, match="out of memory on npu:0 at batch size 4"):
        worker.run(_out_of_memory, (), label="side", timeout_s=60, capture_path=str(tmp_path / "c.log"),
                   device="npu:0", batch_size=4)


def _answer(number: int, *, progress=None):
    if progress is not None:
        progress("answering")
    os.write(1, b"printed by the side\n")  # at the file-descriptor level, as C++ code prints
    return number + 1, os.getpid()


def _out_of_memory(*, progress=None):
    raise RuntimeError("NPU out of memory. Tried to allocate 3.00 GiB")


def test_a_killed_sides_temporary_files_are_removed(tmp_path):
    """A side stopped at its deadline never cleans up after itself: its scratch folder is removed for it."""
    import tempfile

    heard = []
    with pytest.raises(worker.TimedOut):
        worker.run(_write_then_hang, (), label="side", timeout_s=3, capture_path=str(tmp_path / "c.log"), device="cpu",
                   batch_size=1, progress=lambda message, *rest: heard.append(message))
    assert Path(heard[0]).name.startswith("portproof-side-")  # where the side's temporary files went
    assert Path(heard[0]).parent == Path(tempfile.gettempdir()) and not Path(heard[0]).exists()


def _write_then_hang(*, progress=None):
    import tempfile
    import threading

    with open(os.path.join(tempfile.gettempdir(), "model.onnx"), "wb") as graph:
        graph.write(b"\0" * 1024)
    progress(tempfile.gettempdir())
    threading.Event().wait()


def test_what_third_party_code_prints_goes_to_a_log_and_json_stays_valid(tmp_path):
    marker = uuid.uuid4().hex
    process = start_check("toy_models:make_chatty", "--target", "cpu/bf16", "--iters", "2", "--warmup", "1",
                          "--out", str(tmp_path), "--json", marker=marker)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    summary = json.loads(stdout)  # stdout is portproof's own: valid JSON
    logged = (tmp_path / "runtime_output.log").read_text()
    assert "IR dump line" in logged and "IR dump line" not in stdout + stderr
    assert any(f"printed {len(logged.splitlines())} lines" in note and "runtime_output.log" in note
               for note in summary["notes"])


def test_a_run_removes_the_files_an_earlier_run_wrote_that_it_does_not_write(tmp_path):
    common = ["toy_models:make_chatty", "--target", "cpu/bf16", "--no-bench", "--out", str(tmp_path)]
    first = start_check(*common, "--layers", "--save-tensors", marker=uuid.uuid4().hex)
    assert first.wait(timeout=300) == 0
    assert (tmp_path / "layers.json").exists() and (tmp_path / "tensors" / "reference.safetensors").exists()
    second = start_check(*common, marker=uuid.uuid4().hex)
    assert second.wait(timeout=300) == 0
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {"summary.json", "accuracy_compare.log", "report.md", "report.html", "runtime_output.log"}
    assert json.loads((tmp_path / "summary.json").read_text())["settings"]["layers"] is False


def test_a_side_uses_the_callers_torch_thread_count(tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        threads = worker.run(_thread_count, (), label="side", timeout_s=60, capture_path=str(tmp_path / "c.log"),
                             device="cpu", batch_size=1)
    finally:
        torch.set_num_threads(before)
    assert threads == 1


def _thread_count(*, progress=None):
    import torch

    return torch.get_num_threads()
