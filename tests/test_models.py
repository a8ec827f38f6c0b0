"""Model names, the comparison wrapper and the public API list."""

from __future__ import annotations

import pytest
import timm
import torch

import portproof
from portproof import models
from portproof.config import ModelSpec, WeightsSpec
from portproof.errors import ModelNotFoundError

FULL = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"


@pytest.mark.parametrize("name", [
    "vit_tiny_patch16_224", FULL, f"timm/{FULL}", f"hf-hub:timm/{FULL}", f"  {FULL} ",
])
def test_every_spelling_of_a_timm_name_resolves_to_the_same_model(name):
    _, identity = models.resolve(ModelSpec(name))
    assert (identity.architecture, identity.tag, identity.hub_repo) == (
        "vit_tiny_patch16_224", "augreg_in21k_ft_in1k", f"timm/{FULL}")
    assert identity.full_name == FULL


def test_other_tag_is_kept():
    _, identity = models.resolve(ModelSpec("vit_tiny_patch16_224.augreg_in21k"))
    assert identity.hub_repo == "timm/vit_tiny_patch16_224.augreg_in21k"


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelNotFoundError, match="unknown model 'vit_tiny_patch16_22'; did you mean: .*vit_tiny_patch16_224"):
        models.resolve(ModelSpec("vit_tiny_patch16_22"))


def test_unknown_tag_lists_the_known_tags():
    with pytest.raises(ModelNotFoundError, match="no pretrained tag 'nope'.*augreg_in21k_ft_in1k"):
        models.resolve(ModelSpec("vit_tiny_patch16_224.nope"))


def test_foreign_hub_owner_is_refused_with_a_way_out():
    with pytest.raises(ModelNotFoundError, match="only timm's own hub repositories.*checkpoint's path") as info:
        models.resolve(ModelSpec("someone/vit_tiny_patch16_224"))
    assert info.value.cli_hint == "--weights PATH"


def test_classifier_wrapper_returns_the_models_own_logits_and_pre_logits_features():
    loaded = models.load(ModelSpec("test_vit"), WeightsSpec(source="random"))
    assert loaded.classifier_output == "logits"
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        outputs = loaded.module(x=x)
        assert list(outputs) == ["logits", "features"]
        logits, features = outputs["logits"], outputs["features"]
        inner = loaded.module.model
        assert torch.allclose(logits, inner(x), atol=1e-6)
        assert torch.allclose(logits, inner.head(features), atol=1e-5)  # features are what the head sees
    assert features.shape == (2, inner.embed_dim) and logits.shape == (2, 1000)
    assert loaded.data_config["input_size"] == (3, 160, 160)
    assert loaded.num_parameters == sum(p.numel() for p in timm.create_model("test_vit").parameters())


def test_public_api_is_what_all_lists():
    assert sorted(portproof.__all__) == sorted([
        "CheckConfig", "CheckResult", "Criteria", "InputSpec", "LayerReport", "ModelSpec", "OutputComparison", "OutputSpec",
        "PortproofError", "Session", "TargetResult", "TargetSpec", "TimingSpec", "Verdict", "WeightsSpec",
        "compare_layers", "compare_outputs", "judge", "keep_fp32", "parse_target", "register_backend", "register_criterion",
        "register_family", "rescue", "run_check",
    ])
    assert all(hasattr(portproof, name) for name in portproof.__all__)
