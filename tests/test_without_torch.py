"""Results and writers need no torch: `portproof report DIR`, `--help` and `--version` run in a Python where
importing torch (or greenlet, timm, onnxruntime) raises."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

BEFORE_SEAMS = Path(__file__).parent / "data" / "before_seams"
BLOCKED = ("torch", "greenlet", "timm", "onnxruntime")
# sys.modules[name] = None makes `import name` raise ImportError, as in a Python without it.
RUN_WITHOUT_TORCH = ("import sys\n"
                     f"for name in {BLOCKED!r}:\n"
                     "    sys.modules[name] = None\n"
                     "from portproof.cli import main\n"
                     "code = main(sys.argv[1:])\n"
                     f"assert not [m for m in {BLOCKED!r} if sys.modules.get(m) is not None], 'imported'\n"
                     "sys.exit(code)\n")


def without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_WITHOUT_TORCH, *args], capture_output=True, text=True, timeout=120)


def test_the_blocker_really_blocks():
    run = subprocess.run([sys.executable, "-c", RUN_WITHOUT_TORCH.replace("from portproof.cli import main", "import torch")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "import of torch halted" in run.stderr


def test_report_rerenders_a_saved_run_in_both_languages_without_torch(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(BEFORE_SEAMS, folder)  # a summary written before rule outcomes were recorded
    english = without_torch("report", str(folder), "--lang", "en")
    assert english.returncode == 0, english.stderr
    assert "PASS" in (folder / "report.md").read_text() and (folder / "report.html").stat().st_size > 1000
    chinese = without_torch("report", str(folder), "--lang", "zh")
    assert chinese.returncode == 0, chinese.stderr
    text = (folder / "report.md").read_text()
    # the rules judged the old comparisons again, worded in Chinese
    assert "logits：cosine_similarity=" in text and "≥ 0.99" in text


def test_help_and_version_need_no_torch_and_answer_at_once():
    started = time.perf_counter()
    helped = without_torch("--help")
    elapsed = time.perf_counter() - started
    assert helped.returncode == 0 and "check" in helped.stdout and "report" in helped.stdout
    assert without_torch("check", "--help").returncode == 0
    version = without_torch("--version")
    assert version.returncode == 0 and version.stdout.startswith("portproof ")
    print(f"--help took {elapsed:.2f} s")  # shown with -s; a figure, not an assertion on wall time


def test_diff_of_two_check_folders_needs_no_torch(tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    shutil.copytree(BEFORE_SEAMS, before)
    shutil.copytree(BEFORE_SEAMS, after)
    same = without_torch("diff", str(before), str(after))
    assert same.returncode == 0, same.stderr
    assert "(unchanged)" in same.stdout and "0 regressions" in same.stdout
