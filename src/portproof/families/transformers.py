"""Hugging Face transformers models: `hf:<directory>` (a folder `save_pretrained` wrote: config.json and
model.safetensors) or `hf:<owner/name>` (a hub repository, found in the ModelScope caches, the Hugging Face
cache, or downloaded), or any such name with `--family transformers`.

The model is built from its config.json (`AutoModel`, or the `AutoModelFor...Classification` class its
architecture names) and its checkpoint is loaded by weights.py, so the provenance is recorded as for timm
models. Its inputs come from its own preprocessing, by modality (its `main_input_name`): bundled sentences
(or a text file, one per line) through its tokenizer, the bundled photos (or a folder) through its image
processor, seeded random waveforms (or a folder of WAV files) through its feature extractor.

A feature model is compared on `last_hidden_state` (padding positions left out), `pooler_output` when it has
one, and `mean_pooled`, the mean over the unpadded positions (what sentence-transformers embeds); a model
with a classification head on its `logits`, with top-k agreement.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import inputs, waveforms, weights
from ..config import InputSpec, WeightsSpec
from ..errors import InputError, ModelNotFoundError, WeightsError, describe
from ..models import LoadedModel, ModelIdentity, count_parameters, register_family, seeded_build
from ..results import WeightsProvenance

PREFIX = "hf:"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Heads whose output is a class: the model is built with that head, and its logits are compared with top-k.
CLASSIFICATION_HEADS = ("ForImageClassification", "ForSequenceClassification", "ForAudioClassification")
# What a download fetches: the config, tokenizer and processor files, and the single-file checkpoint.
DOWNLOAD_PATTERNS = ["*.json", "*.txt", "*.model", "model.safetensors"]
SENTENCES = "data/text/sentences.txt"
RANDOM_TEXT_LENGTH = 32  # tokens per sample of random text
MASK_INPUT = "attention_mask"
Tensors = dict[str, torch.Tensor]


class FeatureOutputs(nn.Module):
    """A base model's last_hidden_state, its pooler_output when it has one, and the mean over the positions
    that the attention mask keeps (all positions when there is none)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **inputs: torch.Tensor) -> Tensors:
        output = self.model(**inputs)
        hidden = output.last_hidden_state
        named = {"last_hidden_state": hidden}
        if getattr(output, "pooler_output", None) is not None:
            named["pooler_output"] = output.pooler_output
        mask = inputs.get(MASK_INPUT)
        if mask is not None and mask.shape == hidden.shape[:2]:
            weight = mask.unsqueeze(-1).to(hidden.dtype)
            named["mean_pooled"] = (hidden * weight).sum(1) / weight.sum(1).clamp(min=1)
        else:
            named["mean_pooled"] = hidden.mean(1)
        return named


class ClassifierOutputs(nn.Module):
    """A model with a classification head: its logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **inputs: torch.Tensor) -> Tensors:
        return {"logits": self.model(**inputs).logits}


@register_family("transformers")
class TransformersFamily:
    prefix = PREFIX

    def matches(self, requested: str) -> bool:
        return requested.startswith(PREFIX)

    def resolve(self, requested: str) -> ModelIdentity:
        name = requested[len(PREFIX):] if requested.startswith(PREFIX) else requested
        directory = Path(name).expanduser()
        if directory.is_dir():
            config = read_config(directory)
            return ModelIdentity(self.name, requested, architecture_of(config), None, None)
        if name.startswith(("/", ".", "~")) or not REPO_ID.match(name):
            raise ModelNotFoundError(f"model {requested!r}: {name} is neither a folder nor a Hugging Face repository id "
                                     "(owner/name); give the folder that save_pretrained wrote, or the repository id")
        return ModelIdentity(self.name, requested, name.rsplit("/", 1)[-1], None, name)

    def load(self, identity: ModelIdentity, spec: WeightsSpec) -> LoadedModel:
        import transformers

        directory, kind, searched = locate(identity, spec)
        config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
        head = next((h for h in CLASSIFICATION_HEADS if architecture_of(config.to_dict()).endswith(h)), None)
        auto_class = getattr(transformers, f"AutoModel{head}") if head else transformers.AutoModel
        model, provenance = load_model(auto_class, config, directory, kind, identity.hub_repo, spec, searched)
        model.eval()
        modality = modality_of(model)
        wrapped = ClassifierOutputs(model) if head else FeatureOutputs(model)
        masks = {"last_hidden_state": MASK_INPUT} if modality == "text" and not head else {}
        return LoadedModel(identity=identity, module=wrapped.eval(), network=model,
                           classifier_output="logits" if head else None, data_config={}, provenance=provenance,
                           num_parameters=count_parameters(model), family=self, output_masks=masks,
                           extra={"directory": str(directory), "modality": modality})

    def build_inputs(self, loaded: LoadedModel, spec: InputSpec) -> inputs.InputSet:
        directory, network = Path(loaded.extra["directory"]), loaded.network
        modality = loaded.extra["modality"]
        accepted = forward_parameters(network)
        if modality == "text":
            return text_inputs(spec, directory, network, accepted)
        if modality == "vision":
            return image_inputs(spec, directory, network)
        return audio_inputs(spec, directory, network, accepted)


# --- finding the model ----------------------------------------------------------------------------------------


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelNotFoundError(f"{directory} holds no config.json; give the folder that a Hugging Face model's "
                                 "save_pretrained wrote (config.json and model.safetensors)") from None
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(f"{path} cannot be read as JSON ({describe(error)})") from None


def architecture_of(config: dict[str, Any]) -> str:
    architectures = config.get("architectures") or []
    return architectures[0] if architectures else str(config.get("model_type", "unknown"))


def locate(identity: ModelIdentity, spec: WeightsSpec) -> tuple[Path, str, tuple[str, ...]]:
    """The folder holding the model's config (and, usually, its checkpoint), the kind of place it is, and
    the places searched. A local folder is used as it is; a repository id is searched for as timm's weights are."""
    if identity.hub_repo is None:
        name = identity.requested[len(PREFIX):] if identity.requested.startswith(PREFIX) else identity.requested
        directory = Path(name).expanduser()
        return directory, "file", (f"{directory}: given",)
    repo, searched = identity.hub_repo, []
    owner, _, name = repo.rpartition("/")
    for root in weights.modelscope_roots(spec):
        for directory in weights.modelscope_dirs(Path(root), owner, name):
            found = (directory / "config.json").is_file()
            searched.append(f"{directory}: {'found' if found else 'absent'}")
            if found:
                return directory, "modelscope-cache", tuple(searched)
    cache = weights.hf_cache_dir()
    cached = _hf_snapshot(repo, cache, local_only=True)
    searched.append(f"Hugging Face cache {cache} ({repo}): {'found' if cached else 'absent'}")
    if cached:
        return cached, "hf-cache", tuple(searched)
    if spec.offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        searched.append("download: skipped (offline)")
    else:
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        why = weights.unreachable(endpoint, spec.download_timeout_s)
        if why:
            searched.append(f"download {repo}: skipped: {endpoint} unreachable ({why})")
        else:
            downloaded = _hf_snapshot(repo, cache, local_only=False)
            searched.append(f"download {repo}: {'downloaded' if downloaded else 'failed'}")
            if downloaded:
                return downloaded, "hf-download", tuple(searched)
    raise ModelNotFoundError(f"model {identity.requested!r}: its config.json was not found (looked in: "
                             f"{'; '.join(searched)}); give the folder that holds it, or the cache root that does",
                             cli_hint="hf:DIR or --weights-cache DIR")


def _hf_snapshot(repo: str, cache: str, local_only: bool) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo, cache_dir=cache, local_files_only=local_only,
                                      allow_patterns=DOWNLOAD_PATTERNS))
    except Exception:  # not cached, not reachable, no such repository: all mean "not from here"
        return None
    return path if (path / "config.json").is_file() else None


def load_model(auto_class, config, directory: Path, kind: str, hub_repo: str | None, spec: WeightsSpec,
               searched: tuple[str, ...]) -> tuple[nn.Module, WeightsProvenance]:
    """The model with the weights of `spec`: random (seeded), a given checkpoint file, or the checkpoint beside
    the config. Checkpoints are loaded by transformers' own `from_pretrained`, which maps the names each version
    saved under onto this version's modules (and takes the base model out of a checkpoint with a head); what it
    reports missing or unexpected is refused, as for timm models, unless a partial load is allowed."""
    if spec.source == "random":
        return _built(lambda: auto_class.from_config(config), spec), WeightsProvenance(
            "random", False, False, hub_repo=hub_repo, random_seed=spec.seed, searched=("--weights random",))
    if spec.source != "auto":
        path = weights.checkpoint_in(Path(spec.source).expanduser())
        with tempfile.TemporaryDirectory(prefix="portproof-hf-") as staging:  # the config beside the given file
            folder = Path(staging)
            os.symlink(directory.resolve() / "config.json", folder / "config.json")
            os.symlink(path.resolve(), folder / _checkpoint_name(path))
            return _from_pretrained(auto_class, config, folder, path, "file", True, hub_repo, spec,
                                    (f"{spec.source}: found",))
    found = weights.first_checkpoint(directory)
    places = searched + (f"{directory}: {found.name if found else 'no checkpoint'}",)
    if found:
        return _from_pretrained(auto_class, config, directory, found, kind, kind != "hf-download", hub_repo, spec, places)
    sharded = sorted(p.name for p in directory.glob("*.index.json"))
    if sharded:
        raise WeightsError(f"{directory} holds a checkpoint split into shards ({sharded[0]}); portproof reads one file: "
                           "save the model with save_pretrained(..., max_shard_size='100GB') and check that folder")
    if spec.require_pretrained:
        raise WeightsError(f"no checkpoint in {directory} (looked for {' and '.join(weights.CHECKPOINT_FILES)})",
                           cli_hint="pass --weights PATH, or drop --require-pretrained")
    return _built(lambda: auto_class.from_config(config), spec), WeightsProvenance(
        "random", False, False, hub_repo=hub_repo, random_seed=spec.seed, searched=places)


def _from_pretrained(auto_class, config, folder: Path, path: Path, kind: str, local: bool, hub_repo: str | None,
                     spec: WeightsSpec, searched: tuple[str, ...]) -> tuple[nn.Module, WeightsProvenance]:
    size = weights.require_regular_file(path)
    try:
        model, info = _built(lambda: auto_class.from_pretrained(
            folder, config=config, local_files_only=True, output_loading_info=True, dtype=torch.float32), spec)
    except Exception as error:  # a truncated file, shapes of another model, a pickle it refuses: all named here
        raise WeightsError(f"weights file {path} cannot be loaded into {type(config).__name__.removesuffix('Config')} "
                           f"({describe(error)}); is it this model's checkpoint, complete?") from None
    if info.get("mismatched_keys"):
        raise WeightsError(f"weights file {path} does not fit this model: {sorted(info['mismatched_keys'])[0]} has "
                           "another shape; is it the checkpoint of another architecture or number of labels?")
    missing, unexpected = tuple(sorted(info["missing_keys"])), tuple(sorted(info["unexpected_keys"]))
    saved_as, built = architecture_of(config.to_dict()), type(model).__name__
    # A checkpoint saved with a head (BertForPreTraining) read as its base model: the head's tensors are not used.
    head_left = saved_as != built and bool(unexpected)
    weights.refuse_partial(path, missing, () if head_left else unexpected, spec)
    state = model.state_dict()
    nonfinite = weights.check_finite(path, state, spec)
    total = sum(t.numel() for t in state.values()) or 1
    share = 1 - sum(state[k].numel() for k in missing if k in state) / total
    return model, WeightsProvenance(
        source_kind=kind, pretrained_used=share >= weights.PRETRAINED_SHARE or spec.accept_partial_as_pretrained,
        local_weight_used=local, path=str(path.resolve()), file_size=size, sha256=weights.sha256_of(path),
        hub_repo=hub_repo, missing_keys=missing, unexpected_keys=unexpected, partial_allowed=spec.allow_partial,
        nonfinite_tensors=nonfinite, searched=searched, loaded_share=share,
        unwrapped=(f"the base model {built} read out of a {saved_as} checkpoint ({len(unexpected)} head tensors not "
                   "used)",) if head_left else (),
        file_format="safetensors" if weights.holds_safetensors(path, size) else "pickle",
        random_seed=spec.seed if missing else None)


def _built(build, spec: WeightsSpec):
    """`build()` seeded (what a checkpoint does not supply is reproducible), without transformers' progress bars."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    return seeded_build(build, spec.seed)


def _checkpoint_name(path: Path) -> str:
    return weights.CHECKPOINT_FILES[0] if weights.holds_safetensors(path, path.stat().st_size) else weights.CHECKPOINT_FILES[1]


# --- inputs by modality ---------------------------------------------------------------------------------------


def modality_of(model: nn.Module) -> str:
    name = getattr(model, "main_input_name", "input_ids")
    if name == "input_ids":
        return "text"
    if name == "pixel_values":
        return "vision"
    if name in ("input_values", "input_features"):
        return "audio"
    raise ModelNotFoundError(f"{type(model).__name__} takes {name!r} as its main input; portproof builds inputs "
                             "for text (input_ids), image (pixel_values) and audio (input_values) models")


def forward_parameters(model: nn.Module) -> tuple[str, ...]:
    return tuple(inspect.signature(model.forward).parameters)


def text_inputs(spec: InputSpec, directory: Path, model: nn.Module, accepted: tuple[str, ...]) -> inputs.InputSet:
    """Sentences through the model's tokenizer, padded to the longest (with the attention mask), or random ids."""
    if spec.source == "random":
        return random_text(spec, model, accepted)
    if spec.source == "images":  # the default: the bundled sample sentences
        from importlib import resources

        lines = resources.files("portproof").joinpath(SENTENCES).read_text(encoding="utf-8").splitlines()
        kind, origin = "sentences", "bundled sentences"
    else:
        path = Path(spec.source).expanduser()
        if not path.is_file():
            raise InputError(f"inputs {spec.source}: a text model takes a text file with one sentence per line "
                             "(or images for the bundled sentences, or random)")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"inputs {spec.source} cannot be read as UTF-8 text ({describe(error)})") from None
        kind, origin = "text-file", str(path)
    sentences = [line.strip() for line in lines if line.strip()]
    if not sentences:
        raise InputError(f"inputs {spec.source}: no sentence in it; give one sentence per line")
    sentences = [sentences[i % len(sentences)] for i in range(spec.num_samples)]  # cycled, as image folders are
    tokenizer = _processor("AutoTokenizer", directory, "tokenizer", "--inputs random")
    limit = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None) or 512, 512)
    encoded = tokenizer(sentences, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    tensors = {name: encoded[name] for name in accepted if name in encoded}
    preprocessing = {"tokenizer": type(tokenizer).__name__, "padding": "to the longest sentence",
                     "max_length": limit, "sentences": origin,
                     "padded_positions": int((tensors[MASK_INPUT] == 0).sum()) if MASK_INPUT in tensors else 0}
    return inputs.InputSet(tensors, kind, tuple(sentences), (), preprocessing, spec.seed)


def random_text(spec: InputSpec, model: nn.Module, accepted: tuple[str, ...]) -> inputs.InputSet:
    generator = torch.Generator().manual_seed(spec.seed)
    shape = (spec.num_samples, RANDOM_TEXT_LENGTH)
    tensors = {"input_ids": torch.randint(0, model.config.vocab_size, shape, generator=generator)}
    if MASK_INPUT in accepted:
        tensors[MASK_INPUT] = torch.ones(shape, dtype=torch.long)
    return inputs.InputSet(tensors, "random", (), (), {"distribution": f"uniform token ids below {model.config.vocab_size}",
                                                       "tokens_per_sample": RANDOM_TEXT_LENGTH}, spec.seed)


def image_inputs(spec: InputSpec, directory: Path, model: nn.Module) -> inputs.InputSet:
    """The bundled photos (or a folder) through the model's image processor, or seeded random pixels."""
    config = model.config
    if spec.source == "random":
        size = config.image_size if isinstance(config.image_size, (tuple, list)) else (config.image_size,) * 2
        return inputs.random_inputs(spec, {"pixel_values": (config.num_channels, *size)})
    processor = _processor("AutoImageProcessor", directory, "image processor", "--inputs random")
    transform = lambda rgb: processor(images=rgb, return_tensors="pt")["pixel_values"][0]  # noqa: E731
    return inputs.image_files(spec, "pixel_values", transform, plain(processor.to_dict()))


def audio_inputs(spec: InputSpec, directory: Path, model: nn.Module, accepted: tuple[str, ...]) -> inputs.InputSet:
    """Seeded random waveforms (the default: there are no bundled clips) or a folder's WAV files, through the
    model's feature extractor (padded to the longest, with the attention mask when the model takes one)."""
    extractor = _processor("AutoFeatureExtractor", directory, "feature extractor", "--inputs random")
    rate = extractor.sampling_rate
    if spec.source in ("images", "random"):
        waves, names, skipped = waveforms.random_waveforms(spec.num_samples, rate, spec.seed), (), ()
        kind, origin = "random", f"standard normal, {waveforms.RANDOM_SECONDS:g} s each"
    else:
        waves, names, skipped = waveforms.folder_waveforms(spec.source, rate, spec.num_samples)
        kind, origin = "directory", spec.source
    mask = MASK_INPUT in accepted and bool(extractor.return_attention_mask)  # as the model's processor says
    encoded = extractor(waves, sampling_rate=rate, padding=True, return_attention_mask=mask, return_tensors="pt")
    tensors = {name: encoded[name] for name in accepted if name in encoded}
    preprocessing = {**plain(extractor.to_dict()), "waveforms": origin}
    return inputs.InputSet(tensors, kind, tuple(names), tuple(skipped), preprocessing, spec.seed)


def _processor(auto_name: str, directory: Path, what: str, alternative: str):
    import transformers

    try:
        return getattr(transformers, auto_name).from_pretrained(directory, local_files_only=True)
    except Exception as error:
        raise InputError(f"the model in {directory} has no {what} portproof can load ({describe(error)}); save it "
                         f"beside the model (save_pretrained), or use random inputs", cli_hint=alternative) from None


def plain(settings: dict[str, Any]) -> dict[str, Any]:
    """A processor's settings as JSON can hold them (enums and classes as their names)."""
    def value(v: Any) -> Any:
        if isinstance(v, (str, int, float, bool)) or v is None:
            return v
        if isinstance(v, (list, tuple)):
            return [value(x) for x in v]
        if isinstance(v, dict):
            return {str(k): value(x) for k, x in v.items()}
        return getattr(v, "name", str(v))

    return {k: value(v) for k, v in settings.items()}
