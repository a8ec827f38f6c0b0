"""The input set both sides see: bundled photos or the user's images through the model's own
preprocessing (timm's `create_transform` from the pretrained config), or seeded random tensors."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .config import InputSpec
from .errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class InputSet:
    tensor: torch.Tensor  # [num_samples, C, H, W], float32, on the CPU
    kind: str  # "images" | "random" | "directory"
    sources: tuple[str, ...]  # one file name per sample (empty for random inputs)
    skipped: tuple[str, ...]  # files that could not be read, with the reason
    preprocessing: dict[str, Any]
    seed: int

    def batches(self, batch_size: int) -> list[torch.Tensor]:
        return list(torch.split(self.tensor, batch_size))


def build(spec: InputSpec, data_config: dict[str, Any]) -> InputSet:
    if spec.source == "random":
        generator = torch.Generator().manual_seed(spec.seed)
        tensor = torch.randn((spec.num_samples, *data_config["input_size"]), generator=generator)
        return InputSet(tensor, "random", (), (), {"distribution": "standard normal"}, spec.seed)
    if spec.source == "images":
        files = sorted(p for p in resources.files("portproof").joinpath("data/images").iterdir() if _is_image(p))
        kind = "images"
    else:
        directory = Path(spec.source).expanduser()
        if not directory.is_dir():
            raise InputError(f"--inputs {spec.source}: not a directory; use images, random, or a folder of images")
        files = sorted(p for p in directory.iterdir() if p.is_file())
        kind = "directory"
    return _from_files(files, kind, spec, data_config)


def _from_files(files: list, kind: str, spec: InputSpec, data_config: dict[str, Any]) -> InputSet:
    from PIL import Image
    from timm.data import create_transform

    transform = create_transform(**data_config)
    tensors, sources, skipped = [], [], []
    for path in files:
        if len(tensors) == spec.num_samples:
            break
        try:
            with Image.open(path) as image:
                tensors.append(transform(image.convert("RGB")))
            sources.append(path.name)
        except Exception as error:  # PIL raises many kinds for a file that is not a readable image
            skipped.append(f"{path.name}: {type(error).__name__}: {error}")
    if not tensors:
        raise InputError(f"no readable image among {len(files)} files of --inputs {spec.source}; give a folder of images")
    # Fewer files than samples: cycle through them, so the sample count (and batch shapes) stay as asked.
    readable = len(tensors)
    for i in range(readable, spec.num_samples):
        tensors.append(tensors[i % readable])
        sources.append(sources[i % readable])
    preprocessing = {k: (list(v) if isinstance(v, tuple) else v) for k, v in data_config.items()}
    return InputSet(torch.stack(tensors), kind, tuple(sources), tuple(skipped), preprocessing, spec.seed)


def _is_image(path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES)
