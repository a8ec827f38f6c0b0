"""labelled: class folders (synset ids or indices) and labels files, read into file names and class indices;
what cannot be read as labels is refused with what to do next."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from portproof.config import InputSpec
from portproof.errors import InputError
from portproof.labelled import find_labelled, has_labels

SYNSETS = ("n01440764", "n01443537", "n01484850")  # the first ImageNet-1k classes, in class order


def image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)


def test_synset_folders_give_the_models_class_indices(tmp_path):
    image(tmp_path / "n01484850" / "a.png")
    image(tmp_path / "n01440764" / "b.jpg")
    (tmp_path / "n01440764" / "notes.txt").write_text("not an image")
    (tmp_path / ".cache").mkdir()
    found = find_labelled(InputSpec(source=str(tmp_path)), SYNSETS)
    assert found.files == ("n01440764/b.jpg", "n01484850/a.png") and found.labels == (0, 2)
    assert found.source == "class folders (ImageNet synsets)"


def test_index_folders_and_a_flat_folder(tmp_path):
    image(tmp_path / "labelled" / "7" / "x.png")
    image(tmp_path / "flat" / "x.png")
    assert find_labelled(InputSpec(source=str(tmp_path / "labelled")), None).labels == (7,)
    assert not has_labels(InputSpec(source=str(tmp_path / "flat")))
    assert find_labelled(InputSpec(source=str(tmp_path / "flat")), None) is None


def test_a_labels_file_beside_a_flat_folder(tmp_path):
    for name in ("one.png", "two.png"):
        image(tmp_path / "images" / name)
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\ntwo.png,n01443537\none.png, 2\n")
    found = find_labelled(InputSpec(source=str(tmp_path / "images"), labels=str(labels)), SYNSETS)
    assert found.files == ("one.png", "two.png") and found.labels == (2, 1)
    assert found.source == "labels file labels.csv (class indices)"


@pytest.mark.parametrize("content, message", [
    ("one.png,cat\n", "class 'cat' in .* is neither an ImageNet synset id"),
    ("missing.png,1\n", "row 1: missing.png is not a file"),
    ("one.png\n", "row 1: expected filename,label, found 1 fields"),
    ("one.png,n09999999\n", "not one of the model's 3 ImageNet classes"),
])
def test_labels_that_cannot_be_used_are_refused(tmp_path, content, message):
    image(tmp_path / "images" / "one.png")
    labels = tmp_path / "labels.csv"
    labels.write_text(content)
    with pytest.raises(InputError, match=message):
        find_labelled(InputSpec(source=str(tmp_path / "images"), labels=str(labels)), SYNSETS)


def test_synset_folders_for_a_model_without_imagenet_classes(tmp_path):
    image(tmp_path / "n01440764" / "a.png")
    with pytest.raises(InputError, match="has no ImageNet label set; name the classes by index"):
        find_labelled(InputSpec(source=str(tmp_path)), None)


def test_a_timm_models_synsets_are_imagenets_in_class_order():
    import timm

    from portproof.labelled import imagenet_synsets

    synsets = imagenet_synsets(timm.create_model("test_vit", pretrained=False))
    assert len(synsets) == 1000 and synsets[:3] == SYNSETS


def test_labels_without_a_folder_of_images_is_a_usage_error(tmp_path, capsys):
    from portproof import cli

    from helpers import last_error_line

    labels = tmp_path / "labels.csv"
    labels.write_text("a.png,1\n")
    assert cli.main(["check", "test_vit", "--labels", str(labels), "--out", str(tmp_path / "out")]) == 2
    assert "--labels names the classes of your images: give their folder as --inputs DIR" in last_error_line(capsys)
