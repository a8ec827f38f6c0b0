"""The output lock (issue 4): one run at a time per output directory, a lock left by a killed run taken over,
`portproof report` held off like `portproof check`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from portproof import cli
from portproof.errors import OutputError
from portproof.lockfile import LOCK_FILE, output_lock

from helpers import assert_previous_intact, last_error_line, run_check, write_previous


def test_second_run_into_a_locked_directory_refuses_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    write_previous(out)
    with output_lock(out, "portproof check (the first run)"):
        code, _ = run_check(out, "--target", "cpu")
        error = last_error_line(capsys)
        assert code == 2 and f"another portproof run (pid {os.getpid()} on " in error
        assert "portproof check (the first run)" in error and f"is writing to {out}" in error
    assert_previous_intact(out)


HOLD_SCRIPT = """
import sys
from portproof.lockfile import output_lock
with output_lock(sys.argv[1], "holder"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_lock_left_by_a_killed_run_does_not_block_the_next(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _ = run_check(out, "--target", "cpu")
        assert code == 2 and f"(pid {holder.pid} on " in last_error_line(capsys)
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the lock file stays behind
        holder.wait()
    assert (out / LOCK_FILE).exists() and str(holder.pid) in (out / LOCK_FILE).read_text()
    code, summary = run_check(out, "--target", "cpu")
    assert code == 0 and summary["verdict"] == "PASS" and not (out / LOCK_FILE).exists()


def test_portproof_report_takes_the_lock_too(finished_run, capsys):
    before = (finished_run / "report.md").read_bytes()
    with output_lock(finished_run):
        assert cli.main(["report", str(finished_run), "--lang", "zh"]) == 2
    assert "another portproof run" in last_error_line(capsys) and (finished_run / "report.md").read_bytes() == before


def test_lock_is_exclusive_within_one_process_and_released_after(tmp_path):
    with output_lock(tmp_path):
        with pytest.raises(OutputError, match="another portproof run"):
            with output_lock(tmp_path):
                pass
    with output_lock(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []
