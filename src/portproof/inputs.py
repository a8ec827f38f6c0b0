"""The input set both sides see, by name: bundled photos or the user's images through the model's own
preprocessing (timm's `create_transform` from the pretrained config), seeded random tensors, the tensors
a user's `pkg.module:make_inputs` returns, or a mapping passed from Python. The model family chooses
which of these its models take by default (models.ModelFamily.build_inputs).

A folder may hold anything. Files that are not readable images (text, corrupt or truncated images, images
above MAX_IMAGE_PIXELS or that timm's resize for the model would take above it, such as a 1x100000 strip)
are skipped and listed with the reason; other colour modes become RGB as timm's
datasets make them (`Image.convert("RGB")`), except 16- and 32-bit integer images, which are scaled to
8 bits first (PIL's conversion would clip them to white). Every image that was converted is recorded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import InputSpec
from .errors import InputError, describe, first_line
from .labelled import LabelledImages, find_labelled

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Larger images are skipped: decoding one takes gigabytes, and a small file can claim such a size (a
# "decompression bomb"). 10000 x 10000 is allowed; PIL's own guard (about 9459 x 9459) is not used instead.
MAX_IMAGE_PIXELS = 10_000 * 10_000
WIDE_INTEGER_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
CALLABLE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class InputSet:
    tensors: dict[str, torch.Tensor]  # name -> [num_samples, ...] on the CPU, in the order the model takes them
    kind: str  # "images" | "random" | "directory" | "callable" | "given"
    sources: tuple[str, ...]  # one file name per sample (empty for generated inputs)
    skipped: tuple[str, ...]  # files that could not be read, with the reason
    preprocessing: dict[str, Any]
    seed: int
    labels: tuple[int, ...] | None = None  # one class index per sample, when the inputs are labelled
    dataset: LabelledImages | None = None  # every labelled image (the samples above are its first ones)

    @property
    def num_samples(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def batches(self, batch_size: int) -> list[dict[str, torch.Tensor]]:
        """Consecutive slices of every input, `batch_size` samples each (the last may be shorter)."""
        return [{name: tensor[start:start + batch_size] for name, tensor in self.tensors.items()}
                for start in range(0, self.num_samples, batch_size)]


def images(spec: InputSpec, data_config: dict[str, Any], name: str, synsets: tuple[str, ...] | None = None) -> InputSet:
    """The bundled photos (`images`) or a folder of the user's, through timm's transform for `data_config`,
    as one input called `name`; seeded standard-normal tensors of the configured size for `random`. A folder
    of labelled images (labelled.py; `synsets` are the model's ImageNet classes) gives its first images as the
    samples, and all of them as the dataset whose accuracy is measured."""
    if spec.source == "random":
        return random_inputs(spec, {name: tuple(data_config["input_size"])})
    from timm.data import create_transform

    transform = create_transform(**data_config)
    preprocessing = {k: (list(v) if isinstance(v, tuple) else v) for k, v in data_config.items()}
    labelled = find_labelled(spec, synsets) if spec.source != "images" else None
    if labelled is not None:
        files = [Path(labelled.root) / file for file in labelled.files]
        found = _from_files(files, "labelled", spec, transform, preprocessing, data_config, name, root=Path(labelled.root))
        label_of = dict(zip(labelled.files, labelled.labels))
        return replace(found, labels=tuple(label_of[source] for source in found.sources), dataset=labelled)
    return image_files(spec, name, transform, preprocessing, data_config)


def image_files(spec: InputSpec, name: str, transform, preprocessing: dict[str, Any],
                data_config: dict[str, Any] | None = None) -> InputSet:
    """The bundled photos (`images`) or a folder's, each read as RGB and made a tensor by `transform` (a PIL
    image to a [C, H, W] tensor); `data_config` is timm's, when its resize bounds the size (read_rgb)."""
    if spec.source == "images":
        files = sorted(p for p in resources.files("portproof").joinpath("data/images").iterdir() if _is_image(p))
        kind = "images"
    else:
        directory = Path(spec.source).expanduser()
        if not directory.is_dir():
            raise InputError(f"inputs {spec.source}: not a directory; use images, random, a folder of images or "
                             "pkg.module:make_inputs")
        files = sorted(p for p in directory.iterdir() if p.is_file())
        kind = "directory"
    return _from_files(files, kind, spec, transform, preprocessing, data_config, name)


def random_inputs(spec: InputSpec, shapes: dict[str, tuple[int, ...]]) -> InputSet:
    """Seeded standard-normal float32 inputs, `spec.num_samples` of each per-sample shape."""
    generator = torch.Generator().manual_seed(spec.seed)
    tensors = {name: torch.randn((spec.num_samples, *shape), generator=generator) for name, shape in shapes.items()}
    return InputSet(tensors, "random", (), (), {"distribution": "standard normal"}, spec.seed)


def is_callable_spec(source: str) -> bool:
    """`pkg.module:function`, the way a model factory is named."""
    return CALLABLE_SPEC.match(source) is not None


def from_callable(spec: InputSpec) -> InputSet:
    """Inputs from the user's `pkg.module:make_inputs(num_samples, seed)`, which returns {name: tensor}."""
    from .families.python import import_object

    make = import_object(spec.source, InputError, "inputs")
    try:
        made = make(spec.num_samples, spec.seed)
    except Exception as error:
        raise InputError(f"inputs {spec.source}(num_samples={spec.num_samples}, seed={spec.seed}) raised "
                         f"{describe(error)}") from None
    return given(made, "callable", spec.seed, {"callable": spec.source})


def given(inputs: Any, kind: str = "given", seed: int = 0, preprocessing: dict[str, Any] | None = None) -> InputSet:
    """An InputSet from a caller's tensor or {name: tensor}: each on the CPU, with the same number of samples."""
    if isinstance(inputs, torch.Tensor):
        inputs = {"input": inputs}
    if not isinstance(inputs, dict) or not inputs or not all(isinstance(v, torch.Tensor) for v in inputs.values()):
        raise InputError(f"inputs must be a tensor or a non-empty dict of tensors, got {type(inputs).__name__}")
    tensors = {str(name): tensor.detach().cpu() for name, tensor in inputs.items()}
    counts = {name: (tensor.shape[0] if tensor.dim() else 0) for name, tensor in tensors.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise InputError(f"every input needs the same number of samples in dimension 0, got "
                         f"{', '.join(f'{n} {c}' for n, c in counts.items())}")
    return InputSet(tensors, kind, (), (), dict(preprocessing or {}), seed)


def _from_files(files: list, kind: str, spec: InputSpec, transform, preprocessing: dict[str, Any],
                data_config: dict[str, Any] | None, name: str, root: Path | None = None) -> InputSet:
    """The first `spec.num_samples` readable images of `files`, each named by its path under `root` (by its
    file name without one)."""
    tensors, sources, skipped, converted = [], [], [], []
    for path in files:
        if len(tensors) == spec.num_samples:
            break
        shown = path.relative_to(root).as_posix() if root is not None else path.name
        try:
            rgb, conversion = read_rgb(path, data_config)
            tensors.append(transform(rgb))
        except Exception as error:  # PIL raises many kinds for a file that is not a readable image
            skipped.append(f"{shown}: {_reason(error)}")
            continue
        sources.append(shown)
        if conversion:
            converted.append(f"{shown}: {conversion}")
    if not tensors:
        why = f" ({'; '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''})" if skipped else ""
        raise InputError(f"no readable image among {len(files)} files of the inputs folder {spec.source}{why}; "
                         "give a folder of images")
    # Fewer files than samples: cycle through them, so the sample count (and batch shapes) stay as asked.
    readable = len(tensors)
    for i in range(readable, spec.num_samples):
        tensors.append(tensors[i % readable])
        sources.append(sources[i % readable])
    preprocessing = dict(preprocessing)
    if converted:
        preprocessing["converted_to_rgb"] = converted
    return InputSet({name: torch.stack(tensors)}, kind, tuple(sources), tuple(skipped), preprocessing, spec.seed)


def read_rgb(path, data_config: dict[str, Any] | None = None) -> tuple[Any, str | None]:
    """The image as 8-bit RGB, and how it was converted (None when it was RGB already). Refused from its
    header, before decoding, when it or (given `data_config`) its resize for the model is too large."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies, below
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _TooLarge(f"{width}x{height} pixels")
            if data_config is not None:
                _check_resized_size(width, height, data_config)
            mode = image.mode
            if mode == "RGB":
                return image.convert("RGB"), None
            if mode in WIDE_INTEGER_MODES:
                # 16-bit (or 32-bit) grey: scale to 8 bits; PIL's convert would clip everything above 255
                array = np.asarray(image, dtype=np.float64)
                top = float(array.max(initial=0))
                scale = 65535.0 if mode.startswith("I;16") else 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
                eight_bit = np.clip(np.rint(array * (255.0 / scale)), 0, 255).astype(np.uint8)
                return Image.fromarray(eight_bit, "L").convert("RGB"), f"{mode} scaled to 8 bits, then RGB"
            return image.convert("RGB"), f"{mode} to RGB"


def resized_size(width: int, height: int, data_config: dict[str, Any]) -> tuple[int, int]:
    """(width, height) that timm's eval transform for `data_config` resizes a width x height image to
    before its crop (timm.data.transforms_imagenet_eval): a long thin image keeps its aspect ratio under the
    default center crop, so its long side grows with it."""
    from timm.data.constants import DEFAULT_CROP_PCT

    size = data_config.get("input_size", 224)
    target_h, target_w = (size, size) if isinstance(size, int) else tuple(size[-2:])
    crop_pct = data_config.get("crop_pct") or DEFAULT_CROP_PCT
    scale_h, scale_w = math.floor(target_h / crop_pct), math.floor(target_w / crop_pct)
    mode = data_config.get("crop_mode")
    if mode == "squash":  # both sides to the scale size, aspect ratio not kept
        return scale_w, scale_h
    if mode != "border" and scale_h == scale_w:  # torchvision's Resize(int): shorter side to the scale size
        short, long = sorted((width, height))
        new_short, new_long = scale_h, int(scale_h * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)
    # timm's ResizeKeepRatio: "border" fits the longer side, "center" (non-square input) the shorter one
    ratio_h, ratio_w = height / scale_h, width / scale_w
    ratio = max(ratio_h, ratio_w) if mode == "border" else min(ratio_h, ratio_w)
    return round(width / ratio), round(height / ratio)


def _check_resized_size(width: int, height: int, data_config: dict[str, Any]) -> None:
    if not width or not height:
        return  # nothing to resize; decoding says what is wrong with it
    new_width, new_height = resized_size(width, height, data_config)
    if new_width * new_height > MAX_IMAGE_PIXELS:
        raise _ResizedTooLarge(f"{width}x{height} pixels would be resized to {new_width}x{new_height} "
                               f"({new_width * new_height / 1e9:.1f} G pixels) before the crop")


class _TooLarge(Exception):
    pass


class _ResizedTooLarge(Exception):
    pass


def _reason(error: Exception) -> str:
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, _ResizedTooLarge):
        return (f"too elongated: {error}; the limit is {MAX_IMAGE_PIXELS:,} pixels: crop it closer to the "
                "model's aspect ratio")
    if isinstance(error, (_TooLarge, Image.DecompressionBombError)):
        size = str(error) if isinstance(error, _TooLarge) else first_line(error)
        return f"too large ({size}); the limit is {MAX_IMAGE_PIXELS:,} pixels (10000x10000): downscale it"
    if isinstance(error, UnidentifiedImageError):
        return "not an image PIL can read"
    return f"unreadable image ({describe(error)})"


def _is_image(path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES)
