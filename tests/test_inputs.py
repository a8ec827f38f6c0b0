"""Input sets: bundled photos through the model's own preprocessing, seeded random tensors, folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from portproof import inputs
from portproof.config import InputSpec
from portproof.errors import InputError

VIT_TINY_CONFIG = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                   "std": (0.5, 0.5, 0.5), "crop_pct": 0.9, "crop_mode": "center"}


def preprocess_by_hand(path) -> torch.Tensor:
    """vit_tiny's pretrained preprocessing written out: shorter side to int(224 / 0.9) = 248 (bicubic),
    centre crop 224, scale to [0, 1], (x - 0.5) / 0.5."""
    import torchvision.transforms.functional as F

    image = Image.open(path).convert("RGB")
    image = F.resize(image, 248, interpolation=F.InterpolationMode.BICUBIC)
    image = F.center_crop(image, 224)
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - 0.5) / 0.5


def test_bundled_images_are_eight_distinct_photos_preprocessed_as_the_model_expects():
    input_set = inputs.images(InputSpec(), VIT_TINY_CONFIG, "x")
    assert input_set.tensors["x"].shape == (8, 3, 224, 224) and input_set.kind == "images"
    assert len(set(input_set.sources)) == 8 and not input_set.skipped
    from importlib import resources
    first = resources.files("portproof").joinpath("data/images", input_set.sources[0])
    assert torch.allclose(input_set.tensors["x"][0], preprocess_by_hand(first), atol=1e-6)
    flat = input_set.tensors["x"].reshape(8, -1)
    assert all(not torch.equal(flat[i], flat[j]) for i in range(8) for j in range(i))


def test_bundled_grayscale_photo_becomes_three_equal_channels():
    input_set = inputs.images(InputSpec(), VIT_TINY_CONFIG, "x")
    brick = input_set.tensors["x"][input_set.sources.index("brick.jpg")]
    assert torch.equal(brick[0], brick[1]) and torch.equal(brick[1], brick[2])


def test_random_inputs_are_seeded():
    a = inputs.images(InputSpec(source="random", num_samples=3, seed=5), VIT_TINY_CONFIG, "x").tensors["x"]
    b = inputs.images(InputSpec(source="random", num_samples=3, seed=5), VIT_TINY_CONFIG, "x").tensors["x"]
    c = inputs.images(InputSpec(source="random", num_samples=3, seed=6), VIT_TINY_CONFIG, "x").tensors["x"]
    assert a.shape == (3, 3, 224, 224) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, torch.randn((3, 3, 224, 224), generator=torch.Generator().manual_seed(5)))


def test_user_folder_is_cycled_to_the_sample_count_and_skips_unreadable_files(tmp_path):
    Image.new("RGB", (300, 260), (200, 10, 10)).save(tmp_path / "a.png")
    Image.new("RGB", (260, 300), (10, 200, 10)).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    input_set = inputs.images(InputSpec(source=str(tmp_path), num_samples=5), VIT_TINY_CONFIG, "x")
    assert input_set.sources == ("a.png", "b.jpg", "a.png", "b.jpg", "a.png")
    assert torch.equal(input_set.tensors["x"][0], input_set.tensors["x"][2]) and not torch.equal(input_set.tensors["x"][0], input_set.tensors["x"][1])
    assert len(input_set.skipped) == 1 and input_set.skipped[0].startswith("notes.txt:")


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(InputError, match="no readable image"):
        inputs.images(InputSpec(source=str(tmp_path)), VIT_TINY_CONFIG, "x")


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        inputs.images(InputSpec(source=str(tmp_path / "nope")), VIT_TINY_CONFIG, "x")


def test_batches_split_the_samples():
    input_set = inputs.images(InputSpec(source="random", num_samples=5), VIT_TINY_CONFIG, "x")
    batches = input_set.batches(2)
    assert [b["x"].shape[0] for b in batches] == [2, 2, 1]
    assert torch.equal(torch.cat([b["x"] for b in batches]), input_set.tensors["x"])
