"""What `portproof check` prints: the summary table, --quiet, --json, progress, and no control characters
when the output is not a terminal."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from portproof import cli
from portproof.results import RANDOM_WEIGHTS_BANNER
from portproof.terminal import ProgressDisplay

from conftest import SMALL_MODEL

QUICK = ["--weights", "random", "--num-samples", "2", "--warmup", "1", "--iters", "3", "--no-fp64-reference",
         "--target", "cpu", "--target", "cpu/bf16"]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but tab and newline


def check(tmp_path: Path, capsys, *args: str) -> tuple[int, str, str, Path]:
    out = tmp_path / "out"
    code = cli.main(["check", SMALL_MODEL, "--out", str(out), *QUICK, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def test_summary_table_off_a_terminal_is_plain_text(tmp_path, capsys):
    code, out, err, folder = check(tmp_path, capsys)
    summary = json.loads((folder / "summary.json").read_text())
    assert code == 0
    assert not CONTROL.search(out) and not CONTROL.search(err)
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("target"))
    assert header.split() == ["target", "verdict", "cosine", "rel_l2", "max_abs_diff", "top-1", "median", "latency", "speedup"]
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in ("cpu", "cpu/bf16")}
    bf16 = summary["targets"][1]
    logits = next(c for c in bf16["comparisons"] if c["name"] == "logits")
    assert rows["cpu/bf16"][:5] == ["cpu/bf16", "PASS", f"{logits['cosine_similarity']:.6f}", f"{logits['rel_l2']:.3e}",
                                    f"{logits['max_abs_diff']:.3e}"]
    assert rows["cpu/bf16"][-3:] == [f"{bf16['latency']['median_ms']:.3f}", "ms", f"{bf16['speedup']:.2f}x"]
    reference = next(line for line in lines if line.startswith("reference cpu"))
    assert f"{summary['reference']['latency']['median_ms']:.3f} ms" in reference
    assert "PASS: 2/2 targets passed (cpu PASS, cpu/bf16 PASS)" in out
    assert [line.strip() for line in lines[lines.index("wrote:") + 1:]] == [
        str(folder / name) for name in ("summary.json", "accuracy_compare.log", "report.md", "report.html")]
    # progress off a terminal: one plain line per step, on stderr
    assert "portproof: loading test_vit\n" in err and "portproof: timing cpu/bf16\n" in err
    assert f"WARNING: {RANDOM_WEIGHTS_BANNER}" in err


def test_quiet_prints_only_the_verdict_line(tmp_path, capsys):
    code, out, err, folder = check(tmp_path, capsys, "--quiet", "--lang", "zh")
    assert code == 0 and err == ""
    assert out == f"PASS: 2/2 targets passed (cpu PASS, cpu/bf16 PASS) — {RANDOM_WEIGHTS_BANNER}\n"
    assert "## 适配结论" in (folder / "report.md").read_text()
    assert '<html lang="zh-CN">' in (folder / "report.html").read_text()


def test_json_prints_the_summary_and_nothing_else_on_stdout(tmp_path, capsys):
    code, out, err, folder = check(tmp_path, capsys, "--json")
    assert code == 0
    assert json.loads(out) == json.loads((folder / "summary.json").read_text())
    assert str(folder / "report.html") in err


def test_quiet_and_json_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["check", "--quiet", "--json", "--out", str(tmp_path)])
    assert caught.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as a real one would."""

    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_draws_bars_with_counts():
    stream = Terminal()
    with ProgressDisplay(stream) as progress:
        progress("loading test_vit")
        progress("timing cpu")
        for done in range(1, 8):
            progress("timing cpu", done, 7)
    text = stream.getvalue()
    assert "\x1b[" in text  # live display: cursor and colour codes
    assert "loading test_vit" in text and "timing cpu" in text and "7/7" in text and "✓" in text


def test_progress_off_a_terminal_is_one_plain_line_per_step_and_quiet_is_silent():
    plain = io.StringIO()
    with ProgressDisplay(plain) as progress:
        progress("loading test_vit")
        for done in range(1, 4):
            progress("timing cpu", done, 3)
        progress("writing the reports")
    assert plain.getvalue() == "portproof: loading test_vit\nportproof: timing cpu\nportproof: writing the reports\n"
    silent = Terminal()
    with ProgressDisplay(silent, quiet=True) as progress:
        progress("loading test_vit")
        progress("timing cpu", 1, 3)
    assert silent.getvalue() == ""
