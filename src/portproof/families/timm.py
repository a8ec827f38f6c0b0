"""timm models by name (`vit_tiny_patch16_224`, with or without tag, `timm/` or `hf-hub:` prefix), with their
pretrained weights (weights.py) and preprocessing; one input, `x`, the image batch."""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from .. import inputs
from ..config import InputSpec, WeightsSpec
from ..errors import ModelNotFoundError
from ..labelled import has_labels, imagenet_synsets
from ..models import LoadedModel, ModelIdentity, count_parameters, register_family, seeded_build
from ..weights import load_weights

INPUT_NAME = "x"  # the name of timm's forward argument


class ClassifierOutputs(nn.Module):
    """Runs a timm classifier once and returns its logits and pre-logits features.

    The features are what the head sees just before its last linear layer: the 192-wide vector that
    the original vit_tiny report compared; the logits are what a user of the classifier gets.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.model.forward_features(x)
        features = self.model.forward_head(tokens, pre_logits=True)
        logits = self.model.forward_head(tokens)
        return {"logits": logits, "features": features}


class FeaturesOnly(nn.Module):
    """A timm model without a classifier (num_classes=0): its pooled features are its only output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": self.model(x)}


@register_family("timm")
class TimmFamily:
    def matches(self, requested: str) -> bool:
        return ":" not in requested.replace("hf-hub:", "").replace("hf_hub:", "")

    def resolve(self, requested: str) -> ModelIdentity:
        import timm

        name = requested.strip()
        for prefix in ("hf-hub:", "hf_hub:"):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        if "/" in name:
            owner, name = name.split("/", 1)
            if owner != "timm":
                raise ModelNotFoundError(
                    f"model {requested!r}: only timm's own hub repositories (timm/...) can be resolved offline; "
                    "give the timm architecture name, and the checkpoint's path as the weights", cli_hint="--weights PATH"
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

    def load(self, identity: ModelIdentity, weights: WeightsSpec) -> LoadedModel:
        import timm
        import timm.data

        model = seeded_build(lambda: timm.create_model(identity.full_name, pretrained=False), weights.seed)
        provenance = load_weights(model, identity.full_name, identity.hub_repo, weights)
        model.eval()
        if getattr(model, "num_classes", 0):
            wrapped, classifier = ClassifierOutputs(model), "logits"
        else:
            wrapped, classifier = FeaturesOnly(model), None
        return LoadedModel(identity=identity, module=wrapped.eval(), network=model, classifier_output=classifier,
                           data_config=dict(timm.data.resolve_data_config({}, model=model)), provenance=provenance,
                           num_parameters=count_parameters(model), family=self)

    def build_inputs(self, loaded: LoadedModel, spec: InputSpec) -> inputs.InputSet:
        synsets = imagenet_synsets(loaded.network) if has_labels(spec) else None
        return inputs.images(spec, loaded.data_config, INPUT_NAME, synsets)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    if close:
        return f"; did you mean: {', '.join(close)}?"
    return "; run `python -c \"import timm; print(timm.list_models('*vit*'))\"` to list timm's names"


def data_config_of(model: nn.Module) -> dict[str, Any]:
    """timm's preprocessing for a module that carries a timm-style pretrained config, else {}."""
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if not isinstance(config, dict) or "input_size" not in config:
        return {}
    import timm.data

    return dict(timm.data.resolve_data_config({}, model=model))
