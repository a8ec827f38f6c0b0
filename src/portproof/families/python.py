"""Any model: `pkg.module:factory` names an importable callable that returns an nn.Module (the way uvicorn
names an application), or a module passed from Python. Its weights are as the factory made them unless a
checkpoint is given (WeightsSpec.source = a path); its inputs come from `pkg.module:make_inputs`, or are the
family's default when the module declares them: a timm-style `pretrained_cfg` (the bundled photos through
its preprocessing) or `input_shape` (seeded random tensors of that per-sample shape)."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from .. import inputs
from ..config import InputSpec, WeightsSpec
from ..errors import InputError, ModelNotFoundError, PortproofError, describe
from ..models import LoadedModel, ModelIdentity, NamedOutputs, count_parameters, first_argument, register_family
from ..results import WeightsProvenance
from ..weights import apply_checkpoint, checkpoint_in
from .timm import data_config_of


def import_object(spec: str, error: type[PortproofError], what: str) -> Any:
    """The object `pkg.module:attr.sub` names. The working directory is importable, as for `python -m`."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as raised:
        raise error(f"{what} {spec!r}: cannot import {module_name!r} ({describe(raised)}); run from the folder that "
                    "holds it or add that folder to PYTHONPATH") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise error(f"{what} {spec!r}: {module_name} has no attribute {attribute!r}") from None
        found = getattr(found, part)
    return found


@register_family("python")
class PythonFamily:
    def matches(self, requested: str) -> bool:
        return inputs.is_callable_spec(requested)

    def resolve(self, requested: str) -> ModelIdentity:
        module_name, _, attribute = requested.partition(":")
        return ModelIdentity(self.name, requested, attribute, None, None)

    def load(self, identity: ModelIdentity, weights: WeightsSpec) -> LoadedModel:
        factory = import_object(identity.requested, ModelNotFoundError, "model")
        try:
            model = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
        except Exception as raised:
            raise ModelNotFoundError(f"model {identity.requested!r}: calling the factory raised {describe(raised)}") from None
        if not isinstance(model, nn.Module):
            raise ModelNotFoundError(f"model {identity.requested!r} gave a {type(model).__name__}, not a torch.nn.Module")
        return self.wrap(model.eval(), identity, weights, identity.requested)

    def wrap(self, model: nn.Module, identity: ModelIdentity, weights: WeightsSpec, origin: str) -> LoadedModel:
        """A caller's module as a LoadedModel; a checkpoint is loaded into it when `weights.source` is a path."""
        if weights.source in ("auto", "random"):
            provenance = WeightsProvenance("as-given", False, False, factory=origin,
                                           searched=(f"{origin}: weights as the module holds them",))
            notes = (f"the weights are as {origin} made them: portproof loaded no checkpoint (give one as the weights "
                     "path to load it)",)
        else:
            path = checkpoint_in(Path(weights.source).expanduser())
            provenance = replace(apply_checkpoint(model, path, "file", True, None, weights,
                                                  searched=(f"{weights.source}: found",)), factory=origin)
            notes = ()
        model.eval()
        return LoadedModel(identity=identity, module=NamedOutputs(model).eval(), network=model, classifier_output="logits",
                           data_config=data_config_of(model), provenance=provenance,
                           num_parameters=count_parameters(model), family=self, notes=notes)

    def build_inputs(self, loaded: LoadedModel, spec: InputSpec) -> inputs.InputSet:
        name = first_argument(loaded.network)
        if loaded.data_config:
            return inputs.images(spec, loaded.data_config, name)
        shape = getattr(loaded.network, "input_shape", None)
        if shape is not None and spec.source in ("images", "random"):
            return inputs.random_inputs(spec, {name: tuple(shape)})
        raise InputError(f"model {loaded.identity.requested!r} declares no inputs (neither pretrained_cfg nor "
                         "input_shape): give a pkg.module:make_inputs callable that returns {name: tensor} as its inputs",
                         cli_hint="--inputs pkg.module:make_inputs")

