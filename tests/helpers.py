"""What several test files share: a quick `portproof check` of the small model as a user runs it, its last
error line, a misbehaving backend swapped in for one target, and a previous run's files in the output folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from portproof import cli
from portproof.backends import registry

from conftest import SMALL_MODEL

FAST = ["--offline", "--iters", "2", "--warmup", "1", "--num-samples", "2", "--no-fp64-reference"]
# a sweep's check options: quick, and the same on every machine (random weights and inputs, CPU targets, one thread)
SWEEP_FAST = [*FAST, "--weights", "random", "--inputs", "random", "--target", "onnxruntime@cpu", "--target", "cpu/bf16",
              "--threads", "1"]
PREVIOUS = {"summary.json": b'{"previous": true}\n', "accuracy_compare.log": b"previous log\n",
            "report.md": b"previous report\n", "report.html": b"<p>previous</p>\n"}


def run_check(out: Path, *args: str, model: str = SMALL_MODEL) -> tuple[int, dict | None]:
    code = cli.main(["check", model, "--out", str(out), *FAST, *args])
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return code, summary


def last_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


def substitute(monkeypatch, backends: dict[str, type]) -> None:
    """Targets whose label is a key run on the misbehaving backend class instead. The swap lives in this
    process, so the checks of the test run their sides in it too (--in-process)."""
    original = registry.create
    monkeypatch.setattr(registry, "create", lambda spec: backends[spec.label](spec) if spec.label in backends else original(spec))
    monkeypatch.setattr(sys.modules[__name__], "FAST", [*FAST, "--in-process"])


def write_previous(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in PREVIOUS.items():
        (out / name).write_bytes(data)


def assert_previous_intact(out: Path) -> None:
    """The previous run's files, byte for byte, and nothing else: no temporary file, no lock left behind."""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == PREVIOUS
