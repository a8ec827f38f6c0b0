"""Labelled images, for task accuracy: a folder with one sub-folder per class, named by ImageNet synset id
(`n01440764`) or by class index (`0`, `1`, ...), or a flat folder with a CSV of `filename,label` beside it.

Here they are only listed (file names and class indices); `Dataset` reads them a batch at a time inside
each side, so thousands of images cost the memory of one batch. Only files with an image suffix are
listed; hidden files and folders are passed over.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .config import InputSpec
from .errors import InputError

SYNSET = re.compile(r"^n\d{8}$")


@dataclass(frozen=True)
class LabelledImages:
    root: str
    files: tuple[str, ...]  # relative to root, with "/" between folders, sorted
    labels: tuple[int, ...]  # the class index of each file
    source: str  # where the labels came from: "class folders (ImageNet synsets)", "labels file labels.csv", ...


def has_labels(spec: InputSpec) -> bool:
    """Whether `spec` names labelled images: a labels file, or a folder holding a (non-hidden) sub-folder."""
    if spec.labels is not None:
        return True
    folder = Path(spec.source).expanduser()
    return folder.is_dir() and any(_visible(p) and p.is_dir() for p in folder.iterdir())


def find_labelled(spec: InputSpec, synsets: Sequence[str] | None) -> LabelledImages | None:
    """The labelled images `spec` names, or None when its inputs are not labelled. `synsets` are the model's
    ImageNet class ids in class order (None for a model without an ImageNet label set)."""
    if not has_labels(spec):
        return None
    root = Path(spec.source).expanduser()
    if not root.is_dir():
        raise InputError(f"labels {spec.labels}: the inputs {spec.source} are not a folder; give the folder of the "
                         "images the labels file names", cli_hint="--inputs DIR --labels FILE")
    if spec.labels is not None:
        named = _read_labels_file(Path(spec.labels).expanduser(), root)
        source = f"labels file {Path(spec.labels).name}"
    else:
        named = [(f"{folder.name}/{path.name}", folder.name)
                 for folder in sorted(p for p in root.iterdir() if _visible(p) and p.is_dir())
                 for path in sorted(folder.iterdir()) if _is_image_file(path)]
        source = "class folders"
    if not named:
        raise InputError(f"inputs {spec.source}: no image in its class folders; give one sub-folder per class, "
                         "each holding that class's images")
    names = {label for _, label in named}
    kind = "ImageNet synsets" if all(SYNSET.match(n) for n in names) else "class indices"
    index = {name: _class_index(name, synsets, spec) for name in names}
    ordered = sorted(named)
    return LabelledImages(str(root), tuple(f for f, _ in ordered), tuple(index[label] for _, label in ordered),
                          f"{source} ({kind})")


def imagenet_synsets(network: Any) -> tuple[str, ...] | None:
    """The ImageNet class ids of a timm model's classes, in class order (None when its label set is not an
    ImageNet one timm knows)."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(network)
    return tuple(ImageNetInfo(subset).label_names()) if subset else None


def _class_index(name: str, synsets: Sequence[str] | None, spec: InputSpec) -> int:
    if name.isdigit():
        return int(name)
    if SYNSET.match(name):
        if synsets is None:
            raise InputError(f"class {name!r} is an ImageNet synset id, but the model has no ImageNet label set; "
                             "name the classes by index (0, 1, ...)")
        if name not in synsets:
            raise InputError(f"class {name!r} is not one of the model's {len(synsets)} ImageNet classes")
        return synsets.index(name)
    where = f"in {spec.labels}" if spec.labels is not None else f"of the folder {spec.source}"
    raise InputError(f"class {name!r} {where} is neither an ImageNet synset id (n01440764) nor a class index "
                     "(0, 1, ...); rename it, or give a labels file of filename,label")


def _read_labels_file(path: Path, root: Path) -> list[tuple[str, str]]:
    """(file, label) per row of a `filename,label` CSV; a first row `filename,label` is a header."""
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = [row for row in csv.reader(stream) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the labels file {path} ({getattr(error, 'strerror', None) or error})") from None
    if rows and [cell.strip().lower() for cell in rows[0]] == ["filename", "label"]:
        rows = rows[1:]
    named = []
    for number, row in enumerate(rows, start=1):
        if len(row) != 2:
            raise InputError(f"labels file {path}, row {number}: expected filename,label, found {len(row)} fields")
        file, label = (cell.strip() for cell in row)
        if not (root / file).is_file():
            raise InputError(f"labels file {path}, row {number}: {file} is not a file in {root}")
        named.append((file, label))
    return named


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _is_image_file(path: Path) -> bool:
    from .inputs import IMAGE_SUFFIXES

    return _visible(path) and path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


class Dataset:
    """The labelled images as a torch map-style dataset: (image tensor through timm's transform, readable).
    An image that cannot be read gives zeros and False, and is left out of the accuracy on every side."""

    def __init__(self, images: LabelledImages, data_config: dict[str, Any]):
        from timm.data import create_transform

        self.images, self.data_config = images, data_config
        self.transform = create_transform(**data_config)

    def __len__(self) -> int:
        return len(self.images.files)

    def __getitem__(self, index: int) -> tuple[Any, bool]:
        import torch

        from .inputs import read_rgb

        try:
            rgb, _ = read_rgb(Path(self.images.root) / self.images.files[index], self.data_config)
            return self.transform(rgb), True
        except Exception:  # PIL raises many kinds for a file that is not a readable image
            return torch.zeros(tuple(self.data_config["input_size"])), False
