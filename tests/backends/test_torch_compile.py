"""CompileBackend: torch.compile with the mode a `+mode=` spec names, recorded in the side's description;
the spec syntax reads and refuses modes."""

from __future__ import annotations

import pytest
import torch

import toy_models
from portproof.backends.torch_compile import MODES, CompileBackend
from portproof.config import TargetSpec, parse_target
from portproof.errors import ConfigError


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_round_trips_through_the_spec_syntax(mode):
    spec = parse_target(f"compile@cuda:1/bf16+channels_last+mode={mode}+fp32=head")
    assert spec == TargetSpec("compile", "cuda", 1, "bf16", keep_fp32=("head",), channels_last=True, mode=mode)
    assert parse_target(spec.label) == spec
    assert spec.label == f"compile@cuda:1/bf16+channels_last+mode={mode}+fp32=head"


def test_an_unknown_mode_or_a_mode_for_a_backend_without_modes_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown mode 'fastest'; choose one of: default, reduce-overhead"):
        parse_target("compile@cuda+mode=fastest")
    with pytest.raises(ConfigError, match="unknown mode 'max-autotune'; onnxruntime has no modes"):
        parse_target("onnxruntime@cpu+mode=max-autotune")


def test_the_mode_reaches_torch_compile_and_the_description(monkeypatch):
    given = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **options: given.append(options) or real_compile(model, **options))
    backend = CompileBackend(parse_target("compile@cpu+mode=reduce-overhead"))
    backend.prepare(toy_models.make_model(), toy_models.make_inputs(2, 0))
    batch = toy_models.make_inputs(2, 1)
    with torch.no_grad():
        expected = toy_models.make_model().eval()(**batch)
    outputs = backend.run(batch)
    assert given == [{"mode": "reduce-overhead"}]
    assert all(torch.allclose(outputs[name], expected[name], rtol=1e-4, atol=1e-5) for name in expected)
    assert backend.describe()["compile_mode"] == "reduce-overhead"
    assert CompileBackend(TargetSpec("compile")).describe()["compile_mode"] == "default"
