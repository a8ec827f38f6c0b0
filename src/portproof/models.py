"""Model families: how a name becomes a module with its weights, preprocessing and named outputs.

A family knows its own names, builds an uninitialised architecture, says which hub repository holds its
pretrained weights and how to preprocess images, and wraps the model so that one forward returns every
output we compare. The pipeline sees only `load()` and `LoadedModel`; adding a family (Hugging Face
transformers, say) means adding a class here and listing it in FAMILIES.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from .config import ModelSpec, WeightsSpec
from .errors import ModelNotFoundError
from .weights import WeightsProvenance, load_weights


@dataclass(frozen=True)
class ModelIdentity:
    """A resolved model name: the family, its architecture and, where known, the hub repository."""

    family: str
    requested: str
    architecture: str
    tag: str | None
    hub_repo: str | None  # e.g. "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"

    @property
    def full_name(self) -> str:
        return f"{self.architecture}.{self.tag}" if self.tag else self.architecture


@dataclass
class LoadedModel:
    identity: ModelIdentity
    module: nn.Module  # in eval mode, on the CPU, fp32; forward(x) returns a tuple in `output_names` order
    network: nn.Module  # the family's own model inside `module`: what the layer pass walks, by its module names
    output_names: tuple[str, ...]
    classifier_output: str | None  # the output whose argmax is a class (top-k agreement applies)
    data_config: dict[str, Any]  # the preprocessing the pretrained weights expect
    provenance: WeightsProvenance
    num_parameters: int
    extra: dict[str, Any] = field(default_factory=dict)


class ModelFamily(Protocol):
    name: str

    def resolve(self, requested: str) -> ModelIdentity: ...

    def build(self, identity: ModelIdentity) -> nn.Module: ...

    def wrap(self, model: nn.Module) -> tuple[nn.Module, tuple[str, ...], str | None]: ...

    def data_config(self, model: nn.Module) -> dict[str, Any]: ...


class ClassifierOutputs(nn.Module):
    """Runs a timm classifier once and returns (logits, pre-logits features).

    The features are what the head sees just before its last linear layer: the 192-wide vector that
    the original vit_tiny report compared; the logits are what a user of the classifier gets.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.model.forward_features(x)
        features = self.model.forward_head(tokens, pre_logits=True)
        logits = self.model.forward_head(tokens)
        return logits, features


class TimmFamily:
    name = "timm"

    def resolve(self, requested: str) -> ModelIdentity:
        import timm

        name = requested.strip()
        for prefix in ("hf-hub:", "hf_hub:"):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        owner = None
        if "/" in name:
            owner, name = name.split("/", 1)
            if owner != "timm":
                raise ModelNotFoundError(
                    f"model {requested!r}: only timm's own hub repositories (timm/...) can be resolved offline; "
                    f"pass the timm architecture name and --weights PATH for the checkpoint"
                )
        architecture, _, tag = name.partition(".")
        if not timm.is_model(architecture):
            raise ModelNotFoundError(f"unknown model {requested!r}{_suggest(architecture, timm.list_models())}")
        try:
            config = timm.models.get_pretrained_cfg(f"{architecture}.{tag}" if tag else architecture)
        except RuntimeError:  # timm's answer to a tag it does not know
            tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{architecture}.*")]
            raise ModelNotFoundError(
                f"model {architecture!r} has no pretrained tag {tag!r}; known tags: {', '.join(tags) or 'none'}"
            )
        hub_repo = config.hf_hub_id if config is not None else None
        resolved_tag = tag or (config.tag if config is not None else None) or None
        return ModelIdentity(self.name, requested, architecture, resolved_tag, hub_repo)

    def build(self, identity: ModelIdentity) -> nn.Module:
        import timm

        return timm.create_model(identity.full_name, pretrained=False)

    def wrap(self, model: nn.Module) -> tuple[nn.Module, tuple[str, ...], str | None]:
        if getattr(model, "num_classes", 0):
            return ClassifierOutputs(model), ("logits", "features"), "logits"
        return _FeaturesOnly(model), ("features",), None

    def data_config(self, model: nn.Module) -> dict[str, Any]:
        import timm.data

        return dict(timm.data.resolve_data_config({}, model=model))


class _FeaturesOnly(nn.Module):
    """A timm model without a classifier (num_classes=0): its pooled features are its only output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model(x),)


FAMILIES: tuple[ModelFamily, ...] = (TimmFamily(),)


def resolve(spec: ModelSpec) -> tuple[ModelFamily, ModelIdentity]:
    """The first family that knows the name; the error lists every family's reason when none does."""
    reasons = []
    for family in FAMILIES:
        try:
            return family, family.resolve(spec.name)
        except ModelNotFoundError as error:
            reasons.append(str(error))
    raise ModelNotFoundError("; ".join(reasons))


def load(spec: ModelSpec, weights: WeightsSpec) -> LoadedModel:
    """Resolve the name, build the architecture, load its weights (see weights.py), wrap it for comparison."""
    family, identity = resolve(spec)
    torch.manual_seed(weights.seed)  # the random initialisation, when no weights are found, is reproducible
    model = family.build(identity)
    provenance = load_weights(model, identity.full_name, identity.hub_repo, weights)
    model.eval()
    wrapped, output_names, classifier_output = family.wrap(model)
    wrapped.eval()
    return LoadedModel(
        identity=identity,
        module=wrapped,
        network=model,
        output_names=output_names,
        classifier_output=classifier_output,
        data_config=family.data_config(model),
        provenance=provenance,
        num_parameters=sum(p.numel() for p in model.parameters()),
    )


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    if close:
        return f"; did you mean: {', '.join(close)}?"
    return "; run `python -c \"import timm; print(timm.list_models('*vit*'))\"` to list timm's names"
