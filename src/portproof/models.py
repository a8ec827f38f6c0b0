"""Model families: how a name becomes a module with its weights, its inputs and named outputs.

A family is a class decorated with `register_family(name)` and reached through the `portproof.families`
entry-point group (portproof's own are declared in its pyproject.toml, as a third party declares its
own). It says which names it takes (`matches`), resolves one, loads the module with its weights, and
builds the default inputs its models take. The session sees only `load()` and `LoadedModel`. A family with
a `prefix` (transformers: "hf:") alone takes the names that begin with it; `ModelSpec.family` (--family)
names the family outright.

Every loaded model is called by keyword, `module(**inputs)`, and returns {output name: tensor}.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

import torch
from torch import nn

from .config import InputSpec, ModelSpec, WeightsSpec
from .errors import ModelNotFoundError, PortproofError, describe
from .results import WeightsProvenance

ENTRY_POINT_GROUP = "portproof.families"


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
    module: nn.Module  # in eval mode, on the CPU, fp32; module(**inputs) returns {output name: tensor}
    network: nn.Module  # the family's own model inside `module`: what the layer pass walks, by its module names
    classifier_output: str | None  # the output whose argmax is a class (top-k agreement applies), when present
    data_config: dict[str, Any]  # the preprocessing the pretrained weights expect ({} when none is known)
    provenance: WeightsProvenance
    num_parameters: int
    family: "ModelFamily"
    notes: tuple[str, ...] = ()  # what the user should know about how the model was loaded
    # output -> the input whose zeros mark positions to leave out of that output's metrics (padding tokens)
    output_masks: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class ModelFamily(Protocol):
    name: str
    prefix: str | None  # names beginning with it are this family's alone (optional attribute)

    def matches(self, requested: str) -> bool:
        """Whether `requested` is spelled as this family's names are (syntax only: no import, no lookup)."""

    def resolve(self, requested: str) -> ModelIdentity:
        """The identity of a name it matches; ModelNotFoundError saying why when there is none."""

    def load(self, identity: ModelIdentity, weights: WeightsSpec) -> LoadedModel:
        """The module with its weights (weights.py does the finding and loading), wrapped to name its outputs."""

    def build_inputs(self, loaded: LoadedModel, spec: InputSpec):
        """The default inputs (inputs.InputSet) for `spec.source` "images", "random" or a folder."""


def register_family(name: str):
    """Class decorator: declare a model family under `name`."""

    def decorate(cls: type) -> type:
        cls.name = name
        return cls

    return decorate


@cache
def families() -> tuple[ModelFamily, ...]:
    """Every registered family (one instance each), read once per process from the entry points."""
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found.append(point.load()())
        except Exception as error:
            raise PortproofError(f"the model family plugin {point.name!r} ({point.value}) cannot be loaded: "
                                 f"{describe(error)}; fix or uninstall it") from None
    if not found:
        raise PortproofError("no model family is registered: portproof's entry points are missing from this "
                             "environment; reinstall it (pip install -e . from its folder, or pip install portproof)")
    return tuple(found)


def resolve(spec: ModelSpec) -> tuple[ModelFamily, ModelIdentity]:
    """The family named by `spec.family`, else the one whose prefix the name has, else the first whose spelling
    the name has; its error when it does not know the name."""
    if spec.family is not None:
        return _named_family(spec.family), _named_family(spec.family).resolve(spec.name)
    prefixed = [f for f in families() if getattr(f, "prefix", None) and spec.name.startswith(f.prefix)]
    if prefixed:
        return prefixed[0], prefixed[0].resolve(spec.name)
    reasons = []
    for family in families():
        if not family.matches(spec.name):
            continue
        try:
            return family, family.resolve(spec.name)
        except ModelNotFoundError as error:
            reasons.append(error)
    if len(reasons) == 1:
        raise reasons[0]
    if not reasons:
        raise ModelNotFoundError(f"no model family takes the name {spec.name!r} (families: "
                                 f"{', '.join(f.name for f in families())})")
    raise ModelNotFoundError("; ".join(str(r) for r in reasons))


def _named_family(name: str) -> ModelFamily:
    for family in families():
        if family.name == name:
            return family
    raise ModelNotFoundError(f"no model family is called {name!r}; the families are "
                             f"{', '.join(f.name for f in families())}", cli_hint="--family NAME")


def load(spec: ModelSpec, weights: WeightsSpec) -> LoadedModel:
    family, identity = resolve(spec)
    return family.load(identity, weights)


def seeded_build(build, seed: int):
    """`build()` under torch's global generator seeded with `seed` (a random initialisation is reproducible),
    with the caller's generator state restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def first_argument(model: nn.Module) -> str:
    """The name of the forward's first parameter: what a single default input is called."""
    parameters = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return parameters[0].name if parameters else "input"


def fold_parametrizations(model: nn.Module) -> tuple[str, ...]:
    """Replace each parametrized tensor (weight_norm, as Wav2Vec2's positional convolution has) by its value, in
    place, and name them. A parametrized module cannot be pickled, and each side runs in a process of its own;
    the folded weight is the one the parametrization computes in fp32, so a lower-precision target casts it
    instead of recomputing it from its parts (as an exporter folds it too)."""
    from torch.nn.utils import parametrize

    folded = []
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for tensor_name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=True)
                folded.append(f"{name}.{tensor_name}" if name else tensor_name)
            # weight_norm's hook that reads old checkpoints into the parametrization, now gone (and a local
            # function, which pickle refuses)
            for key, hook in list(module._load_state_dict_pre_hooks.items()):
                if "weight_norm" in getattr(getattr(hook, "hook", hook), "__qualname__", ""):
                    del module._load_state_dict_pre_hooks[key]
    return tuple(folded)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def named_outputs(outputs: Any) -> dict[str, torch.Tensor]:
    """A forward's outputs by name: a mapping's tensors by key (None values dropped, as in a Hugging Face
    ModelOutput); one tensor as "output"; a tuple or list as output_0, output_1, ..."""
    if isinstance(outputs, torch.Tensor):
        return {"output": outputs}
    if isinstance(outputs, dict):
        named = {str(k): v for k, v in outputs.items() if v is not None}
    elif isinstance(outputs, (tuple, list)):
        named = {f"output_{i}": v for i, v in enumerate(outputs)}
    else:
        raise TypeError(f"the model returned {type(outputs).__name__}; portproof compares a tensor, or a tuple, "
                        "list or dict of tensors")
    not_tensors = [k for k, v in named.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise TypeError(f"the model's outputs {', '.join(not_tensors)} are not tensors; return tensors only")
    return named


class NamedOutputs(nn.Module):
    """Any model, called by keyword, with its outputs named (named_outputs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return named_outputs(self.model(**inputs))
