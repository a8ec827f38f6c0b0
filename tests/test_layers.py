"""The layer pass names the module where a target parts ways with the reference."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import timm
import torch
from torch import nn

from portproof.config import Criteria
from portproof.errors import ConfigError
from portproof.layers import compare_layers, layer_metrics


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224").eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def altered(model: nn.Module, module_name: str, hook) -> nn.Module:
    target = copy.deepcopy(model)
    target.get_submodule(module_name).register_forward_hook(hook)
    return target


def test_unaltered_copy_shows_no_divergence_at_all(vit, images):
    report = compare_layers(vit, copy.deepcopy(vit), images)
    assert report.first_divergent is None and report.first_divergent_accumulated is None
    assert len(report.rows) > 150
    for row in report.rows:
        for metrics in (row.accumulated, row.local):
            assert metrics.error is None and metrics.rel_l2 == 0.0 and metrics.cosine == 1.0, row.label


@pytest.mark.parametrize("culprit, hook", [
    ("blocks.4.mlp.fc2", lambda module, inputs, output: output * 1.5),
    ("blocks.7.attn.proj", lambda module, inputs, output: output + 0.5),
    ("blocks.2.attn.qkv", lambda module, inputs, output: output.index_fill(-1, torch.tensor([3]), float("nan"))),
])
def test_an_altered_module_is_named_first_in_both_modes(vit, images, culprit, hook):
    report = compare_layers(vit, altered(vit, culprit, hook), images)
    assert report.first_divergent == culprit
    assert report.first_divergent_accumulated == culprit
    assert report.worst_local[0] == culprit
    row = report.row(culprit)
    if "qkv" in culprit:
        assert row.local.target_nonfinite == 2 * 197 and row.local.reference_nonfinite == 0
    else:
        assert row.local.rel_l2 > 0.01


def test_a_huge_layernorm_eps_is_named(vit, images):
    target = copy.deepcopy(vit)
    target.blocks[5].norm2.eps = 1e3
    report = compare_layers(vit, target, images)
    assert report.first_divergent == "blocks.5.norm2" == report.first_divergent_accumulated
    # the module after it gets the reference's input in local mode, so its own error stays nil
    assert report.row("blocks.5.mlp.fc1").local.rel_l2 == 0.0
    assert report.row("blocks.5.mlp.fc1").accumulated.rel_l2 > 0.01


def test_a_module_that_raises_is_reported_and_the_pass_goes_on(vit, images):
    def explode(*args, **kwargs):
        raise RuntimeError("kernel not implemented for this dtype\nlong driver dump")

    target = copy.deepcopy(vit)
    target.blocks[3].attn.proj.forward = explode
    report = compare_layers(vit, target, images)
    row = report.row("blocks.3.attn.proj")
    assert row.local.error == "raised RuntimeError: kernel not implemented for this dtype"
    assert row.accumulated.error == row.local.error
    assert report.first_divergent == "blocks.3.attn.proj"
    later = report.row("blocks.9.mlp.fc1")
    assert later.local.rel_l2 == 0.0  # the local pass went on past the failure
    assert later.accumulated.error == "not reached: blocks.3.attn.proj raised first"


def test_bf16_target_gives_a_profile_and_a_ranking(vit, images):
    report = compare_layers(vit, vit, images, target="cpu/bf16")
    qkv = report.row("blocks.0.attn.qkv")
    assert qkv.local.target_dtype == "bfloat16" and 0 < qkv.local.rel_l2 < 0.02
    assert len(report.worst_local) == 10
    ranked = [report.row(label).local.rel_l2 for label in report.worst_local]
    assert ranked == sorted(ranked, reverse=True)
    # error accumulates: the last block's output is further off than the first's
    assert report.row("blocks.11").accumulated.rel_l2 > report.row("blocks.0").accumulated.rel_l2


class Split(nn.Module):
    def forward(self, x):
        return x[..., :2], {"rest": x[..., 2:]}


class Toy(nn.Module):
    """A module called twice, one returning a tuple with a dict inside, and an in-place ReLU."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = nn.ReLU(inplace=True)
        self.split = Split()

    def forward(self, x):
        x = self.act(self.lin(x))
        x = self.lin(x)
        head, tail = self.split(x)
        return head.sum(-1) + tail["rest"].sum(-1)


def test_repeated_calls_tuple_outputs_and_in_place_operations():
    torch.manual_seed(0)
    model = Toy().eval()
    report = compare_layers(model, copy.deepcopy(model), torch.randn(3, 4))
    labels = [row.label for row in report.rows]
    assert labels == ["lin", "act", "lin#2", "split[0]", "split[1][rest]", "(model)"]
    assert all(row.accumulated.rel_l2 == 0.0 and row.local.rel_l2 == 0.0 for row in report.rows)
    assert report.first_divergent is None


def test_models_with_other_module_names_are_refused(vit):
    other = timm.create_model("test_vit")
    with pytest.raises(ConfigError, match="only in the reference: .*only in the target"):
        compare_layers(vit, other, torch.randn(1, 3, 224, 224))


def test_layer_metrics_on_hand_made_tensors():
    reference = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    target = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    metrics = layer_metrics(reference, target)
    assert metrics.rel_l2 == pytest.approx(1 / 5)
    assert metrics.cosine == pytest.approx(25 / (5 * 26 ** 0.5))
    assert metrics.max_abs_diff == 1.0 and metrics.mean_abs_diff == 0.25
    zeros = layer_metrics(torch.zeros(3), torch.zeros(3))
    assert zeros.cosine == 1.0 and zeros.rel_l2 == 0.0
    broken = layer_metrics(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, float("nan"), 3.0]))
    assert broken.target_nonfinite == 1 and broken.rel_l2 == 0.0 and broken.diverges(Criteria())


def test_onnxruntime_target_maps_graph_values_to_modules_and_says_what_it_could_not(vit, images):
    from portproof.config import parse_target
    from portproof.layers_onnx import compare_layers_onnx

    report = compare_layers_onnx(vit, images, parse_target("onnxruntime@cpu"), Criteria())
    mapped = [row for row in report.rows if row.accumulated.error is None]
    assert len(mapped) >= 120 and report.first_divergent_accumulated is None
    # a value mapped to the wrong module would differ by far more than ONNX Runtime's rounding
    assert all(row.accumulated.rel_l2 < 1e-5 for row in mapped)
    assert {"blocks.0.attn.qkv", "blocks.11.mlp.fc2", "blocks.5", "head", "(model)"} <= {row.label for row in mapped}
    identity = report.row("blocks.0.ls1")
    assert identity.accumulated.error == "not mapped: no operation of its own in the exported graph"
    assert report.row("blocks.0.attn.qkv").local.error.startswith("not available")
    assert report.first_divergent is None
    assert any(f"{len(mapped)} of {len(report.rows)} module outputs mapped" in note for note in report.notes)


@pytest.mark.parametrize("case", ["close", "far", "zeros", "one_nan", "scaled"])
def test_layer_metrics_and_output_metrics_agree_on_the_same_tensors(case):
    """Two implementations of the same definitions (layer_metrics is built for speed, in float32 with float64
    sums; compare_outputs in float64): a test holds them equal."""
    from portproof.compare import compare_outputs

    generator = torch.Generator().manual_seed(7)
    reference = torch.randn(4, 50, generator=generator)
    target = {"close": reference + 1e-4 * torch.randn(4, 50, generator=generator),
              "far": torch.randn(4, 50, generator=generator),
              "zeros": torch.zeros(4, 50),
              "one_nan": reference.clone().index_put_((torch.tensor([1]), torch.tensor([3])), torch.tensor(float("nan"))),
              "scaled": 3.0 * reference}[case]
    layer = layer_metrics(reference, target)
    output = compare_outputs(reference, target)
    assert layer.cosine == pytest.approx(output.cosine_similarity, rel=1e-6, abs=1e-7)
    assert layer.rel_l2 == pytest.approx(output.rel_l2, rel=1e-5)
    assert layer.max_abs_diff == pytest.approx(output.max_abs_diff, rel=1e-6)
    assert layer.mean_abs_diff == pytest.approx(output.mean_abs_diff, rel=1e-5)
    assert layer.target_nonfinite == output.target_nonfinite.total


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Linear(4, 4)

    def forward(self, x):
        return self.out(self.drop(self.lin(x)))


class Doubling(Residual):
    def forward(self, x):
        return self.out(self.drop(self.lin(x) * 2))  # where the reference's drop gets lin's output itself


def test_a_target_whose_code_hands_a_pass_through_something_else_is_compared_as_it_runs():
    torch.manual_seed(0)
    reference = Residual().eval()
    target = Doubling().eval()
    target.load_state_dict(reference.state_dict())
    report = compare_layers(reference, target, torch.randn(3, 4))
    assert report.row("lin").accumulated.rel_l2 == 0.0
    assert report.row("drop").accumulated.rel_l2 == pytest.approx(1.0)  # 2t against t
    assert report.row("drop").local.rel_l2 == 0.0  # fed the reference's input, as every module in local mode
    assert report.row("out").local.rel_l2 == 0.0 and report.row("out").accumulated.rel_l2 > 0.5
    assert report.first_divergent_accumulated == "drop"


def test_the_pass_leaves_nothing_for_the_garbage_collector(vit, images, monkeypatch):
    """The model copy and the pass's state are freed when compare_layers returns, not kept in reference cycles
    until a collection (the copy alone is the size of the model)."""
    import gc
    import weakref

    from portproof import layers

    made = []
    start = layers._Session.__init__
    monkeypatch.setattr(layers._Session, "__init__", lambda session, *args: (
        start(session, *args), made.extend([weakref.ref(session), weakref.ref(session.backend.model)]))[0])
    gc.collect()
    gc.disable()
    try:
        compare_layers(vit, vit, images, target="cpu/bf16")
        assert [ref() for ref in made] == [None, None]
    finally:
        gc.enable()


class RecordsTF32(nn.Linear):
    seen: list = []

    def forward(self, x):
        RecordsTF32.seen.append((x.device.type, torch.backends.cuda.matmul.allow_tf32))
        return super().forward(x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TF32 is a CUDA matmul mode")
def test_a_tf32_targets_modules_run_with_tf32_and_the_references_without():
    RecordsTF32.seen.clear()
    model = nn.Sequential(RecordsTF32(8, 8), nn.ReLU(), RecordsTF32(8, 8)).eval()
    before = torch.backends.cuda.matmul.allow_tf32
    compare_layers(model, model, torch.randn(4, 8), target="cuda/tf32")
    assert torch.backends.cuda.matmul.allow_tf32 == before
    assert {flag for device, flag in RecordsTF32.seen if device == "cuda"} == {True}
    assert {flag for device, flag in RecordsTF32.seen if device == "cpu"} == {before}


def test_the_local_mode_alone_gives_the_local_rows_of_both(vit, images):
    both = compare_layers(vit, vit, images, target="cpu/bf16")
    local = compare_layers(vit, vit, images, target="cpu/bf16", modes=("local",))
    # the same to the last bits or so: with both modes, the local one reuses ‖reference‖² (as a squared norm)
    for alone, together in zip(local.rows, both.rows):
        assert dataclasses.asdict(alone.local) == pytest.approx(dataclasses.asdict(together.local), rel=1e-12), alone.label
    assert {row.accumulated.error for row in local.rows} == {"not compared: only the local mode ran"}
    assert local.first_divergent == both.first_divergent and local.worst_local == both.worst_local
    assert local.first_divergent_accumulated is None
    accumulated = compare_layers(vit, vit, images, target="cpu/bf16", modes=("accumulated",))
    assert [row.accumulated for row in accumulated.rows] == [row.accumulated for row in both.rows]  # it comes first
    with pytest.raises(ConfigError, match="modes are accumulated and local"):
        compare_layers(vit, vit, images, modes=("global",))
