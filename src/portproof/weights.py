"""Finding a model's pretrained weights, loading them strictly, and recording where they came from.

Search order for `--weights auto` (README, "Weights"): an explicit path, ModelScope-style caches, the
Hugging Face hub cache, a hub download (unless offline), and last a seeded random initialisation that
every report announces. Pickled checkpoints are read with `torch.load(weights_only=True)`, which executes
nothing; only with `trust_pickle` is a pickle that it refuses unpickled in full (and that is recorded).
A checkpoint is refused when it does not fit the model (shapes, keys) or holds NaN/Inf values, unless the
matching `allow_*` setting says to load it anyway, which is then recorded too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .config import WeightsSpec
from .errors import WeightsError, describe, first_line
from .results.check import WeightsProvenance

CHECKPOINT_FILES = ("model.safetensors", "pytorch_model.bin")
PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt")


@dataclass
class _Search:
    """The places looked at so far, kept for the summary and for the error when nothing is found."""

    places: list[str] = field(default_factory=list)

    def note(self, place: str, outcome: str) -> None:
        self.places.append(f"{place}: {outcome}")


def load_weights(model: nn.Module, full_name: str, hub_repo: str | None, spec: WeightsSpec) -> WeightsProvenance:
    """Find the checkpoint per `spec`, load it into `model` and say where it came from."""
    if spec.source == "random":
        return WeightsProvenance("random", False, False, hub_repo=hub_repo, random_seed=spec.seed, searched=("--weights random",))
    if spec.source != "auto":
        path = checkpoint_in(Path(spec.source).expanduser())
        return apply_checkpoint(model, path, "file", True, hub_repo, spec, searched=(f"{spec.source}: found",))

    search = _Search()
    owner, name = (hub_repo or f"timm/{full_name}").split("/", 1)
    for root in modelscope_roots(spec):
        for directory in modelscope_dirs(Path(root), owner, name):
            found = first_checkpoint(directory)
            search.note(str(directory), "found" if found else "absent")
            if found:
                return apply_checkpoint(model, found, "modelscope-cache", True, hub_repo, spec, tuple(search.places))
    if hub_repo:
        cache = hf_cache_dir()
        found = first_in_hf_cache(hub_repo, cache)
        search.note(f"Hugging Face cache {cache} ({hub_repo})", "found" if found else "absent")
        if found:
            return apply_checkpoint(model, found, "hf-cache", True, hub_repo, spec, tuple(search.places))
        if spec.offline or _env_true("HF_HUB_OFFLINE"):
            search.note("download", "skipped (offline)")
        else:
            downloaded, outcome = download(hub_repo, cache, spec.download_timeout_s)
            search.note(f"download {hub_repo}", outcome)
            if downloaded:
                return apply_checkpoint(model, downloaded, "hf-download", False, hub_repo, spec, tuple(search.places))
    else:
        search.note("Hugging Face hub", f"no pretrained repository is registered for {full_name}")
    if spec.require_pretrained:
        raise WeightsError(
            f"no pretrained weights found for {full_name} (looked in: {'; '.join(search.places)}); "
            "give a checkpoint path or a cache root (WeightsSpec.source, cache_dirs), or do not require pretrained weights",
            cli_hint="pass --weights PATH or --weights-cache DIR, or drop --require-pretrained")
    return WeightsProvenance(
        "random", False, False, hub_repo=hub_repo, random_seed=spec.seed, searched=tuple(search.places)
    )


def modelscope_roots(spec: WeightsSpec) -> list[str]:
    roots = list(spec.cache_dirs)
    roots += [p for p in os.environ.get("PORTPROOF_WEIGHTS_CACHE", "").split(os.pathsep) if p]
    if os.environ.get("MODELSCOPE_CACHE"):
        roots += [os.environ["MODELSCOPE_CACHE"], os.path.join(os.environ["MODELSCOPE_CACHE"], "hub")]
    roots.append(os.path.expanduser("~/.cache/modelscope/hub"))
    return list(dict.fromkeys(roots))  # keep order, drop repeats


def modelscope_dirs(root: Path, owner: str, name: str) -> list[Path]:
    """ModelScope writes each '.' of a repository name as '___'; older caches keep it."""
    names = dict.fromkeys([name.replace(".", "___"), name])
    return [root / sub / owner / n for sub in ("", "models") for n in names]


def first_checkpoint(directory: Path) -> Path | None:
    return next((directory / f for f in CHECKPOINT_FILES if (directory / f).is_file()), None)


def checkpoint_in(path: Path) -> Path:
    """An explicit --weights PATH: a checkpoint file, or a directory holding one."""
    if path.is_dir():
        found = first_checkpoint(path)
        if found is None:
            raise WeightsError(f"{path} holds neither {' nor '.join(CHECKPOINT_FILES)}; give the checkpoint file's path",
                               cli_hint="--weights FILE")
        return found
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; check the path, or let portproof search the caches "
                           "(weights source auto)", cli_hint="--weights auto")
    return path


def hf_cache_dir() -> str:
    """Read at call time (huggingface_hub reads its environment once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return os.path.join(home, "hub")


def first_in_hf_cache(hub_repo: str, cache: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in CHECKPOINT_FILES:
        found = try_to_load_from_cache(hub_repo, filename, cache_dir=cache)
        if isinstance(found, str):  # otherwise None, or a marker that the file is known not to exist
            return Path(found)
    return None


def download(hub_repo: str, cache: str, timeout_s: float) -> tuple[Path | None, str]:
    """Try the hub. huggingface_hub retries a refused connection for about 20 s, so reachability is
    probed first: an unreachable network costs at most `timeout_s`."""
    from huggingface_hub import hf_hub_download

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    unreachable = _unreachable(endpoint, timeout_s)
    if unreachable:
        return None, f"skipped: {endpoint} unreachable ({unreachable})"
    try:
        path = hf_hub_download(hub_repo, CHECKPOINT_FILES[0], cache_dir=cache, etag_timeout=timeout_s, endpoint=endpoint)
        return Path(path), "downloaded"
    except Exception as error:  # network, auth, missing file: all mean "not from here"
        return None, f"failed ({describe(error)})"


def _unreachable(endpoint: str, timeout_s: float) -> str | None:
    """Why a TCP connection to the endpoint (or the HTTPS proxy in front of it) cannot be made, or None."""
    import socket
    from urllib.parse import urlsplit

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlsplit(proxy if proxy and endpoint.startswith("https") else endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return None
    except OSError as error:
        return error.strerror or type(error).__name__


def read_checkpoint(path: Path, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], bool]:
    """The state dict, read without executing anything the file contains, and whether it had to be unpickled
    in full instead (only ever with `trust_pickle`, see `read_pickle`)."""
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty; download it again")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), False
        except Exception as error:
            raise WeightsError(
                f"weights file {path} is not a readable safetensors file ({first_line(error) or type(error).__name__}); it may be truncated: download it again"
            ) from None
    if path.suffix in PICKLE_SUFFIXES:
        return read_pickle(path, trust_pickle)
    raise WeightsError(f"weights file {path}: unknown format {path.suffix!r}; use .safetensors, .bin, .pth, .pt or .ckpt")


def read_pickle(path: Path, trust_pickle: bool) -> tuple[dict[str, torch.Tensor], bool]:
    """`torch.load(weights_only=True)` first, always; a pickle it refuses is unpickled in full only when
    `trust_pickle` says so, since that runs whatever code the file names."""
    try:
        return _unwrap(torch.load(str(path), map_location="cpu", weights_only=True), path), False
    except WeightsError:
        raise
    except Exception as error:
        if not trust_pickle:
            raise WeightsError(
                f"weights file {path} cannot be read safely ({first_line(error) or type(error).__name__}); convert it to .safetensors, "
                "or allow full unpickling (WeightsSpec.trust_pickle) if you trust whoever made it (unpickling it can run any code)",
                cli_hint="--trust-pickle") from None
    try:
        return _unwrap(torch.load(str(path), map_location="cpu", weights_only=False), path), True
    except WeightsError:
        raise
    except Exception as error:
        raise WeightsError(f"weights file {path} cannot be unpickled ({describe(error)})") from None


def apply_checkpoint(
    model: nn.Module, path: Path, kind: str, local: bool, hub_repo: str | None, spec: WeightsSpec, searched: tuple[str, ...]
) -> WeightsProvenance:
    state, pickle_trusted = read_checkpoint(path, spec.trust_pickle)
    expected = model.state_dict()
    for key, wanted in expected.items():  # in the model's order: the first mismatch is the earliest layer's
        if key in state and tuple(state[key].shape) != tuple(wanted.shape):
            raise WeightsError(
                f"weights file {path} does not fit this model: {key} has shape {list(state[key].shape)} in the file "
                f"and {list(wanted.shape)} in the model; is it the checkpoint of another architecture or num_classes?"
            )
    missing = tuple(k for k in expected if k not in state)
    unexpected = tuple(k for k in state if k not in expected)
    if (missing or unexpected) and not spec.allow_partial:
        raise WeightsError(
            f"weights file {path} does not match the model: {len(missing)} missing keys {_first_keys(missing)}, "
            f"{len(unexpected)} unexpected keys {_first_keys(unexpected)}; allow a partial load (WeightsSpec.allow_partial) "
            "to load it anyway", cli_hint="--allow-partial-weights")
    nonfinite = nonfinite_tensors(state)
    if nonfinite and not spec.allow_nonfinite:
        more = f" (and {len(nonfinite) - 1} more tensors)" if len(nonfinite) > 1 else ""
        raise WeightsError(
            f"weights file {path} holds non-finite values: {nonfinite[0]}{more}; a model with them computes NaN or "
            "garbage on every port alike, so the comparison would prove nothing; allow non-finite weights "
            "(WeightsSpec.allow_nonfinite) to load it anyway", cli_hint="--allow-nonfinite-weights")
    model.load_state_dict(state, strict=False)
    return WeightsProvenance(
        source_kind=kind,
        pretrained_used=True,
        local_weight_used=local,
        path=str(path.resolve()),
        file_size=path.stat().st_size,
        sha256=sha256_of(path),
        hub_repo=hub_repo,
        missing_keys=missing,
        unexpected_keys=unexpected,
        partial_allowed=spec.allow_partial,
        pickle_trusted=pickle_trusted,
        nonfinite_tensors=nonfinite,
        searched=searched,
    )


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """"<key>: <n> NaN, <m> Inf" for each floating-point tensor holding NaN or Inf, in the file's order."""
    found = []
    for key, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            nan = int(torch.isnan(tensor).sum())
            found.append(f"{key}: {nan} NaN, {tensor.numel() - nan - int(torch.isfinite(tensor).sum())} Inf")
    return tuple(found)


def risk_notes(provenance: WeightsProvenance) -> list[str]:
    """What the reports must say about weights loaded despite a refusal (--trust-pickle, --allow-*)."""
    notes = []
    if provenance.pickle_trusted:
        notes.append(f"the checkpoint {provenance.path} was unpickled in full (--trust-pickle): weights_only loading "
                     "refused it, and unpickling can run code")
    if provenance.nonfinite_tensors:
        notes.append(f"the checkpoint holds NaN or Inf values in {len(provenance.nonfinite_tensors)} tensors "
                     f"(--allow-nonfinite-weights): {'; '.join(provenance.nonfinite_tensors[:3])}"
                     + (" ..." if len(provenance.nonfinite_tensors) > 3 else ""))
    if provenance.missing_keys or provenance.unexpected_keys:
        notes.append(f"the checkpoint does not match the model (--allow-partial-weights): {len(provenance.missing_keys)} "
                     f"missing keys {_first_keys(provenance.missing_keys)}, {len(provenance.unexpected_keys)} unexpected "
                     f"keys {_first_keys(provenance.unexpected_keys)}; the missing ones keep the model's initial values")
    return notes


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    """Training checkpoints often nest the weights under 'state_dict' or 'model'."""
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} holds no state dict of tensors; save model.state_dict() instead")
    return state


def _first_keys(keys: tuple[str, ...], limit: int = 5) -> str:
    if not keys:
        return ""
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return "(" + ", ".join(keys[:limit]) + more + ")"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
