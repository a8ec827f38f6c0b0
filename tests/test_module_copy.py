"""cast_copy gives what copy.deepcopy(model).to(device, dtype) gives: the same modules, values, dtypes, tied
weights and hooks, nothing shared with the original, and classes with their own copying protocol copied by it."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from torch import nn

from portproof.module_copy import cast_copy


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embedding.weight  # tied, as language models tie them
        self.register_buffer("steps", torch.arange(3))  # an integer buffer keeps its dtype
        self.register_buffer("absent", None)
        self.settings = {"scale": 2.0, "names": ["a"]}  # a plain attribute, deep-copied
        self.frozen = nn.Parameter(torch.ones(4), requires_grad=False)

    def forward(self, ids):
        return self.head(self.embedding(ids) * self.settings["scale"] + self.frozen) + self.steps.sum()


class OwnCopy(nn.Linear):
    copies = 0

    def __deepcopy__(self, memo):
        OwnCopy.copies += 1
        new = OwnCopy(self.in_features, self.out_features)
        new.load_state_dict(self.state_dict())
        return new


def assert_same_as_deepcopy(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    expected = copy.deepcopy(model).to(dtype=dtype)
    copied = cast_copy(model, "cpu", dtype)
    assert [name for name, _ in copied.named_modules()] == [name for name, _ in expected.named_modules()]
    assert [type(m) for m in copied.modules()] == [type(m) for m in expected.modules()]
    got, want = copied.state_dict(keep_vars=True), expected.state_dict(keep_vars=True)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].dtype == want[name].dtype and torch.equal(got[name], want[name]), name
        assert type(got[name]) is type(want[name]) and got[name].requires_grad == want[name].requires_grad, name
    originals = {t.data_ptr() for t in model.state_dict().values()}
    assert not originals & {t.data_ptr() for t in copied.state_dict().values()}  # nothing shared with the original
    return copied


@pytest.mark.parametrize("dtype", [None, torch.bfloat16, torch.float16])
def test_a_timm_model_is_copied_as_deepcopy_copies_it(dtype):
    torch.manual_seed(0)
    model = timm.create_model("test_vit").eval()
    copied = assert_same_as_deepcopy(model, dtype)
    images = torch.randn(2, 3, 160, 160).to(dtype or torch.float32)
    with torch.no_grad():
        assert torch.equal(copied(images), copy.deepcopy(model).to(dtype=dtype)(images))


def test_tied_weights_stay_tied_and_attributes_are_not_shared():
    model = Tied()
    copied = assert_same_as_deepcopy(model, torch.bfloat16)
    assert copied.head.weight is copied.embedding.weight
    assert copied.steps.dtype == torch.int64 and copied.absent is None and not copied.frozen.requires_grad
    copied.settings["names"].append("b")
    assert model.settings["names"] == ["a"]


def test_hooks_on_the_original_are_copied_and_new_hooks_stay_on_the_copy():
    model = Tied()
    calls = []
    model.head.register_forward_hook(lambda module, args, output: calls.append("user hook"))
    copied = cast_copy(model)
    copied.embedding.register_forward_hook(lambda module, args, output: calls.append("copy's hook"))
    copied(torch.tensor([1, 2]))
    assert calls == ["copy's hook", "user hook"]
    calls.clear()
    model(torch.tensor([1, 2]))
    assert calls == ["user hook"]


def test_a_class_with_its_own_deepcopy_is_copied_by_it():
    model = nn.Sequential(OwnCopy(3, 2), nn.ReLU())
    before = OwnCopy.copies
    copied = cast_copy(model, dtype=torch.float16)
    assert OwnCopy.copies == before + 1
    assert copied[0].weight.dtype == torch.float16 and copied[0] is not model[0]
    assert torch.equal(copied[0].weight, model[0].weight.half())
