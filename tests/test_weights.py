"""Weight discovery in every on-disk layout users have, strict loading, and provenance; then the hostile and
broken checkpoints of issue 4 as a user meets them through `portproof check --weights`."""

from __future__ import annotations

import argparse
import hashlib
import os
import struct
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from portproof import models
from portproof.config import ModelSpec, WeightsSpec
from portproof.errors import WeightsError

from conftest import SMALL_MODEL, SMALL_REPO
from helpers import last_error_line, run_check

MODELSCOPE_NAME = "test_vit___r160_in1k"


def load(**weights) -> models.LoadedModel:
    return models.load(ModelSpec(SMALL_MODEL), WeightsSpec(**weights))


def assert_loaded(loaded: models.LoadedModel, state: dict, path: Path, kind: str, local: bool = True) -> None:
    provenance = loaded.provenance
    assert provenance.source_kind == kind
    assert provenance.pretrained_used is True
    assert provenance.local_weight_used is local
    assert provenance.path == str(path.resolve())
    assert provenance.file_size == path.stat().st_size
    assert provenance.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded_state = loaded.module.model.state_dict()
    assert all(torch.equal(loaded_state[k], v) for k, v in state.items())


def write_safetensors(path: Path, state: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def test_explicit_safetensors_file(tmp_path, small_state):
    path = write_safetensors(tmp_path / "weights.safetensors", small_state)
    assert_loaded(load(source=str(path)), small_state, path, "file")


def test_explicit_directory_with_model_safetensors(tmp_path, small_state):
    path = write_safetensors(tmp_path / "ckpt" / "model.safetensors", small_state)
    assert_loaded(load(source=str(tmp_path / "ckpt")), small_state, path, "file")


def test_explicit_directory_with_pytorch_model_bin(tmp_path, small_state):
    path = tmp_path / "ckpt" / "pytorch_model.bin"
    path.parent.mkdir()
    torch.save(small_state, path)
    assert_loaded(load(source=str(tmp_path / "ckpt")), small_state, path, "file")


def test_training_checkpoint_nested_under_state_dict(tmp_path, small_state):
    path = tmp_path / "epoch_10.pth"
    torch.save({"epoch": 10, "state_dict": small_state}, path)
    assert_loaded(load(source=str(path)), small_state, path, "file")


@pytest.mark.parametrize("subdir", ["", "models"])
def test_modelscope_layout_under_weights_cache(tmp_path, small_state, subdir):
    path = write_safetensors(tmp_path / "cache" / subdir / "timm" / MODELSCOPE_NAME / "model.safetensors", small_state)
    assert_loaded(load(cache_dirs=(str(tmp_path / "nothing-here"), str(tmp_path / "cache"))), small_state, path, "modelscope-cache")


def test_modelscope_layout_from_portproof_weights_cache(tmp_path, small_state, monkeypatch):
    path = write_safetensors(tmp_path / "b" / "timm" / MODELSCOPE_NAME / "model.safetensors", small_state)
    monkeypatch.setenv("PORTPROOF_WEIGHTS_CACHE", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert_loaded(load(), small_state, path, "modelscope-cache")


def test_modelscope_layout_from_modelscope_cache_hub(tmp_path, small_state, monkeypatch):
    path = write_safetensors(tmp_path / "ms" / "hub" / "models" / "timm" / MODELSCOPE_NAME / "model.safetensors", small_state)
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    assert_loaded(load(), small_state, path, "modelscope-cache")


def test_modelscope_default_location_in_home(isolated_environment, small_state):
    root = isolated_environment / ".cache" / "modelscope" / "hub"
    path = write_safetensors(root / "timm" / MODELSCOPE_NAME / "model.safetensors", small_state)
    assert_loaded(load(), small_state, path, "modelscope-cache")


def write_hf_cache(cache: Path, state: dict) -> Path:
    """The hub cache's own layout: blobs, a snapshot per commit, refs/main naming the commit."""
    repo = cache / ("models--" + SMALL_REPO.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = write_safetensors(repo / "snapshots" / commit / "model.safetensors", state)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_hugging_face_hub_cache(isolated_environment, small_state):
    path = write_hf_cache(isolated_environment / "hf-cache", small_state)
    assert_loaded(load(), small_state, path, "hf-cache")


def test_hf_home_is_honoured_when_hf_hub_cache_is_unset(tmp_path, small_state, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    path = write_hf_cache(tmp_path / "hf-home" / "hub", small_state)
    assert_loaded(load(), small_state, path, "hf-cache")


def test_modelscope_cache_wins_over_hub_cache(isolated_environment, tmp_path, small_state):
    write_hf_cache(isolated_environment / "hf-cache", {k: torch.zeros_like(v) for k, v in small_state.items()})
    path = write_safetensors(tmp_path / "ms" / "timm" / MODELSCOPE_NAME / "model.safetensors", small_state)
    assert_loaded(load(cache_dirs=(str(tmp_path / "ms"),)), small_state, path, "modelscope-cache")


def test_nothing_found_falls_back_to_seeded_random_weights_and_lists_places():
    first, second = load(), load()
    provenance = first.provenance
    assert provenance.source_kind == "random" and not provenance.pretrained_used and not provenance.local_weight_used
    assert provenance.path is None and provenance.random_seed == 0
    searched = " | ".join(provenance.searched)
    assert MODELSCOPE_NAME in searched and "Hugging Face cache" in searched
    assert "download timm/test_vit.r160_in1k: skipped" in searched and "unreachable" in searched
    # seeded: the same random model twice
    a, b = first.module.state_dict(), second.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_offline_skips_the_download():
    provenance = load(offline=True).provenance
    assert provenance.searched[-1] == "download: skipped (offline)"


def test_hf_hub_offline_environment_skips_the_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load().provenance.searched[-1] == "download: skipped (offline)"


def test_require_pretrained_turns_random_fallback_into_an_error():
    with pytest.raises(WeightsError, match="no pretrained weights found for test_vit.r160_in1k.*WeightsSpec.source") as info:
        load(offline=True, require_pretrained=True)
    assert "pass --weights PATH or --weights-cache DIR" in info.value.for_cli()  # the CLI's wording of the advice


def test_weights_random_is_recorded_as_a_choice():
    provenance = load(source="random", seed=7).provenance
    assert provenance.source_kind == "random" and provenance.random_seed == 7
    assert provenance.searched == ("--weights random",)


def test_checkpoint_of_another_shape_names_the_first_bad_key(tmp_path, small_state):
    state = dict(small_state, **{"head.weight": torch.zeros(10, small_state["head.weight"].shape[1])})
    path = write_safetensors(tmp_path / "other.safetensors", state)
    with pytest.raises(WeightsError, match=r"head\.weight has shape \[10, 64\] in the file and \[1000, 64\] in the model"):
        load(source=str(path))


def test_missing_and_unexpected_keys_are_refused_then_allowed_and_recorded(tmp_path, small_state):
    state = {k: v for k, v in small_state.items() if k != "norm.bias"}
    state["extra.weight"] = torch.ones(3)
    path = write_safetensors(tmp_path / "partial.safetensors", state)
    with pytest.raises(WeightsError, match=r"1 missing keys \(norm\.bias\), 1 unexpected keys \(extra\.weight\).*allow_partial") as info:
        load(source=str(path))
    assert info.value.for_cli().endswith("(--allow-partial-weights)")
    provenance = load(source=str(path), allow_partial=True).provenance
    assert provenance.missing_keys == ("norm.bias",) and provenance.unexpected_keys == ("extra.weight",)
    assert provenance.partial_allowed and provenance.pretrained_used


@pytest.mark.parametrize("content, problem", [
    (b"", "is empty"),
    (b"this is not a checkpoint\n", "not a readable safetensors file"),
    (None, "not a readable safetensors file"),  # a real file cut in half
])
def test_unreadable_safetensors_is_a_one_line_error(tmp_path, small_state, content, problem):
    path = tmp_path / "model.safetensors"
    if content is None:
        write_safetensors(path, small_state)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=problem) as caught:
        load(source=str(path))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


class _Payload:
    """Unpickling this would create a file: the kind of code a hostile checkpoint runs."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.bin"
    torch.save({"weight": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="cannot be read safely.*convert it to .safetensors"):
        load(source=str(path))
    assert not marker.exists()


def test_missing_weights_path_says_what_to_do(tmp_path):
    with pytest.raises(WeightsError, match="does not exist; check the path"):
        load(source=str(tmp_path / "nope.safetensors"))


def test_directory_without_checkpoint(tmp_path):
    with pytest.raises(WeightsError, match="holds neither model.safetensors nor pytorch_model.bin"):
        load(source=str(tmp_path))


# === `portproof check --weights ...` end to end: one line, exit 2, no report files ===================


def assert_no_report_files(out: Path) -> None:
    assert not any(p.is_file() and not p.name.startswith(".portproof-probe") for p in out.glob("*")), list(out.iterdir())


# --- .bin/.pth checkpoint containing a pickle that would execute code --------------------------------


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
    path = tmp_path / "plain.bin"
    torch.save(small_state, path)
    provenance = load(source=str(path), trust_pickle=True).provenance
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
    write_safetensors(path, small_state)
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
    path = write_safetensors(tmp_path / "other.safetensors", timm.create_model(**other).state_dict())
    code, summary = run_check(tmp_path / "out", "--weights", str(path))
    error = last_error_line(capsys)
    assert code == 2 and summary is None and f"{key} has shape {shapes}" in error and str(path) in error


# --- missing or unexpected keys ---------------------------------------------------------------------


def test_missing_and_unexpected_keys_are_listed_then_allowed_and_recorded(tmp_path, small_state, capsys):
    dropped = [k for k in small_state if k.startswith("blocks.0.")]  # more than five: counts and the first few
    state = {k: v for k, v in small_state.items() if k not in dropped}
    state["extra.weight"] = torch.ones(3)
    path = write_safetensors(tmp_path / "partial.safetensors", state)

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
    path = write_safetensors(tmp_path / "nan.safetensors", state)

    code, summary = run_check(tmp_path / "refused", "--weights", str(path))
    error = last_error_line(capsys)
    assert code == 2 and summary is None
    assert "blocks.1.mlp.fc1.weight: 2 NaN, 1 Inf (and 1 more tensors)" in error and "--allow-nonfinite-weights" in error

    code, summary = run_check(tmp_path / "allowed", "--weights", str(path), "--allow-nonfinite-weights", "--target", "cpu")
    assert code in (0, 1) and summary["pretrained_used"] is True
    assert summary["weights"]["nonfinite_tensors"] == ["blocks.1.mlp.fc1.weight: 2 NaN, 1 Inf", "norm.weight: 0 NaN, 1 Inf"]
    assert summary["settings"]["weights"]["allow_nonfinite"] is True
    assert any("--allow-nonfinite-weights" in note for note in summary["notes"])
