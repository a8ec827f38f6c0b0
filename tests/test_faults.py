"""Hostile inputs and faults (issue 4): every situation of the issue's table, as a user meets it.

Each test names its row. Failing backends are EagerBackend subclasses swapped in for one target label, as
in test_cli.py. Where a real mechanism exists it is used: a real SIGINT, a real stuck thread in a real
process, a real file-size limit, a real full (tmpfs) and read-only file system in a user namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from portproof import cli, faults, inputs, report
from portproof.backends import registry
from portproof.backends.torch_eager import EagerBackend
from portproof.config import InputSpec
from portproof.errors import InputError, OutputError
from portproof.lockfile import LOCK_FILE, output_lock

from conftest import SMALL_MODEL

FAST = ["--offline", "--iters", "2", "--warmup", "1", "--num-samples", "2", "--no-fp64-reference"]
PREVIOUS = {"summary.json": b'{"previous": true}\n', "accuracy_compare.log": b"previous log\n",
            "report.md": b"previous report\n", "report.html": b"<p>previous</p>\n"}
TEST_VIT_CONFIG = {"input_size": (3, 160, 160), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                   "std": (0.5, 0.5, 0.5), "crop_pct": 0.875, "crop_mode": "center"}


def run_check(out: Path, *args: str, model: str = SMALL_MODEL) -> tuple[int, dict | None]:
    code = cli.main(["check", model, "--out", str(out), *FAST, *args])
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return code, summary


def last_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


def substitute(monkeypatch, backends: dict[str, type]) -> None:
    """Targets whose label is a key run on the misbehaving backend class instead."""
    original = registry.create
    monkeypatch.setattr(registry, "create", lambda spec: backends[spec.label](spec) if spec.label in backends else original(spec))


def write_previous(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in PREVIOUS.items():
        (out / name).write_bytes(data)


def assert_previous_intact(out: Path) -> None:
    """The previous run's files, byte for byte, and nothing else: no temporary file, no lock left behind."""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == PREVIOUS


def assert_no_report_files(out: Path) -> None:
    assert not any(p.is_file() and not p.name.startswith(".portproof-probe") for p in out.glob("*")), list(out.iterdir())


def save_safetensors(path: Path, state: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One real check, reused by the tests that need a result or a summary.json on disk."""
    out = tmp_path_factory.mktemp("finished")
    code = cli.main(["check", SMALL_MODEL, "--out", str(out), *FAST, "--target", "cpu"])
    assert code == 0
    return out


# --- .bin/.pth checkpoint containing a pickle that would execute code --------------------------------


class _Payload:
    """Unpickling this creates a file: the kind of code a hostile checkpoint runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_that_would_run_code_is_refused_naming_both_ways_out(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"weight": _Payload(marker)}}, evil)
    code, summary = run_check(tmp_path / "out", "--weights", str(evil))
    error = last_error_line(capsys)
    assert code == 2 and summary is None and not marker.exists()
    assert str(evil) in error and "cannot be read safely" in error
    assert "convert it to .safetensors" in error and "--trust-pickle" in error
    assert_no_report_files(tmp_path / "out")


def test_trust_pickle_is_off_by_default_and_recorded_when_it_was_needed(tmp_path, small_state, capsys):
    """A training checkpoint that pickles its argparse Namespace: weights_only refuses it."""
    path = tmp_path / "train.pth"
    torch.save({"state_dict": small_state, "args": argparse.Namespace(lr=0.1)}, path)
    code, summary = run_check(tmp_path / "refused", "--weights", str(path))
    assert code == 2 and summary is None and "--trust-pickle" in last_error_line(capsys)

    code, summary = run_check(tmp_path / "trusted", "--weights", str(path), "--trust-pickle", "--target", "cpu")
    assert code == 0 and summary["pretrained_used"] is True
    assert summary["weights"]["pickle_trusted"] is True and summary["settings"]["weights"]["trust_pickle"] is True
    assert any("--trust-pickle" in note for note in summary["notes"])
    assert "--trust-pickle" in (tmp_path / "trusted" / "report.md").read_text()


def test_trust_pickle_still_loads_a_plain_checkpoint_safely(tmp_path, small_state):
    """--trust-pickle is a fallback: a checkpoint weights_only can read is read that way, and says so."""
    from portproof import models
    from portproof.config import ModelSpec, WeightsSpec

    path = tmp_path / "plain.bin"
    torch.save(small_state, path)
    provenance = models.load(ModelSpec(SMALL_MODEL), WeightsSpec(source=str(path), trust_pickle=True)).provenance
    assert provenance.pretrained_used and provenance.pickle_trusted is False


# --- truncated or corrupt safetensors; a text file named model.safetensors; an empty file ------------


@pytest.mark.parametrize("case, problem", [
    ("empty", "is empty"),
    ("text", "not a readable safetensors file"),
    ("truncated", "not a readable safetensors file"),
    ("huge header", "not a readable safetensors file"),
])
def test_unreadable_safetensors_is_one_line_exit_2_and_no_files(tmp_path, small_state, capsys, case, problem):
    path = tmp_path / "ckpt" / "model.safetensors"
    save_safetensors(path, small_state)
    whole = path.read_bytes()
    content = {"empty": b"", "text": b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n",
               "truncated": whole[: len(whole) // 2], "huge header": struct.pack("<Q", 1 << 60) + whole[8:]}[case]
    path.write_bytes(content)
    code, summary = run_check(tmp_path / "out", "--weights", str(path.parent))
    stderr = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and summary is None and not any("Traceback" in line for line in stderr)
    assert stderr[-1].startswith("portproof: error:") and str(path) in stderr[-1] and problem in stderr[-1]
    assert_no_report_files(tmp_path / "out")


# --- checkpoint for another architecture / wrong num_classes ------------------------------------------


@pytest.mark.parametrize("other, key, shapes", [
    ({"model_name": SMALL_MODEL, "num_classes": 10}, "head.weight", "[10, 64] in the file and [1000, 64] in the model"),
    ({"model_name": "vit_tiny_patch16_224"}, "cls_token", "[1, 1, 192] in the file and [1, 1, 64] in the model"),
])
def test_checkpoint_of_another_model_names_the_first_mismatching_key_and_both_shapes(tmp_path, capsys, other, key, shapes):
    path = save_safetensors(tmp_path / "other.safetensors", timm.create_model(**other).state_dict())
    code, summary = run_check(tmp_path / "out", "--weights", str(path))
    error = last_error_line(capsys)
    assert code == 2 and summary is None and f"{key} has shape {shapes}" in error and str(path) in error


# --- missing or unexpected keys ---------------------------------------------------------------------


def test_missing_and_unexpected_keys_are_listed_then_allowed_and_recorded(tmp_path, small_state, capsys):
    dropped = [k for k in small_state if k.startswith("blocks.0.")]  # more than five: counts and the first few
    state = {k: v for k, v in small_state.items() if k not in dropped}
    state["extra.weight"] = torch.ones(3)
    path = save_safetensors(tmp_path / "partial.safetensors", state)

    code, summary = run_check(tmp_path / "refused", "--weights", str(path))
    error = last_error_line(capsys)
    assert code == 2 and summary is None
    assert f"{len(dropped)} missing keys ({', '.join(dropped[:5])}, ... ({len(dropped) - 5} more))" in error
    assert "1 unexpected keys (extra.weight)" in error and "--allow-partial-weights" in error

    code, summary = run_check(tmp_path / "allowed", "--weights", str(path), "--allow-partial-weights", "--target", "cpu")
    weights = summary["weights"]
    assert code == 0 and weights["partial_allowed"] is True and summary["settings"]["weights"]["allow_partial"] is True
    assert weights["missing_keys"] == dropped and weights["unexpected_keys"] == ["extra.weight"]
    assert any("--allow-partial-weights" in note for note in summary["notes"])


# --- weights with NaN/Inf values ---------------------------------------------------------------------


def test_nonfinite_weights_are_refused_naming_the_tensor_then_allowed_and_recorded(tmp_path, small_state, capsys):
    state = {k: v.clone() for k, v in small_state.items()}
    state["blocks.1.mlp.fc1.weight"][0, :3] = torch.tensor([float("nan"), float("nan"), float("inf")])
    state["norm.weight"][5] = float("-inf")
    path = save_safetensors(tmp_path / "nan.safetensors", state)

    code, summary = run_check(tmp_path / "refused", "--weights", str(path))
    error = last_error_line(capsys)
    assert code == 2 and summary is None
    assert "blocks.1.mlp.fc1.weight: 2 NaN, 1 Inf (and 1 more tensors)" in error and "--allow-nonfinite-weights" in error

    code, summary = run_check(tmp_path / "allowed", "--weights", str(path), "--allow-nonfinite-weights", "--target", "cpu")
    assert code in (0, 1) and summary["pretrained_used"] is True
    assert summary["weights"]["nonfinite_tensors"] == ["blocks.1.mlp.fc1.weight: 2 NaN, 1 Inf", "norm.weight: 0 NaN, 1 Inf"]
    assert summary["settings"]["weights"]["allow_nonfinite"] is True
    assert any("--allow-nonfinite-weights" in note for note in summary["notes"])


# --- image folder: corrupt, non-image, grayscale, CMYK, 16-bit, larger than 10k x 10k ------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming width x height, with almost no pixel data: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def hostile_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (180, 200, 3), dtype=np.uint8), "RGB").save(folder / "a_rgb.png")
    Image.fromarray(rng.integers(0, 255, (170, 190), dtype=np.uint8), "L").save(folder / "b_gray.png")
    Image.fromarray(rng.integers(0, 255, (170, 190, 4), dtype=np.uint8), "CMYK").save(folder / "c_cmyk.jpg")
    gradient = np.tile(np.linspace(0, 65535, 200).astype(np.uint16), (180, 1))
    Image.fromarray(gradient).save(folder / "d_16bit.png")
    Image.fromarray(rng.integers(0, 255, (180, 200, 3), dtype=np.uint8), "RGB").save(folder / "e_cut.jpg")
    whole = (folder / "e_cut.jpg").read_bytes()
    (folder / "e_cut.jpg").write_bytes(whole[: len(whole) // 3])  # a download cut short
    (folder / "f_notes.txt").write_text("not an image")
    (folder / "g_fake.png").write_bytes(os.urandom(512))
    (folder / "h_empty.jpg").write_bytes(b"")
    png_header_only(folder / "i_bomb.png", 10_001, 10_001)  # above the 10000 x 10000 limit
    png_header_only(folder / "j_megabomb.png", 60_000, 60_000)  # above PIL's own DecompressionBombError limit
    return folder


def test_hostile_image_folder_skips_and_lists_bad_files_and_converts_modes_as_timm(hostile_folder):
    from timm.data import create_transform

    input_set = inputs.images(InputSpec(source=str(hostile_folder), num_samples=11), TEST_VIT_CONFIG, "x")
    assert input_set.sources[:5] == ("a_rgb.png", "b_gray.png", "c_cmyk.jpg", "d_16bit.png", "a_rgb.png")
    skipped = dict(entry.split(": ", 1) for entry in input_set.skipped)
    assert set(skipped) == {"e_cut.jpg", "f_notes.txt", "g_fake.png", "h_empty.jpg", "i_bomb.png", "j_megabomb.png"}
    assert skipped["e_cut.jpg"].startswith("unreadable image (OSError: image file is truncated")
    assert skipped["f_notes.txt"] == skipped["g_fake.png"] == skipped["h_empty.jpg"] == "not an image PIL can read"
    assert skipped["i_bomb.png"].startswith("too large (10001x10001 pixels); the limit is 100,000,000 pixels")
    assert skipped["j_megabomb.png"].startswith("too large (Image size (3600000000 pixels) exceeds limit")

    transform = create_transform(**TEST_VIT_CONFIG)
    for index, name in ((1, "b_gray.png"), (2, "c_cmyk.jpg")):  # exactly timm's Image.convert("RGB")
        with Image.open(hostile_folder / name) as image:
            assert torch.equal(input_set.tensors["x"][index], transform(image.convert("RGB")))
    # 16-bit: scaled to 8 bits (PIL's convert would clip every value above 255 to white)
    eight_bit = Image.fromarray(np.rint(np.asarray(Image.open(hostile_folder / "d_16bit.png")) / 257).astype(np.uint8), "L")
    assert torch.allclose(input_set.tensors["x"][3], transform(eight_bit.convert("RGB")), atol=1e-6)
    assert input_set.tensors["x"][3].std() > 0.3  # a gradient, not a white page
    assert input_set.preprocessing["converted_to_rgb"] == [
        "b_gray.png: L to RGB", "c_cmyk.jpg: CMYK to RGB", "d_16bit.png: I;16 scaled to 8 bits, then RGB"]


def test_limit_is_ours_not_pils_warning_threshold(tmp_path):
    """9500 x 9500 is above PIL's DecompressionBombWarning threshold but within ours: it is decoded (here
    it then fails as truncated), and PIL's warning does not become an error."""
    png_header_only(tmp_path / "big.png", 9500, 9500)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "ok.png")
    with _no_bomb_warning():
        input_set = inputs.images(InputSpec(source=str(tmp_path), num_samples=1), TEST_VIT_CONFIG, "x")
    assert input_set.sources == ("ok.png",)
    assert input_set.skipped[0].startswith("big.png: unreadable image") and "too large" not in input_set.skipped[0]


class _no_bomb_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not [w for w in self.caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_folder_with_nothing_readable_is_an_error_saying_why(hostile_folder, tmp_path, capsys):
    for good in ("a_rgb.png", "b_gray.png", "c_cmyk.jpg", "d_16bit.png"):
        (hostile_folder / good).unlink()
    with pytest.raises(InputError, match=r"no readable image among 6 files .*e_cut\.jpg: unreadable image"):
        inputs.images(InputSpec(source=str(hostile_folder)), TEST_VIT_CONFIG, "x")
    code, summary = run_check(tmp_path / "out", "--inputs", str(hostile_folder))
    assert code == 2 and summary is None and "no readable image" in last_error_line(capsys)


def test_hostile_folder_end_to_end_lists_skipped_files_in_the_summary(hostile_folder, tmp_path):
    code, summary = run_check(tmp_path / "out", "--inputs", str(hostile_folder), "--num-samples", "6", "--target", "cpu")
    assert code == 0
    assert summary["inputs"]["sources"] == ["a_rgb.png", "b_gray.png", "c_cmyk.jpg", "d_16bit.png", "a_rgb.png", "b_gray.png"]
    assert len(summary["inputs"]["skipped"]) == 6 and summary["inputs"]["preprocessing"]["converted_to_rgb"]
    assert "i_bomb.png" in (tmp_path / "out" / "report.md").read_text()


# --- target produces NaN/Inf -------------------------------------------------------------------------


class NonFiniteBackend(EagerBackend):
    """fp16 overflow as it shows: NaN in two logits of sample 1, Inf in one feature of sample 2."""

    def run(self, batch):
        outputs = {name: t.clone() for name, t in super().run(batch).items()}
        outputs["logits"][1, 5] = outputs["logits"][1, 7] = float("nan")
        outputs["features"][2, 0] = float("inf")
        return outputs


class AllNaNBackend(EagerBackend):
    def run(self, batch):
        return {name: torch.full_like(t, float("nan")) for name, t in super().run(batch).items()}


def test_nonfinite_target_outputs_fail_with_counts_and_samples_never_a_crash(tmp_path, monkeypatch):
    substitute(monkeypatch, {"cpu/fp16": NonFiniteBackend, "cpu/bf16": AllNaNBackend})
    code, summary = run_check(tmp_path / "out", "--num-samples", "4", "--batch-size", "4",
                              "--target", "cpu/fp16", "--target", "cpu/bf16", "--target", "cpu")
    some, every, fine = summary["targets"]
    assert code == 1 and fine["status"] == "PASS"
    assert some["status"] == "FAIL" and every["status"] == "FAIL"
    assert "logits: 2 NaN and 0 Inf in the target where the reference is finite (samples 1)" in some["verdict"]["failures"]
    assert "features: 0 NaN and 1 Inf in the target where the reference is finite (samples 2)" in some["verdict"]["failures"]
    logits = next(c for c in some["comparisons"] if c["name"] == "logits")
    assert logits["target_nonfinite"] == {"nan": 2, "inf": 0} and logits["nonfinite_samples"] == [1]
    assert "logits: no element is finite on both sides" in every["verdict"]["failures"]
    assert all((tmp_path / "out" / name).stat().st_size > 0 for name in ("report.md", "report.html", "accuracy_compare.log"))


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


# --- target hangs ------------------------------------------------------------------------------------


class HangingBackend(EagerBackend):
    """A forward that does not come back (until the test lets it, so no thread outlives the test)."""

    release = threading.Event()

    def run(self, batch):
        HangingBackend.release.wait(60)
        return super().run(batch)


def test_hanging_target_ends_as_timed_out_and_the_rest_continues(tmp_path, monkeypatch):
    # 3 s: the limit bounds the reference and the other target too, which need a fraction of it
    substitute(monkeypatch, {"cpu/fp16": HangingBackend})
    HangingBackend.release.clear()
    try:
        code, summary = run_check(tmp_path / "out", "--target", "cpu/fp16", "--target", "cpu", "--target-timeout", "3")
    finally:
        HangingBackend.release.set()  # the abandoned run wakes up and ends at its next progress report
    hung, fine = summary["targets"]
    assert code == 1 and fine["status"] == "PASS"
    assert hung["status"] == "ERROR" and hung["error"].startswith("timed out after 3 s (--target-timeout)")
    assert summary["settings"]["target_timeout_s"] == 3.0


def test_default_target_timeout_is_generous():
    from portproof.config import CheckConfig

    assert CheckConfig().target_timeout_s >= 600


STUCK_SCRIPT = """
import sys, threading
from portproof import cli
from portproof.backends import registry
from portproof.backends.torch_eager import EagerBackend

class Stuck(EagerBackend):
    def run(self, batch):
        print("stuck", flush=True)
        threading.Event().wait()  # a driver call that never returns

original = registry.create
registry.create = lambda spec: Stuck(spec) if spec.label == "cpu/fp16" else original(spec)
sys.exit(cli.main(sys.argv[1:]))
"""


def run_stuck(tmp_path: Path, *args: str, **popen) -> subprocess.Popen:
    script = tmp_path / "stuck.py"
    script.write_text(STUCK_SCRIPT)
    return subprocess.Popen([sys.executable, str(script), "check", SMALL_MODEL, "--out", str(tmp_path / "out"), *FAST,
                             "--target", "cpu/fp16", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_a_process_with_a_forever_stuck_target_still_exits(tmp_path):
    process = run_stuck(tmp_path, "--target", "cpu", "--target-timeout", "3")
    stdout, stderr = process.communicate(timeout=300)  # a guard against a hang, not a measurement
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert process.returncode == 1, stderr
    assert [t["status"] for t in summary["targets"]] == ["ERROR", "PASS"]
    assert summary["targets"][0]["error"].startswith("timed out after 3 s")


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
    process = run_stuck(tmp_path)
    watchdog = threading.Timer(300, process.kill)  # a guard against a hang, not a measurement
    watchdog.start()
    try:
        assert process.stdout.readline().strip() == "stuck"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate()
    finally:
        watchdog.cancel()
    assert process.returncode == 130 and "portproof: interrupted" in stderr
    assert_previous_intact(tmp_path / "out")


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


# --- two runs writing to the same --out at once ------------------------------------------------------


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


# --- strings from the model or the user in the HTML and Markdown reports ------------------------------

HOSTILE = "<script>alert(1)</script>"
HOSTILE_IMG = '<img src=x onerror="alert(2)">'
# Ways out of Markdown's code spans and fences, and into a raw HTML block (a blank line, then a tag)
HOSTILE_TICKS = "`` ` <script>alert(3)</script>"
HOSTILE_LINES = "name\n\n<script>alert(4)</script>\n```\n"


class _Elements(HTMLParser):
    """What a browser would build: the elements and their attributes, and the text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, list]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def assert_rendered_as_text(page: str, *strings: str) -> None:
    elements = _Elements(page)
    assert not [tag for tag, _ in elements.tags if tag == "script"]
    assert not [(tag, name) for tag, attrs in elements.tags for name, _ in attrs if name.lower().startswith("on")]
    text = "".join(elements.text)
    for string in strings:
        assert string in text, string


def assert_markdown_inert(markdown: str, *strings: str) -> None:
    """Rendered as CommonMark with GitHub's tables and raw HTML allowed (the most a viewer would do), the
    page has no script and no event handler, and shows each string as text (line breaks become spaces)."""
    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    assert_rendered_as_text(page)
    text = " ".join("".join(_Elements(page).text).split())
    for string in strings:
        assert " ".join(string.split()) in text, string


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_hostile_strings_in_a_saved_summary_render_as_text(finished_run, tmp_path, lang):
    """`portproof report` on a summary.json from anywhere: every string a person or a model can set."""
    summary = json.loads((finished_run / "summary.json").read_text())
    summary["model"]["requested"] = f"vit{HOSTILE_TICKS}"
    summary["model"]["architecture"] = HOSTILE_LINES
    summary["reference"]["label"] = HOSTILE
    summary["weights"]["path"] = f"/tmp/{HOSTILE_TICKS}/model.safetensors"
    summary["weights"]["sha256"], summary["weights"]["file_size"] = HOSTILE_LINES, 1
    summary["weights"]["searched"] = [f"{HOSTILE_IMG}: absent"]
    summary["inputs"]["sources"] = [HOSTILE, HOSTILE_IMG]
    summary["inputs"]["skipped"] = [f"{HOSTILE_IMG}: not an image PIL can read"]
    summary["notes"] = [HOSTILE]
    summary["environment"]["command_line"] = f"portproof check {HOSTILE_LINES}"
    summary["environment"]["cpu"] = HOSTILE_IMG
    summary["environment"]["python"] = summary["environment"]["portproof"] = HOSTILE_LINES
    summary["environment"]["packages"]["torch"] = HOSTILE
    summary["weights"]["source_kind"] = summary["inputs"]["kind"] = HOSTILE_LINES
    target = summary["targets"][0]
    target["label"] = HOSTILE
    target["description"]["device_name"] = HOSTILE_IMG
    summary["scoring_target"] = HOSTILE
    out = tmp_path / "hostile"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(summary))
    assert cli.main(["report", str(out), "--lang", lang]) == 0
    assert_rendered_as_text((out / "report.html").read_text(), HOSTILE, HOSTILE_IMG, HOSTILE_TICKS)
    assert_markdown_inert((out / "report.md").read_text(), HOSTILE, HOSTILE_IMG, HOSTILE_TICKS)


class HostileErrorBackend(EagerBackend):
    def run(self, batch):
        raise RuntimeError(f"driver says {HOSTILE_IMG}")


def test_hostile_file_names_and_error_messages_of_a_real_run_render_as_text(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(folder / "<script>alert(1)`.png")  # no "/" in a file name
    (folder / "<img src=x onerror=alert(2)>.txt").write_text("not an image")
    substitute(monkeypatch, {"cpu/fp16": HostileErrorBackend})
    code, summary = run_check(tmp_path / "out", "--inputs", str(folder), "--target", "cpu", "--target", "cpu/fp16")
    assert code == 1 and summary["targets"][1]["error"] == f"RuntimeError: driver says {HOSTILE_IMG}"
    for page in ("report.html", "report.md"):
        check = assert_rendered_as_text if page.endswith("html") else assert_markdown_inert
        check((tmp_path / "out" / page).read_text(), "<script>alert(1)`.png", "<img src=x onerror=alert(2)>.txt", HOSTILE_IMG)


# --- unknown option values, negative iterations, batch size 0, threshold outside [0, 1] ----------------


@pytest.mark.parametrize("args, message", [
    (["--iters", "0"], "--iters must be at least 1, got 0"),
    (["--iters", "-5"], "--iters must be at least 1, got -5"),
    (["--warmup", "-1"], "--warmup must be at least 0, got -1"),
    (["--num-samples", "0"], "--num-samples must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--batch-size", "-2"], "--batch-size must be at least 1, got -2"),
    (["--min-cosine", "-0.1"], "--min-cosine must be between 0 and 1, got -0.1"),
    (["--min-cosine", "nan"], "--min-cosine must be between 0 and 1, got nan"),
    (["--max-rel-l2", "2"], "--max-rel-l2 must be between 0 and 1, got 2.0"),
    (["--target-timeout", "0"], "--target-timeout must be a number of seconds above 0, got 0.0"),
    (["--target-timeout", "-3"], "--target-timeout must be a number of seconds above 0, got -3.0"),
    (["--target-timeout", "inf"], "--target-timeout must be a number of seconds above 0, got inf"),
    (["--target", "cpu/int4"], "unknown dtype 'int4' in target 'cpu/int4'; choose one of: fp32, fp16, bf16"),
    (["--target", "tpu"], "unknown device 'tpu' in target 'tpu'; choose one of: cpu, cuda, npu, xpu, mps"),
    (["--reference", "trt@cpu"], "unknown backend 'trt' in target 'trt@cpu'; choose one of: eager, compile, onnxruntime"),
])
def test_bad_option_values_name_the_option_and_the_allowed_range(tmp_path, capsys, args, message):
    code, summary = run_check(tmp_path / "out", *args)
    error = last_error_line(capsys)
    assert code == 2 and summary is None and error.startswith("portproof: error:") and message in error
    assert not (tmp_path / "out").exists()  # refused before anything was created


@pytest.mark.parametrize("args, message", [
    (["--lang", "fr"], "argument --lang: invalid choice: 'fr'"),
    (["--num-samples", "many"], "argument --num-samples: invalid int value: 'many'"),
    (["--target-timeout", "soon"], "argument --target-timeout: invalid float value: 'soon'"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_unparseable_option_values_exit_2_naming_the_option(capsys, args, message):
    with pytest.raises(SystemExit) as caught:
        cli.main(["check", SMALL_MODEL, *args])
    error = capsys.readouterr().err.strip()
    assert caught.value.code == 2 and error.startswith("portproof: error:") and message in error


# --- run_with_deadline itself ------------------------------------------------------------------------


def test_deadline_reraises_the_runs_own_exceptions_in_the_caller():
    with pytest.raises(KeyboardInterrupt):
        faults.run_with_deadline(lambda report: (_ for _ in ()).throw(KeyboardInterrupt()), 30)
    with pytest.raises(ValueError, match="bad"):
        faults.run_with_deadline(lambda report: (_ for _ in ()).throw(ValueError("bad")), 30)
    assert faults.run_with_deadline(lambda report: 42, 30) == 42


def test_an_abandoned_run_cannot_report_progress_any_more():
    heard, wake, ended = [], threading.Event(), threading.Event()

    def slow(report):
        try:
            report("started")
            wake.wait(30)
            report("late")  # after the deadline: must not reach the display
        finally:
            ended.set()

    with pytest.raises(faults.TimedOut):
        faults.run_with_deadline(slow, 0.2, lambda message, *rest: heard.append(message))
    wake.set()
    assert ended.wait(30) and "late" not in heard
