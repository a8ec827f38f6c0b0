"""Input sets: bundled photos through the model's own preprocessing, seeded random tensors, folders; a hostile
image folder (issue 4): corrupt, non-image, grayscale, CMYK, 16-bit and oversized files."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from portproof import inputs
from portproof.config import InputSpec
from portproof.errors import InputError

from helpers import last_error_line, run_check

VIT_TINY_CONFIG = {"input_size": (3, 224, 224), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                   "std": (0.5, 0.5, 0.5), "crop_pct": 0.9, "crop_mode": "center"}
TEST_VIT_CONFIG = {"input_size": (3, 160, 160), "interpolation": "bicubic", "mean": (0.5, 0.5, 0.5),
                   "std": (0.5, 0.5, 0.5), "crop_pct": 0.875, "crop_mode": "center"}


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


# --- image folder: corrupt, non-image, grayscale, CMYK, 16-bit, larger than 10k x 10k ------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming width x height, with almost no pixel data: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def hostile_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (180, 200, 3), dtype=np.uint8), "RGB").save(folder / "a_rgb.png")
    Image.fromarray(rng.integers(0, 255, (170, 190), dtype=np.uint8), "L").save(folder / "b_gray.png")
    Image.fromarray(rng.integers(0, 255, (170, 190, 4), dtype=np.uint8), "CMYK").save(folder / "c_cmyk.jpg")
    gradient = np.tile(np.linspace(0, 65535, 200).astype(np.uint16), (180, 1))
    Image.fromarray(gradient).save(folder / "d_16bit.png")
    Image.fromarray(rng.integers(0, 255, (180, 200, 3), dtype=np.uint8), "RGB").save(folder / "e_cut.jpg")
    whole = (folder / "e_cut.jpg").read_bytes()
    (folder / "e_cut.jpg").write_bytes(whole[: len(whole) // 3])  # a download cut short
    (folder / "f_notes.txt").write_text("not an image")
    (folder / "g_fake.png").write_bytes(os.urandom(512))
    (folder / "h_empty.jpg").write_bytes(b"")
    png_header_only(folder / "i_bomb.png", 10_001, 10_001)  # above the 10000 x 10000 limit
    png_header_only(folder / "j_megabomb.png", 60_000, 60_000)  # above PIL's own DecompressionBombError limit
    return folder


def test_hostile_image_folder_skips_and_lists_bad_files_and_converts_modes_as_timm(hostile_folder):
    from timm.data import create_transform

    input_set = inputs.images(InputSpec(source=str(hostile_folder), num_samples=11), TEST_VIT_CONFIG, "x")
    assert input_set.sources[:5] == ("a_rgb.png", "b_gray.png", "c_cmyk.jpg", "d_16bit.png", "a_rgb.png")
    skipped = dict(entry.split(": ", 1) for entry in input_set.skipped)
    assert set(skipped) == {"e_cut.jpg", "f_notes.txt", "g_fake.png", "h_empty.jpg", "i_bomb.png", "j_megabomb.png"}
    assert skipped["e_cut.jpg"].startswith("unreadable image (OSError: image file is truncated")
    assert skipped["f_notes.txt"] == skipped["g_fake.png"] == skipped["h_empty.jpg"] == "not an image PIL can read"
    assert skipped["i_bomb.png"].startswith("too large (10001x10001 pixels); the limit is 100,000,000 pixels")
    assert skipped["j_megabomb.png"].startswith("too large (Image size (3600000000 pixels) exceeds limit")

    transform = create_transform(**TEST_VIT_CONFIG)
    for index, name in ((1, "b_gray.png"), (2, "c_cmyk.jpg")):  # exactly timm's Image.convert("RGB")
        with Image.open(hostile_folder / name) as image:
            assert torch.equal(input_set.tensors["x"][index], transform(image.convert("RGB")))
    # 16-bit: scaled to 8 bits (PIL's convert would clip every value above 255 to white)
    eight_bit = Image.fromarray(np.rint(np.asarray(Image.open(hostile_folder / "d_16bit.png")) / 257).astype(np.uint8), "L")
    assert torch.allclose(input_set.tensors["x"][3], transform(eight_bit.convert("RGB")), atol=1e-6)
    assert input_set.tensors["x"][3].std() > 0.3  # a gradient, not a white page
    assert input_set.preprocessing["converted_to_rgb"] == [
        "b_gray.png: L to RGB", "c_cmyk.jpg: CMYK to RGB", "d_16bit.png: I;16 scaled to 8 bits, then RGB"]


def test_limit_is_ours_not_pils_warning_threshold(tmp_path):
    """9500 x 9500 is above PIL's DecompressionBombWarning threshold but within ours: it is decoded (here
    it then fails as truncated), and PIL's warning does not become an error."""
    png_header_only(tmp_path / "big.png", 9500, 9500)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "ok.png")
    with _no_bomb_warning():
        input_set = inputs.images(InputSpec(source=str(tmp_path), num_samples=1), TEST_VIT_CONFIG, "x")
    assert input_set.sources == ("ok.png",)
    assert input_set.skipped[0].startswith("big.png: unreadable image") and "too large" not in input_set.skipped[0]


class _no_bomb_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not [w for w in self.caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_folder_with_nothing_readable_is_an_error_saying_why(hostile_folder, tmp_path, capsys):
    for good in ("a_rgb.png", "b_gray.png", "c_cmyk.jpg", "d_16bit.png"):
        (hostile_folder / good).unlink()
    with pytest.raises(InputError, match=r"no readable image among 6 files .*e_cut\.jpg: unreadable image"):
        inputs.images(InputSpec(source=str(hostile_folder)), TEST_VIT_CONFIG, "x")
    code, summary = run_check(tmp_path / "out", "--inputs", str(hostile_folder))
    assert code == 2 and summary is None and "no readable image" in last_error_line(capsys)


def test_hostile_folder_end_to_end_lists_skipped_files_in_the_summary(hostile_folder, tmp_path):
    code, summary = run_check(tmp_path / "out", "--inputs", str(hostile_folder), "--num-samples", "6", "--target", "cpu")
    assert code == 0
    assert summary["inputs"]["sources"] == ["a_rgb.png", "b_gray.png", "c_cmyk.jpg", "d_16bit.png", "a_rgb.png", "b_gray.png"]
    assert len(summary["inputs"]["skipped"]) == 6 and summary["inputs"]["preprocessing"]["converted_to_rgb"]
    assert "i_bomb.png" in (tmp_path / "out" / "report.md").read_text()


# --- bombs by shape: small on disk, huge once resized for the model ----------------------------------------


def test_an_image_whose_resize_would_be_huge_is_skipped_from_its_header(tmp_path, monkeypatch):
    """1 x 100000 pixels decodes to 300 kB, but timm's shorter-side resize to int(224 / 0.9) = 248 would
    make it 248 x 24,800,000 (18 GB as RGB): skipped with both sizes, and never decoded."""
    from PIL import PngImagePlugin

    Image.new("RGB", (1, 100_000), (9, 9, 9)).save(tmp_path / "strip.png")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "ok.png")
    assert (tmp_path / "strip.png").stat().st_size < 10_000  # small on disk: the size limit alone lets it in
    decoded = []
    decode = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load",
                        lambda image: decoded.append(Path(image.filename).name) or decode(image))

    input_set = inputs.images(InputSpec(source=str(tmp_path), num_samples=2), VIT_TINY_CONFIG, "x")
    assert input_set.sources == ("ok.png", "ok.png") and "strip.png" not in decoded and "ok.png" in decoded
    assert input_set.skipped == (
        "strip.png: too elongated: 1x100000 pixels would be resized to 248x24800000 (6.2 G pixels) before the "
        "crop; the limit is 100,000,000 pixels: crop it closer to the model's aspect ratio",)


@pytest.mark.parametrize("config", [
    VIT_TINY_CONFIG,  # square input, center crop: torchvision's Resize(shorter side)
    {**TEST_VIT_CONFIG, "input_size": (3, 224, 320), "crop_pct": 0.95},  # non-square: timm's ResizeKeepRatio
    {**VIT_TINY_CONFIG, "crop_mode": "squash", "crop_pct": 1.0},
    {**VIT_TINY_CONFIG, "input_size": (3, 256, 192), "crop_mode": "border"},
    {**VIT_TINY_CONFIG, "crop_pct": None, "crop_mode": None},  # timm's defaults: 0.875, center
])
def test_resized_size_is_what_timms_transform_resizes_to(config):
    from timm.data import create_transform

    resize = create_transform(**config).transforms[0]
    for width, height in ((3, 700), (700, 3), (200, 180), (181, 999), (17, 17)):
        assert inputs.resized_size(width, height, config) == resize(Image.new("RGB", (width, height))).size
