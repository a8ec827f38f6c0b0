"""Soak: many consecutive `portproof check` runs in one process, good and hostile mixed (issue 4's table).

Each check goes through `cli.main` as a user's would (lock, run, reports), on the CPU, with timm's
`test_vit` and random weights. The cases cycle: good runs, bad checkpoints, bad options, hostile image
folders, targets that raise, return NaN, run out of memory, Ctrl-C, a locked output folder, a file-size limit
hit while writing. The misbehaving backends are swapped in within this process, so the checks run their sides
in it (--in-process); hangs and crashes in a side's own process are tested with real processes in
tests/test_worker.py and tests/test_faults.py. After every check: the summary (when one is expected)
must parse and load back, and every bad case must be rejected as the README says.

Reported: resident memory (RSS) at the start, after warm-up and at the end, and its slope over the checks
after warm-up (least squares, MiB per 100 checks); threads and open file descriptors at the start, after warm-up and at the end;
how many summaries parsed and how many bad cases were rejected.
Run: .venv/bin/python benchmarks/soak.py [--checks 200] [--warmup-checks 32]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from portproof import cli
from portproof.backends import registry
from portproof.backends.torch_eager import EagerBackend
from portproof.lockfile import output_lock
from portproof.report.load import load_directory

MODEL = "test_vit"

FAST = ["--offline", "--iters", "2", "--warmup", "1", "--num-samples", "2", "--no-fp64-reference", "--in-process"]
PREVIOUS = {"summary.json": b'{"previous": true}\n', "report.md": b"previous\n"}


# --- misbehaving targets -------------------------------------------------------------------------------


class Crashing(EagerBackend):
    def run(self, batch):
        raise RuntimeError("device lost")


class NonFinite(EagerBackend):
    def run(self, batch):
        outputs = {name: t.clone() for name, t in super().run(batch).items()}
        outputs["logits"][0, :3] = float("nan")
        return outputs


class OutOfMemory(EagerBackend):
    def run(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


class Interrupted(EagerBackend):
    def run(self, batch):
        raise KeyboardInterrupt


@contextlib.contextmanager
def substituted(label: str | None, backend_class: type | None):
    original = registry.create
    if label:
        registry.create = lambda spec: backend_class(spec) if spec.label == label else original(spec)
    try:
        yield
    finally:
        registry.create = original


@contextlib.contextmanager
def file_size_limit(limit: int):
    """The kernel refuses writes past `limit` bytes (EFBIG), as a full disk refuses them (ENOSPC)."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


# --- the cases -------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    args: list[str]
    expect_code: int
    bad: bool  # a hostile or broken situation that must be rejected (or reported) as such
    check: Callable[[dict | None, str, Path], str | None] = lambda summary, stderr, out: None  # None, or what is wrong
    backend: tuple[str | None, type | None] = (None, None)
    previous: bool = False  # the output folder holds a previous run's files, which must stay as they were
    locked: bool = False
    size_limit: int | None = None


def build_cases(fixtures: Path) -> list[Case]:
    torch.manual_seed(3)
    state = timm.create_model(MODEL).state_dict()
    truncated = fixtures / "truncated" / "model.safetensors"
    truncated.parent.mkdir()
    save_file(state, str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:5000])
    evil = fixtures / "evil.pth"
    torch.save({"state_dict": {"w": _Payload(fixtures / "code-ran")}}, evil)
    other = fixtures / "other.safetensors"
    save_file(timm.create_model(MODEL, num_classes=10).state_dict(), str(other))
    nan = fixtures / "nan.safetensors"
    save_file({k: (v.clone().fill_(float("nan")) if k == "norm.weight" else v) for k, v in state.items()}, str(nan))
    folder = fixtures / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 140, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (120, 140), dtype=np.uint8), "L").save(folder / "b_gray.png")
    Image.fromarray(rng.integers(0, 255, (120, 140, 4), dtype=np.uint8), "CMYK").save(folder / "c_cmyk.jpg")
    (folder / "d_notes.txt").write_text("not an image")
    (folder / "e_cut.png").write_bytes((folder / "a.png").read_bytes()[:300])
    unreadable = fixtures / "unreadable"
    unreadable.mkdir()
    (unreadable / "x.jpg").write_bytes(b"\xff\xd8 broken")

    def verdict(status: str):
        return lambda s, err, out: None if s and s["targets"][-1]["status"] == status else f"expected {status}"

    def error_says(text: str):
        return lambda s, err, out: None if text in err else f"stderr lacks {text!r}: {err.strip()[-200:]}"

    def target_error(text: str):
        def check(s, err, out):
            error = (s or {}).get("targets", [{}])[0].get("error") or ""
            return None if text in error else f"target error lacks {text!r}: {error!r}"
        return check

    def skipped(s, err, out):
        return None if s and len(s["inputs"]["skipped"]) == 2 else "expected 2 skipped files"

    def no_code_ran(s, err, out):
        return "the pickle ran code" if (fixtures / "code-ran").exists() else error_says("--trust-pickle")(s, err, out)

    return [
        Case("good", ["--weights", "random", "--target", "cpu"], 0, False, verdict("PASS")),
        Case("good bf16", ["--weights", "random", "--target", "cpu/bf16"], -1, False),
        Case("truncated safetensors", ["--weights", str(truncated.parent)], 2, True, error_says("not a readable safetensors")),
        Case("pickle running code", ["--weights", str(evil)], 2, True, no_code_ran),
        Case("other num_classes", ["--weights", str(other)], 2, True, error_says("head.weight has shape [10, 64]")),
        Case("NaN weights", ["--weights", str(nan)], 2, True, error_says("norm.weight: 64 NaN")),
        Case("iters 0", ["--iters", "0"], 2, True, error_says("--iters must be at least 1")),
        Case("hostile folder", ["--weights", "random", "--inputs", str(folder), "--num-samples", "4", "--target", "cpu"],
             0, True, skipped),
        Case("nothing readable", ["--weights", "random", "--inputs", str(unreadable)], 2, True, error_says("no readable image")),
        Case("target raises", ["--weights", "random", "--target", "cpu/fp16", "--target", "cpu"], 1, True,
             target_error("RuntimeError: device lost"), ("cpu/fp16", Crashing)),
        Case("target NaN", ["--weights", "random", "--target", "cpu/fp16"], 1, True, verdict("FAIL"), ("cpu/fp16", NonFinite)),
        Case("target OOM", ["--weights", "random", "--target", "cpu/fp16", "--target", "cpu"], 1, True,
             target_error("out of memory on cpu at batch size 1"), ("cpu/fp16", OutOfMemory)),
        Case("Ctrl-C", ["--weights", "random", "--target", "cpu/fp16"], 130, True, error_says("interrupted"),
             ("cpu/fp16", Interrupted), previous=True),
        Case("locked --out", ["--weights", "random", "--target", "cpu"], 2, True, error_says("another portproof run"),
             previous=True, locked=True),
        Case("file too large", ["--weights", "random", "--target", "cpu"], 2, True, error_says("File too large"),
             previous=True, size_limit=8192),
    ]


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def run_case(case: Case, out: Path) -> str | None:
    """One check; None when it behaved as expected, else what went wrong."""
    if case.previous:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in PREVIOUS.items():
            (out / name).write_bytes(data)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(substituted(*case.backend))
        if case.locked:
            stack.enter_context(output_lock(out, "the soak's other run"))
        if case.size_limit:
            stack.enter_context(file_size_limit(case.size_limit))
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(["check", MODEL, "--out", str(out), *FAST, *case.args])
    if case.expect_code >= 0 and code != case.expect_code:
        return f"exit {code}, expected {case.expect_code}: {stderr.getvalue().strip()[-300:]}"
    summary = None
    if case.previous:
        if {p.name: p.read_bytes() for p in out.iterdir()} != PREVIOUS:
            return "the previous files were not left as they were"
    elif code in (0, 1):
        try:
            summary = json.loads((out / "summary.json").read_text())
            load_directory(out)
        except Exception as error:
            return f"summary.json does not parse or load back: {error}"
    elif out.exists() and any(out.iterdir()):
        return f"files were written: {sorted(p.name for p in out.iterdir())}"
    return case.check(summary, stderr.getvalue(), out)


# --- process figures -------------------------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def os_threads() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def open_files() -> dict[str, str]:
    """Descriptor number to what it points at."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used
            pass
    return found


def snapshot() -> dict:
    return {"rss": rss_mib(), "threads": threading.active_count(), "os_threads": os_threads(), "fds": open_files()}


def slope_per_100(values: list[float]) -> float:
    x = np.arange(len(values), dtype=np.float64)
    return float(np.polyfit(x, np.asarray(values), 1)[0] * 100) if len(values) > 1 else 0.0


def settle() -> None:
    """Collect garbage before a measurement."""
    gc.collect()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--warmup-checks", type=int, default=32,
                        help="checks before the slope is measured (default: two cycles of the cases)")
    parser.add_argument("--only", action="append", metavar="CASE", help="run only this case (repeatable), to find a leak")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"

    with tempfile.TemporaryDirectory(prefix="portproof-soak-") as work:
        work = Path(work)
        fixtures = work / "fixtures"
        fixtures.mkdir()
        cases = [c for c in build_cases(fixtures) if not args.only or c.name in args.only]
        if not cases:
            parser.error(f"no case named {', '.join(args.only)}")
        settle()
        before = snapshot()
        rss, problems, parsed, rejected, bad_total = [], [], 0, 0, 0
        started = time.perf_counter()
        for index in range(args.checks):
            case = cases[index % len(cases)]
            problem = run_case(case, work / f"out-{index}")
            if problem:
                problems.append(f"check {index} ({case.name}): {problem}")
            if case.bad:
                bad_total += 1
                rejected += problem is None
            if (work / f"out-{index}" / "summary.json").exists() and not case.previous and problem is None:
                parsed += 1
            settle()
            rss.append(rss_mib())
            if index + 1 == args.warmup_checks:
                warm = snapshot()
            if (index + 1) % 25 == 0:
                print(f"  {index + 1} checks, RSS {rss[-1]:.1f} MiB, {time.perf_counter() - started:.0f} s", flush=True)
        after = snapshot()

    measured = rss[args.warmup_checks:]
    # The cases differ in what they allocate, so RSS also moves with the case; the slope of the means of whole
    # cycles of the cases (one mean per cycle) is free of that pattern.
    cycles = [statistics.fmean(measured[i:i + len(cases)]) for i in range(0, len(measured) - len(cases) + 1, len(cases))]
    cycle_slope = slope_per_100(cycles) / len(cases) if len(cycles) > 1 else float("nan")
    print(f"checks: {args.checks} in {time.perf_counter() - started:.0f} s ({len(cases)} cases, cycled)")
    print(f"RSS: {before['rss']:.1f} MiB before, {rss[args.warmup_checks - 1]:.1f} MiB after {args.warmup_checks} warm-up "
          f"checks, {after['rss']:.1f} MiB at the end; after warm-up min {min(measured):.1f}, max {max(measured):.1f}, "
          f"stdev {statistics.pstdev(measured):.2f} MiB")
    print(f"RSS slope after warm-up: {slope_per_100(measured):+.2f} MiB per 100 checks (least squares over every check); "
          f"{cycle_slope:+.2f} MiB per 100 checks over the means of {len(cycles)} whole cycles")
    print(f"Python threads: {before['threads']} at the start, {warm['threads']} after warm-up, {after['threads']} at the end; "
          f"OS threads: {before['os_threads']}, {warm['os_threads']}, {after['os_threads']}")
    print(f"open file descriptors: {len(before['fds'])} at the start, {len(warm['fds'])} after warm-up, {len(after['fds'])} at the end")
    for fd, target in sorted(after["fds"].items(), key=lambda item: int(item[0])):
        if before["fds"].get(fd) != target:
            since = "the start" if warm["fds"].get(fd) == target else "the warm-up"
            print(f"  opened since {since} and still open: fd {fd} -> {target}")
    summaries_expected = sum(1 for i in range(args.checks) if cases[i % len(cases)].expect_code in (0, 1, -1)
                             and not cases[i % len(cases)].previous)
    print(f"summaries parsed and loaded back: {parsed}/{summaries_expected}")
    print(f"bad cases rejected as documented: {rejected}/{bad_total}")
    if after["threads"] > warm["threads"] or after["os_threads"] > warm["os_threads"]:
        problems.append("threads were left running")
    if len(after["fds"]) > len(warm["fds"]):
        problems.append("file descriptors were left open")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
