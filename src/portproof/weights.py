"""Finding a model's pretrained weights, loading them strictly, and recording where they came from.

Search order for `--weights auto` (README, "Weights"): an explicit path, ModelScope-style caches, the
Hugging Face hub cache, a hub download (unless offline), and last a seeded random initialisation that
every report announces. Pickled checkpoints are read with `torch.load(weights_only=True)`, which executes
nothing; only with `trust_pickle` is a pickle that it refuses unpickled in full (and that is recorded).
A file is read as what its bytes are (safetensors named `.bin` is read as safetensors), and the layouts
training code writes are unwrapped first (nesting under `state_dict`, `model` or an EMA key; `module.` and
`model.` prefixes). A checkpoint is refused when it does not fit the model (shapes, keys), holds NaN/Inf
values or integer/quantised tensors for floating parameters, unless the matching `allow_*` setting says to
load it anyway, which is then recorded too; one that supplies under half of the model's parameters counts
as random weights unless accepted as pretrained.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .config import WeightsSpec
from .errors import WeightsError, describe, first_line
from .results.check import WeightsProvenance

CHECKPOINT_FILES = ("model.safetensors", "pytorch_model.bin")
PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt")
# Under this share of the model's parameters (by element count) a checkpoint does not make the model pretrained.
PRETRAINED_SHARE = 0.5
# Where training code nests the weights. The plain weights come first: they are what the network was trained
# into and what a `model.state_dict()` export holds. An EMA copy is used only when the checkpoint has no plain
# one (timm's own loader prefers EMA; to compare the EMA weights, save them as a file of their own).
NESTING_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")
LIGHTNING_PREFIX = "model."  # a LightningModule that holds the network as `self.model`
FILE_KINDS = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "named pipe"),
              (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory"))


@dataclass
class _Search:
    """The places looked at so far, kept for the summary and for the error when nothing is found."""

    places: list[str] = field(default_factory=list)

    def note(self, place: str, outcome: str) -> None:
        self.places.append(f"{place}: {outcome}")


@dataclass
class Checkpoint:
    """A checkpoint as read from disk: its state dict, and how it was reached."""

    state: dict[str, torch.Tensor]
    file_format: str  # "safetensors" | "pickle"
    pickle_trusted: bool = False
    unwrapped: tuple[str, ...] = ()


def load_weights(model: nn.Module, full_name: str, hub_repo: str | None, spec: WeightsSpec) -> WeightsProvenance:
    """Find the checkpoint per `spec`, load it into `model` and say where it came from. `model` was built under
    `spec.seed` (models.seeded_build), so the parameters a partial checkpoint lacks keep that seed's values."""
    provenance = _find_and_load(model, full_name, hub_repo, spec)
    if provenance.missing_keys:
        provenance = replace(provenance, random_seed=spec.seed)
    return provenance


def _find_and_load(model: nn.Module, full_name: str, hub_repo: str | None, spec: WeightsSpec) -> WeightsProvenance:
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
    """The first checkpoint in `directory`. An entry that is there but cannot be used (behind a folder this user
    may not read, a link to a device) counts as found, so that reading it names the problem instead of passing
    it over."""
    for name in CHECKPOINT_FILES:
        try:
            os.lstat(directory / name)
            return directory / name
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return directory / name
    return None


def checkpoint_in(path: Path) -> Path:
    """An explicit --weights PATH: a checkpoint file, or a directory holding one."""
    if stat.S_ISDIR(status_of(path).st_mode):
        found = first_checkpoint(path)
        if found is None:
            raise WeightsError(f"{path} holds neither {' nor '.join(CHECKPOINT_FILES)}; give the checkpoint file's path",
                               cli_hint="--weights FILE")
        return found
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
    why = unreachable(endpoint, timeout_s)
    if why:
        return None, f"skipped: {endpoint} unreachable ({why})"
    try:
        path = hf_hub_download(hub_repo, CHECKPOINT_FILES[0], cache_dir=cache, etag_timeout=timeout_s, endpoint=endpoint)
        return Path(path), "downloaded"
    except Exception as error:  # network, auth, missing file: all mean "not from here"
        return None, f"failed ({describe(error)})"


def unreachable(endpoint: str, timeout_s: float) -> str | None:
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


def read_checkpoint(path: Path, trust_pickle: bool = False) -> Checkpoint:
    """The state dict, read without executing anything the file contains (a pickle is unpickled in full only
    with `trust_pickle`, see `read_pickle`), and unwrapped from the nesting training code writes."""
    size = require_regular_file(path)
    if size == 0:
        raise WeightsError(f"weights file {path} is empty; download it again")
    if holds_safetensors(path, size) or path.suffix == ".safetensors":
        return read_safetensors(path)
    if path.suffix in PICKLE_SUFFIXES:
        return read_pickle(path, trust_pickle)
    raise WeightsError(f"weights file {path}: unknown format {path.suffix!r}; use .safetensors, .bin, .pth, .pt or .ckpt")


def require_regular_file(path: Path) -> int:
    """The file's size, once it is known to be a regular file this process can open: a device, a pipe or a
    permission problem is named here, before anything is read (reading /dev/zero never ends)."""
    status = status_of(path)
    if not stat.S_ISREG(status.st_mode):
        raise not_a_regular_file(path, status.st_mode)
    try:
        with open(path, "rb"):
            return status.st_size
    except PermissionError:
        raise permission_denied(path) from None
    except OSError as error:
        raise WeightsError(f"weights file {path} cannot be opened ({error.strerror or describe(error)})") from None


def status_of(path: Path) -> os.stat_result:
    """`os.stat` of the path (symlinks followed), or the error that names why there is none."""
    try:
        status = os.stat(path)
    except PermissionError:
        raise permission_denied(path) from None
    except (FileNotFoundError, NotADirectoryError):
        raise WeightsError(f"weights file {path} does not exist; check the path, or let portproof search the caches "
                           "(weights source auto)", cli_hint="--weights auto") from None
    except OSError as error:
        raise WeightsError(f"weights file {path} cannot be examined ({error.strerror or describe(error)})") from None
    return status


def not_a_regular_file(path: Path, mode: int) -> WeightsError:
    kind = next((name for test, name in FILE_KINDS if test(mode)), "special file")
    target = f", a link to {os.path.realpath(path)}" if os.path.islink(path) else ""
    return WeightsError(f"weights file {path} is not a regular file ({kind}{target}); give the path of a checkpoint file")


def permission_denied(path: Path) -> WeightsError:
    return WeightsError(f"weights file {path}: permission denied (the file, or a folder on its path, is not readable by "
                        "this user); make it readable or copy it somewhere that is")


def holds_safetensors(path: Path, size: int) -> bool:
    """Whether the bytes are safetensors, whatever the name says: an 8-byte little-endian header length that
    fits the file, then a JSON object."""
    if size < 10:
        return False
    with open(path, "rb") as stream:
        head = stream.read(9)
    header_length = int.from_bytes(head[:8], "little")
    return 2 <= header_length <= size - 8 and head[8:9] == b"{"


def read_safetensors(path: Path) -> Checkpoint:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as error:
        raise WeightsError(
            f"weights file {path} is not a readable safetensors file ({first_line(error) or type(error).__name__}); it may be truncated: download it again"
        ) from None
    return Checkpoint(state, "safetensors")


def read_pickle(path: Path, trust_pickle: bool) -> Checkpoint:
    """`torch.load(weights_only=True)` first, always; a pickle it refuses is unpickled in full only when
    `trust_pickle` says so, since that runs whatever code the file names."""
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        state, unwrapped = unwrap_nesting(loaded, path)
        return Checkpoint(state, "pickle", pickle_trusted=False, unwrapped=unwrapped)
    except WeightsError:
        raise
    except OSError as error:  # reading failed: not a question of safety
        raise WeightsError(f"weights file {path} cannot be read ({error.strerror or describe(error)})") from None
    except Exception as error:
        if not trust_pickle:
            raise WeightsError(
                f"weights file {path} cannot be read safely ({first_line(error) or type(error).__name__}); convert it to .safetensors, "
                "or allow full unpickling (WeightsSpec.trust_pickle) if you trust whoever made it (unpickling it can run any code)",
                cli_hint="--trust-pickle") from None
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as error:
        raise WeightsError(f"weights file {path} cannot be unpickled ({describe(error)})") from None
    state, unwrapped = unwrap_nesting(loaded, path)
    return Checkpoint(state, "pickle", pickle_trusted=True, unwrapped=unwrapped)


def unwrap_nesting(loaded: object, path: Path) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The state dict inside what training code saves ({"epoch": ..., "state_dict": {...}}, a pickled module),
    and what was taken off to reach it."""
    steps: list[str] = []
    for _ in range(len(NESTING_KEYS) + 2):  # bounded: a hostile pickle can hold a dict nested in itself
        if _is_state_dict(loaded):
            return loaded, tuple(steps)
        if isinstance(loaded, nn.Module):  # torch.save(model), read under trust_pickle
            loaded, step = loaded.state_dict(), "a pickled module: its state_dict()"
        elif isinstance(loaded, dict) and (key := _nesting_key(loaded)) is not None:
            loaded, step = loaded[key], f"nested under {key!r}" + _unused_copies(loaded, key)
        else:
            break
        steps.append(step)
    raise WeightsError(f"weights file {path} holds no state dict of tensors (nor one under "
                       f"{', '.join(map(repr, NESTING_KEYS))}); save model.state_dict() instead")


def _is_state_dict(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values())


def _nesting_key(checkpoint: dict) -> str | None:
    return next((key for key in NESTING_KEYS if isinstance(checkpoint.get(key), (dict, nn.Module))), None)


def _unused_copies(checkpoint: dict, used: str) -> str:
    others = [repr(key) for key in NESTING_KEYS if key != used and isinstance(checkpoint.get(key), (dict, nn.Module))]
    return f" (not used: {', '.join(others)})" if others else ""


def strip_wrapper_prefixes(state: dict[str, torch.Tensor], expected: dict) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """The keys as the model names them when a training wrapper prefixed them: DDP's `module.` and
    torch.compile's `_orig_mod.` (timm's clean_state_dict), Lightning's `model.`. A prefix is removed only
    when more keys then fit the model: a network may have a submodule called `model` of its own."""
    from timm.models import clean_state_dict

    steps = []
    cleaned = clean_state_dict(state)
    if _fits_better(cleaned, state, expected):
        removed = sorted({old[: len(old) - len(new)] for old, new in zip(state, cleaned) if old != new})
        state, steps = cleaned, [f"prefix {prefix!r} removed (DDP / torch.compile)" for prefix in removed]
    unprefixed = {key.removeprefix(LIGHTNING_PREFIX): value for key, value in state.items()}
    if _fits_better(unprefixed, state, expected):
        state, steps = unprefixed, steps + [f"prefix {LIGHTNING_PREFIX!r} removed (Lightning)"]
    return state, tuple(steps)


def _fits_better(candidate: dict, current: dict, expected: dict) -> bool:
    """More of the candidate's keys are the model's, and removing the prefix merged no two keys."""
    return len(candidate) == len(current) and _fitting(candidate, expected) > _fitting(current, expected)


def _fitting(state: dict, expected: dict) -> int:
    return sum(key in expected for key in state)


def apply_checkpoint(
    model: nn.Module, path: Path, kind: str, local: bool, hub_repo: str | None, spec: WeightsSpec, searched: tuple[str, ...]
) -> WeightsProvenance:
    checkpoint = read_checkpoint(path, spec.trust_pickle)
    expected = model.state_dict()
    state, stripped = strip_wrapper_prefixes(checkpoint.state, expected)
    missing, unexpected = check_keys(path, state, expected, spec)
    nonfloat = check_floating(path, state, expected, spec)
    nonfinite = check_finite(path, state, spec)
    conversions = dtype_conversions(state, expected)
    load_into(model, {key: value.dequantize() if value.is_quantized else value for key, value in state.items()}, path)
    share = loaded_share(model, state)
    return WeightsProvenance(
        source_kind=kind,
        pretrained_used=share >= PRETRAINED_SHARE or spec.accept_partial_as_pretrained,
        local_weight_used=local,
        path=str(path.resolve()),
        file_size=path.stat().st_size,
        sha256=sha256_of(path),
        hub_repo=hub_repo,
        missing_keys=missing,
        unexpected_keys=unexpected,
        partial_allowed=spec.allow_partial,
        pickle_trusted=checkpoint.pickle_trusted,
        nonfinite_tensors=nonfinite,
        searched=searched,
        loaded_share=share,
        unwrapped=checkpoint.unwrapped + stripped,
        file_format=checkpoint.file_format,
        dtype_conversions=conversions,
        nonfloat_tensors=nonfloat,
    )


def check_keys(path: Path, state: dict, expected: dict, spec: WeightsSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The missing and unexpected keys, once every shared key's shape fits; a partial fit only when allowed."""
    for key, wanted in expected.items():  # in the model's order: the first mismatch is the earliest layer's
        if key in state and tuple(state[key].shape) != tuple(wanted.shape):
            raise WeightsError(
                f"weights file {path} does not fit this model: {key} has shape {list(state[key].shape)} in the file "
                f"and {list(wanted.shape)} in the model; is it the checkpoint of another architecture or num_classes?"
            )
    missing = tuple(k for k in expected if k not in state)
    unexpected = tuple(k for k in state if k not in expected)
    refuse_partial(path, missing, unexpected, spec)
    return missing, unexpected


def refuse_partial(path: Path, missing: tuple[str, ...], unexpected: tuple[str, ...], spec: WeightsSpec) -> None:
    """A checkpoint that misses keys of the model, or holds keys it lacks, is refused unless a partial load is allowed."""
    if (missing or unexpected) and not spec.allow_partial:
        raise WeightsError(
            f"weights file {path} does not match the model: {len(missing)} missing keys {_first_keys(missing)}, "
            f"{len(unexpected)} unexpected keys {_first_keys(unexpected)}; allow a partial load (WeightsSpec.allow_partial) "
            "to load it anyway", cli_hint="--allow-partial-weights")


def check_floating(path: Path, state: dict, expected: dict, spec: WeightsSpec) -> tuple[str, ...]:
    """Integer or quantised tensors for the model's floating-point ones, refused unless allowed: cast as they
    are, integers lose the scale that made them weights."""
    nonfloat = nonfloat_tensors(state, expected)
    if nonfloat and not spec.allow_nonfloat:
        more = f" (and {len(nonfloat) - 1} more tensors)" if len(nonfloat) > 1 else ""
        raise WeightsError(
            f"weights file {path} holds integer or quantised tensors where the model has floating-point ones: "
            f"{nonfloat[0]}{more}; give the floating-point checkpoint, or allow them (WeightsSpec.allow_nonfloat) to load "
            "them anyway (quantised tensors dequantised, integers cast as they are)", cli_hint="--allow-nonfloat-weights")
    return nonfloat


def check_finite(path: Path, state: dict, spec: WeightsSpec) -> tuple[str, ...]:
    nonfinite = nonfinite_tensors(state)
    if nonfinite and not spec.allow_nonfinite:
        more = f" (and {len(nonfinite) - 1} more tensors)" if len(nonfinite) > 1 else ""
        raise WeightsError(
            f"weights file {path} holds non-finite values: {nonfinite[0]}{more}; a model with them computes NaN or "
            "garbage on every port alike, so the comparison would prove nothing; allow non-finite weights "
            "(WeightsSpec.allow_nonfinite) to load it anyway", cli_hint="--allow-nonfinite-weights")
    return nonfinite


def nonfloat_tensors(state: dict[str, torch.Tensor], expected: dict) -> tuple[str, ...]:
    """"<key>: <file dtype> into <model dtype>" for each tensor that is not floating point where the model's is."""
    return tuple(f"{key}: {_dtype_name(state[key])} into {_dtype_name(wanted)}" for key, wanted in expected.items()
                 if key in state and wanted.is_floating_point() and not state[key].is_floating_point())


def dtype_conversions(state: dict[str, torch.Tensor], expected: dict) -> tuple[str, ...]:
    """"<n> tensors stored as float16, loaded as float32" for each pair of dtypes that loading converts between
    (the non-floating ones named by nonfloat_tensors aside)."""
    pairs = Counter((_dtype_name(state[key]), _dtype_name(wanted)) for key, wanted in expected.items()
                    if key in state and state[key].dtype != wanted.dtype
                    and (state[key].is_floating_point() or not wanted.is_floating_point()))
    return tuple(f"{count} tensors stored as {stored}, loaded as {loaded}" for (stored, loaded), count in pairs.items())


def _dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """"<key>: <n> NaN, <m> Inf" for each floating-point tensor holding NaN or Inf, in the file's order."""
    found = []
    for key, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            nan = int(torch.isnan(tensor).sum())
            found.append(f"{key}: {nan} NaN, {tensor.numel() - nan - int(torch.isfinite(tensor).sum())} Inf")
    return tuple(found)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(state, strict=False)
    except Exception as error:  # keys and shapes were checked: what is left is a value torch cannot copy
        raise WeightsError(f"weights file {path} cannot be loaded into the model ({first_line(error) or describe(error)})") from None


def loaded_share(model: nn.Module, state: dict[str, torch.Tensor]) -> float:
    """The share of the model's parameters, by element count, that `state` supplied (1.0 for a model without any)."""
    sizes = {name: parameter.numel() for name, parameter in model.named_parameters()}
    total = sum(sizes.values())
    return sum(size for name, size in sizes.items() if name in state) / total if total else 1.0


def risk_notes(provenance: WeightsProvenance) -> list[str]:
    """What the reports must say about weights loaded despite a refusal (--trust-pickle, --allow-*), about a
    checkpoint that supplied only part of the model, and about what loading changed (layout, dtype)."""
    notes = []
    if provenance.pickle_trusted:
        notes.append(f"the checkpoint {provenance.path} was unpickled in full (--trust-pickle): weights_only loading "
                     "refused it, and unpickling can run code")
    if provenance.nonfinite_tensors:
        notes.append(f"the checkpoint holds NaN or Inf values in {len(provenance.nonfinite_tensors)} tensors "
                     f"(--allow-nonfinite-weights): {'; '.join(provenance.nonfinite_tensors[:3])}"
                     + (" ..." if len(provenance.nonfinite_tensors) > 3 else ""))
    if provenance.missing_keys or provenance.unexpected_keys:
        notes.append(partial_note(provenance))
    if provenance.nonfloat_tensors:
        notes.append(f"the checkpoint holds {len(provenance.nonfloat_tensors)} integer or quantised tensors for "
                     f"floating-point parameters (--allow-nonfloat-weights), loaded dequantised or cast as they are: "
                     f"{'; '.join(provenance.nonfloat_tensors[:3])}" + (" ..." if len(provenance.nonfloat_tensors) > 3 else ""))
    if provenance.dtype_conversions:
        notes.append(f"the checkpoint's dtype is not the model's: {'; '.join(provenance.dtype_conversions)}")
    if provenance.unwrapped:
        notes.append(f"the checkpoint was unwrapped before loading: {'; '.join(provenance.unwrapped)}")
    if provenance.file_format == "safetensors" and provenance.path and not provenance.path.endswith(".safetensors"):
        notes.append(f"the checkpoint {provenance.path} holds safetensors data, whatever its name says, and was read as such")
    return notes


def partial_note(provenance: WeightsProvenance) -> str:
    """The note for a checkpoint that does not match the model: what it supplied, and whether that counts as pretrained."""
    share = provenance.loaded_share
    supplied = "" if share is None else f" it supplied {share:.1%} of the model's parameters (by element count);"
    note = (f"the checkpoint does not match the model (--allow-partial-weights):{supplied} {len(provenance.missing_keys)} "
            f"missing keys {_first_keys(provenance.missing_keys)}, {len(provenance.unexpected_keys)} unexpected "
            f"keys {_first_keys(provenance.unexpected_keys)}; the missing ones keep the model's initial values")
    if share is None or share >= PRETRAINED_SHARE:
        return note
    if provenance.pretrained_used:
        return f"{note}; under half, yet counted as pretrained (--accept-partial-as-pretrained)"
    return (f"{note}; under half, so the run counts as random weights (pretrained_used=false); to count it as "
            "pretrained anyway: --accept-partial-as-pretrained")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_keys(keys: tuple[str, ...], limit: int = 5) -> str:
    if not keys:
        return ""
    more = f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    return "(" + ", ".join(keys[:limit]) + more + ")"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
