"""Report files are written all or none (issue 4): a full disk, a file-size limit, a read-only or unwritable
folder and Ctrl-C during the renames all leave the previous run's files as they were, or replace every one.

Where a real mechanism exists it is used: a real SIGINT, a real file-size limit, a real full (tmpfs) and
read-only file system in a user namespace."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from portproof import report
from portproof.errors import OutputError

from helpers import FAST, PREVIOUS, assert_previous_intact, last_error_line, run_check, write_previous


# --- output directory not writable / disk full while writing -----------------------------------------


def test_file_size_limit_hit_while_writing_leaves_previous_files_intact(finished_run, tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse writes past a size, as a full disk does (EFBIG, not ENOSPC)."""
    from portproof.report.load import load_directory

    result = load_directory(finished_run)
    write_previous(tmp_path)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, hard))
    try:
        with pytest.raises(OutputError, match=r"cannot write .* \(File too large\); previous files were left as they were"):
            report.write_reports(result, tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert_previous_intact(tmp_path)


NAMESPACE_SCRIPT = """
import contextlib, io, json, subprocess, sys
from pathlib import Path
from portproof import cli

out = Path(sys.argv[1])
previous = json.loads(sys.argv[2])
for name, text in previous.items():
    (out / name).write_text(text)
outcome = {}
for case in ("full while writing", "full from the start", "read-only"):
    if case == "full from the start":  # every block taken before the check begins
        with open(out / ".filler", "wb", buffering=0) as stream, contextlib.suppress(OSError):
            while stream.write(b"x" * 4096):
                pass
    if case == "read-only":
        (out / ".filler").unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = cli.main(["check", "test_vit", "--out", str(out), *sys.argv[3:]])
    outcome[case] = {"code": code, "error": stderr.getvalue().strip().splitlines()[-1],
                     "files": {p.name: p.read_text() for p in out.iterdir() if p.name != ".filler"}}
print(json.dumps(outcome))
"""


def test_full_disk_and_read_only_directory_leave_previous_files_intact(tmp_path):
    """A real 64 KiB tmpfs, mounted in a user namespace: ENOSPC while writing the reports, ENOSPC from the
    start (the lock file cannot be written), then EROFS once read-only."""
    unshare = shutil.which("unshare")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if not unshare or subprocess.run([unshare, "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode:
        pytest.skip("unprivileged user and mount namespaces are not available here")
    previous = {name: data.decode() for name, data in PREVIOUS.items()}
    command = [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"',
               str(mount_point), sys.executable, "-c", NAMESPACE_SCRIPT, str(mount_point), json.dumps(previous), *FAST, "--target", "cpu"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    full, full_before, read_only = outcome["full while writing"], outcome["full from the start"], outcome["read-only"]
    assert full["code"] == 2 and "No space left on device" in full["error"] and "previous files were left as they were" in full["error"]
    assert full_before["code"] == 2 and "cannot write the lock file" in full_before["error"]
    assert "No space left on device" in full_before["error"]
    assert read_only["code"] == 2 and "cannot write to output directory" in read_only["error"]
    assert "Read-only file system" in read_only["error"]
    assert full["files"] == full_before["files"] == read_only["files"] == previous


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to a read-only directory anyway")
def test_unwritable_directory_is_refused_and_previous_files_stay(tmp_path, capsys):
    out = tmp_path / "out"
    write_previous(out)
    out.chmod(0o555)
    try:
        code, _ = run_check(out, "--target", "cpu")
    finally:
        out.chmod(0o755)
    assert code == 2 and "cannot write to output directory" in last_error_line(capsys)
    assert_previous_intact(out)


# --- Ctrl-C while the files are renamed into place ---------------------------------------------------


def test_ctrl_c_while_files_are_renamed_is_held_until_all_are_in_place(tmp_path, monkeypatch):
    """A real SIGINT, sent from inside the first rename: every file is still replaced, none is mixed."""
    write_previous(tmp_path)
    real_replace = os.replace
    sent = []

    def replace_and_interrupt(source, target):
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))
        real_replace(source, target)

    monkeypatch.setattr(report.os, "replace", replace_and_interrupt)
    new = {name: b"new " + data for name, data in PREVIOUS.items()}
    with pytest.raises(KeyboardInterrupt, match="written whole"):
        report.write_files(new, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == new
