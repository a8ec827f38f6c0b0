"""Weight discovery in every on-disk layout users have, strict loading, and provenance; then the hostile and
broken checkpoints of issue 4 as a user meets them through `portproof check --weights`."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import os
import platform
import struct
import warnings
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from portproof import cli, models, weights
from portproof.config import ModelSpec, WeightsSpec
from portproof.errors import WeightsError
from portproof.report.load import load_directory
from portproof.results import RANDOM_WEIGHTS_BANNER, CheckResult, WeightsProvenance

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
    # in the head only, so that the reference still computes finite logits elsewhere and the features
    state["head.weight"][5, :3] = torch.tensor([float("nan"), float("nan"), float("inf")])
    state["head.bias"][7] = float("-inf")
    path = write_safetensors(tmp_path / "nan.safetensors", state)

    code, summary = run_check(tmp_path / "refused", "--weights", str(path))
    error = last_error_line(capsys)
    assert code == 2 and summary is None
    # in the file's order: safetensors stores the keys sorted
    assert "head.bias: 0 NaN, 1 Inf (and 1 more tensors)" in error and "--allow-nonfinite-weights" in error

    code, summary = run_check(tmp_path / "allowed", "--weights", str(path), "--allow-nonfinite-weights", "--target", "cpu")
    assert code in (0, 1) and summary["pretrained_used"] is True
    assert summary["weights"]["nonfinite_tensors"] == ["head.bias: 0 NaN, 1 Inf", "head.weight: 2 NaN, 1 Inf"]
    assert summary["settings"]["weights"]["allow_nonfinite"] is True
    assert any("--allow-nonfinite-weights" in note for note in summary["notes"])


# === issue 9: no false claims from weights, the layouts training code writes, errors that name the cause ===


def parameter_share(state: dict, names: set[str]) -> float:
    """The share of test_vit's parameters, by element count, that the keys in `names` cover."""
    sizes = {name: p.numel() for name, p in timm.create_model(SMALL_MODEL).named_parameters()}
    return sum(n for name, n in sizes.items() if name in names) / sum(sizes.values())


def head_and_norm_only(small_state: dict) -> dict:
    """Far under half of the model: the classifier head and the final norm."""
    return {k: v for k, v in small_state.items() if k.startswith(("head.", "norm."))}


def test_loaded_share_is_recorded_and_under_half_is_not_pretrained(tmp_path, small_state):
    state = head_and_norm_only(small_state)
    path = write_safetensors(tmp_path / "head.safetensors", state)
    provenance = load(source=str(path), allow_partial=True, seed=3).provenance
    assert provenance.loaded_share == pytest.approx(parameter_share(small_state, set(state)))
    assert provenance.loaded_share < 0.5
    assert provenance.pretrained_used is False and provenance.source_kind == "file" and provenance.random_seed == 3
    accepted = load(source=str(path), allow_partial=True, accept_partial_as_pretrained=True).provenance
    assert accepted.pretrained_used is True and accepted.loaded_share == provenance.loaded_share


def test_a_partial_load_over_half_stays_pretrained_with_its_share(tmp_path, small_state):
    state = {k: v for k, v in small_state.items() if not k.startswith("blocks.0.")}
    provenance = load(source=str(write_safetensors(tmp_path / "most.safetensors", state)), allow_partial=True).provenance
    assert 0.5 < provenance.loaded_share < 1
    assert provenance.loaded_share == pytest.approx(parameter_share(small_state, set(state)))
    assert provenance.pretrained_used is True
    complete = load(source=str(write_safetensors(tmp_path / "all.safetensors", small_state))).provenance
    assert complete.loaded_share == 1.0


def result_with(weights: WeightsProvenance) -> CheckResult:
    return CheckResult(config=None, model=None, weights=weights, inputs=None, reference=None, targets=(),
                       environment={}, started_at="", finished_at="", duration_s=0.0)


@pytest.mark.parametrize("weights, random", [
    (WeightsProvenance("random", False, False, random_seed=0), True),
    (WeightsProvenance("file", False, True, loaded_share=0.2), True),  # under half
    (WeightsProvenance("file", True, True, loaded_share=0.2), False),  # under half, accepted as pretrained
    (WeightsProvenance("file", True, True, loaded_share=0.8), False),
    (WeightsProvenance("as-given", False, False, factory="pkg.mod:make"), False),  # the caller's own weights
])
def test_random_weights_banner_follows_what_was_loaded(weights, random):
    assert result_with(weights).random_weights is random


def test_a_mostly_missing_checkpoint_gets_the_random_weights_banner_unless_accepted(tmp_path, small_state):
    path = write_safetensors(tmp_path / "head.safetensors", head_and_norm_only(small_state))
    share = parameter_share(small_state, set(head_and_norm_only(small_state)))

    code, summary = run_check(tmp_path / "partial", "--weights", str(path), "--allow-partial-weights", "--target", "cpu")
    assert code == 0 and summary["pretrained_used"] is False and summary["warning"] == RANDOM_WEIGHTS_BANNER
    assert summary["weights"]["source_kind"] == "file" and summary["weights"]["loaded_share"] == pytest.approx(share)
    note = next(note for note in summary["notes"] if "--allow-partial-weights" in note)
    assert f"it supplied {share:.1%} of the model's parameters" in note and "--accept-partial-as-pretrained" in note
    assert RANDOM_WEIGHTS_BANNER in (tmp_path / "partial" / "report.md").read_text()
    assert load_directory(tmp_path / "partial").random_weights  # and so does `portproof report` on that folder



def test_the_new_weights_flags_reach_the_settings():
    args = cli.build_parser().parse_args(["check", "--accept-partial-as-pretrained", "--allow-nonfloat-weights"])
    spec = cli.config_from_args(args, []).weights
    assert spec.accept_partial_as_pretrained is True and spec.allow_nonfloat is True
    assert cli.config_from_args(cli.build_parser().parse_args(["check"]), []).weights == WeightsSpec()


def prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


@pytest.mark.parametrize("layout, unwrapped", [
    (lambda s: {"model": s, "epoch": 3}, ("nested under 'model'",)),
    (lambda s: {"state_dict_ema": s, "epoch": 3}, ("nested under 'state_dict_ema'",)),
    (lambda s: {"state_dict": prefixed(s, "module.")}, ("nested under 'state_dict'", "prefix 'module.' removed (DDP / torch.compile)")),
    (lambda s: prefixed(s, "module._orig_mod."), ("prefix 'module._orig_mod.' removed (DDP / torch.compile)",)),
    (lambda s: {"state_dict": prefixed(s, "model."), "global_step": 10}, ("nested under 'state_dict'", "prefix 'model.' removed (Lightning)")),
])
def test_training_layouts_are_unwrapped_and_recorded(tmp_path, small_state, layout, unwrapped):
    path = tmp_path / "train.ckpt"
    torch.save(layout(small_state), path)
    loaded = load(source=str(path))
    assert_loaded(loaded, small_state, path, "file")
    assert loaded.provenance.unwrapped == unwrapped and loaded.provenance.loaded_share == 1.0


def test_plain_weights_are_preferred_to_the_ema_copy(tmp_path, small_state):
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in small_state.items()}
    path = tmp_path / "checkpoint-7.pth.tar.pth"
    torch.save({"state_dict": small_state, "state_dict_ema": ema, "epoch": 7}, path)
    loaded = load(source=str(path))
    assert_loaded(loaded, small_state, path, "file")
    assert loaded.provenance.unwrapped == ("nested under 'state_dict' (not used: 'state_dict_ema')",)
    assert "nested under 'state_dict' (not used: 'state_dict_ema')" in " ".join(weights.risk_notes(loaded.provenance))


class HoldsAModel(torch.nn.Module):
    """A network whose own submodule is called `model`: its keys start with `model.` and must stay so."""

    def __init__(self):
        super().__init__()
        self.model = torch.nn.Linear(3, 2)


def test_a_model_prefix_that_is_the_networks_own_is_kept(tmp_path):
    network = HoldsAModel()
    state = {k: torch.full_like(v, 0.5) for k, v in network.state_dict().items()}
    path = write_safetensors(tmp_path / "own.safetensors", state)
    provenance = weights.apply_checkpoint(network, path, "file", True, None, WeightsSpec(source=str(path)), ())
    assert provenance.unwrapped == () and torch.equal(network.model.weight, torch.full((2, 3), 0.5))


def test_a_float16_checkpoint_in_a_float32_model_is_named(tmp_path, small_state):
    half = {k: v.half() if v.is_floating_point() else v for k, v in small_state.items()}
    loaded = load(source=str(write_safetensors(tmp_path / "half.safetensors", half)))
    floating = sum(v.is_floating_point() for v in small_state.values())
    assert loaded.provenance.dtype_conversions == (f"{floating} tensors stored as float16, loaded as float32",)
    assert loaded.provenance.pretrained_used is True
    assert torch.equal(loaded.module.model.state_dict()["head.weight"], half["head.weight"].float())
    assert any("stored as float16, loaded as float32" in note for note in weights.risk_notes(loaded.provenance))


def test_integer_tensors_for_float_parameters_are_refused_then_allowed_and_recorded(tmp_path, small_state, capsys):
    integers = torch.randint(-128, 127, small_state["head.weight"].shape, dtype=torch.int8)
    path = write_safetensors(tmp_path / "int8.safetensors", dict(small_state, **{"head.weight": integers}))

    code, summary = run_check(tmp_path / "refused", "--weights", str(path))
    error = last_error_line(capsys)
    assert code == 2 and summary is None
    assert "head.weight: int8 into float32" in error and "--allow-nonfloat-weights" in error

    code, summary = run_check(tmp_path / "allowed", "--weights", str(path), "--allow-nonfloat-weights", "--target", "cpu")
    assert code in (0, 1) and summary["weights"]["nonfloat_tensors"] == ["head.weight: int8 into float32"]
    assert summary["settings"]["weights"]["allow_nonfloat"] is True
    assert any("--allow-nonfloat-weights" in note for note in summary["notes"])


def test_quantised_tensors_are_refused_then_dequantised_when_allowed(tmp_path, small_state):
    with warnings.catch_warnings():  # torch deprecates its quantised tensors; checkpoints holding them remain
        warnings.simplefilter("ignore")
        quantised = torch.quantize_per_tensor(small_state["head.weight"], 0.01, 0, torch.qint8)
    path = tmp_path / "quantised.pth"
    torch.save(dict(small_state, **{"head.weight": quantised}), path)
    with pytest.raises(WeightsError, match=r"head\.weight: qint8 into float32") as refused:
        load(source=str(path))
    assert refused.value.for_cli().endswith("(--allow-nonfloat-weights)")
    loaded = load(source=str(path), allow_nonfloat=True)
    assert torch.equal(loaded.module.model.head.weight.detach(), quantised.dequantize())
    assert loaded.provenance.nonfloat_tensors == ("head.weight: qint8 into float32",)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.pth", "weights.pt"])
def test_safetensors_bytes_under_a_pickle_name_are_read_as_safetensors(tmp_path, small_state, name):
    path = tmp_path / name
    save_file(small_state, str(path))
    loaded = load(source=str(path))
    assert_loaded(loaded, small_state, path, "file")
    assert loaded.provenance.file_format == "safetensors" and loaded.provenance.pickle_trusted is False
    assert any("holds safetensors data" in note for note in weights.risk_notes(loaded.provenance))


def test_a_pickle_is_recorded_as_one(tmp_path, small_state):
    path = tmp_path / "weights.pth"
    torch.save(small_state, path)
    assert load(source=str(path)).provenance.file_format == "pickle"


@pytest.mark.parametrize("make, kind", [
    (lambda link: link.symlink_to("/dev/zero"), "character device, a link to /dev/zero"),
    (lambda link: os.mkfifo(link), "named pipe"),  # opening one would wait for a writer for ever
])
def test_a_weights_path_that_is_no_regular_file_is_refused_before_reading(tmp_path, capsys, make, kind):
    path = tmp_path / "model.safetensors"
    make(path)
    with pytest.raises(WeightsError, match=f"is not a regular file \\({kind}\\); give the path of a checkpoint file"):
        load(source=str(path))
    with pytest.raises(WeightsError, match="is not a regular file"):  # also when found in a folder
        load(source=str(tmp_path))
    code, summary = run_check(tmp_path / "out", "--weights", str(path))
    assert code == 2 and summary is None and f"{path} is not a regular file" in last_error_line(capsys)
    assert_no_report_files(tmp_path / "out")


# Linux capability numbers and the capget/capset system calls, to drop what lets root read any file.
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
CAPABILITY_SYSCALLS = {"x86_64": (125, 126), "aarch64": (90, 91)}


class _CapabilityHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapabilityData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _set_effective_capabilities(change) -> int:
    """Apply `change` to this thread's effective capability mask; returns the mask before it."""
    getter, setter = CAPABILITY_SYSCALLS[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapabilityHeader(0x20080522, 0), (_CapabilityData * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.syscall(getter, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    before = data[0].effective
    data[0].effective = change(before)
    if libc.syscall(setter, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    return before


@contextlib.contextmanager
def file_permissions_enforced():
    """Root reads any file (CAP_DAC_OVERRIDE): drop that from this thread for a while, so that a file's mode
    bites as it does for any other user; as another user nothing needs doing."""
    if os.geteuid() != 0:
        yield
        return
    if platform.machine() not in CAPABILITY_SYSCALLS:
        pytest.skip(f"running as root on {platform.machine()}: no known way here to make a file unreadable to this process")
    bypass = (1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH)
    try:
        before = _set_effective_capabilities(lambda mask: mask & ~bypass)
    except OSError as error:
        pytest.skip(f"running as root and the file-permission bypass cannot be dropped ({error}): chmod 000 binds no one")
    try:
        yield
    finally:
        _set_effective_capabilities(lambda mask: before)


@pytest.mark.parametrize("name, locked", [
    ("model.safetensors", "file"),
    ("weights.pth", "file"),
    ("weights.pth", "folder"),
])
def test_a_permission_denied_weights_file_says_permission_denied(tmp_path, small_state, capsys, name, locked):
    path = tmp_path / "ckpt" / name
    path.parent.mkdir()
    if name.endswith(".safetensors"):
        save_file(small_state, str(path))
    else:
        torch.save(small_state, path)
    (path if locked == "file" else path.parent).chmod(0)
    try:
        with file_permissions_enforced():
            with pytest.raises(PermissionError):
                open(path, "rb")  # the premise: this process cannot read it
            with pytest.raises(WeightsError) as refused:
                load(source=str(path))
            code, summary = run_check(tmp_path / "out", "--weights", str(path))
            error = last_error_line(capsys)
    finally:
        path.parent.chmod(0o755)
        path.chmod(0o644)
    for message in (str(refused.value), error):
        assert f"{path}: permission denied" in message
        assert not any(wrong in message for wrong in ("does not exist", "download it again", "trust-pickle", "safely"))
    assert code == 2 and summary is None


def test_a_checkpoint_nested_in_itself_is_refused_not_followed_for_ever(tmp_path):
    looped: dict = {"epoch": 1}
    looped["model"] = looped  # pickle keeps the cycle, and weights_only loading rebuilds it
    path = tmp_path / "looped.pth"
    torch.save(looped, path)
    with pytest.raises(WeightsError, match="holds no state dict of tensors"):
        load(source=str(path))
