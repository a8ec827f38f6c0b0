"""Task accuracy on real labelled data: scikit-learn's handwritten digits, written as PNG files into one folder
per class, and a classifier trained on the other half of them here, well above chance. A float32 target keeps
the reference's accuracy and passes mlperf; a target whose hidden layer is damaged falls below 99% of it and
fails (exit 1); the changed predictions name real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from portproof import cli
from portproof.backends.torch_eager import EagerBackend
from portproof.families.timm import data_config_of

import toy_models
from helpers import FAST, last_error_line, substitute

DAMAGED = "cpu/bf16"  # the target label whose backend is swapped for the damaged one


class DamagedHiddenLayer(EagerBackend):
    """A port whose hidden layer computes with corrupted weights (a wrong kernel, say): seeded noise of twice
    the weights' own spread."""

    def prepare(self, model, example) -> None:
        super().prepare(model, example)
        layer = next(module for name, module in self.model.named_modules() if name.endswith("hidden"))
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            noise = torch.randn(layer.weight.shape, generator=generator) * float(layer.weight.std()) * 2
            layer.weight += noise.to(layer.weight.dtype)


def write_digits(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    for index, (pixels, label) in enumerate(zip(images, labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(pixels * 255 / 16).astype(np.uint8), "L").save(folder / str(label) / f"digit{index:04d}.png")


def read_through_preprocessing(folder: Path, model) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of a class-per-folder tree through the model's own preprocessing (what portproof feeds it)."""
    from timm.data import create_transform

    transform = create_transform(**data_config_of(model))
    files = sorted(folder.glob("*/*.png"))
    images = torch.stack([transform(Image.open(path).convert("RGB")) for path in files])
    return images, torch.tensor([int(path.parent.name) for path in files])


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[Path, Path]:
    """(the labelled folder of held-out digits, the trained classifier's checkpoint)."""
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    data = load_digits()
    write_digits(root / "train", data.images[::2], data.target[::2])
    write_digits(root / "held_out", data.images[1::2], data.target[1::2])
    model = toy_models.make_digits()
    images, labels = read_through_preprocessing(root / "train", model)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(images)["logits"], labels).backward()
        optimiser.step()
    checkpoint = root / "digits.safetensors"
    save_file(model.state_dict(), str(checkpoint))
    return root / "held_out", checkpoint


def test_a_float32_target_keeps_the_accuracy_and_a_damaged_one_fails_mlperf(digits, tmp_path, monkeypatch, capsys):
    folder, checkpoint = digits
    monkeypatch.chdir(Path(toy_models.__file__).parent)  # toy_models:make_digits is importable from here
    substitute(monkeypatch, {DAMAGED: DamagedHiddenLayer})
    import helpers

    code = cli.main(["check", "toy_models:make_digits", "--weights", str(checkpoint), "--inputs", str(folder),
                     *helpers.FAST, "--criteria", "mlperf", "--criteria", "portproof", "--batch-size", "64",
                     "--num-samples", "64", "--target", "cpu", "--target", DAMAGED, "--out", str(tmp_path)])
    assert code == 1  # the damaged target fails the first criterion, mlperf
    summary = json.loads((tmp_path / "summary.json").read_text())
    written = sorted(folder.glob("*/*.png"))
    reference = summary["reference"]["accuracy"]
    assert reference["samples"] == len(written) == summary["inputs"]["labelled_samples"] == 898  # all, not 64
    assert reference["top1"] > 0.85  # chance is 0.1
    fp32, damaged = summary["targets"]
    assert fp32["status"] == "PASS" and fp32["accuracy"]["ratio"] == 1.0 and fp32["accuracy"]["changed"] == 0
    assert [v["passed"] for v in fp32["criteria_verdicts"]] == [True, True]
    mlperf = damaged["criteria_verdicts"][0]
    assert damaged["status"] == "FAIL" and mlperf["criterion"] == "mlperf" and not mlperf["passed"]
    assert damaged["accuracy"]["ratio"] < 0.99 and mlperf["terms"][0]["measured"] == damaged["accuracy"]["ratio"]
    changes = damaged["accuracy"]["first_changes"]
    assert changes and damaged["accuracy"]["right_to_wrong"] > damaged["accuracy"]["wrong_to_right"]
    for change in changes:
        assert (folder / change["file"]).is_file() and int(change["file"].split("/")[0]) == change["label"]
        assert change["reference"] != change["target"]
    stderr = capsys.readouterr()
    assert f"accuracy of {DAMAGED} on 898 labelled images" in stderr.err
    assert f"{DAMAGED}: top-1 " in stderr.out and "right→wrong" in stderr.out
    report = (tmp_path / "report.md").read_text()
    assert "## Task accuracy" in report and changes[0]["file"] in report
    assert "judged by mlperf: top-1 ratio" in report


def test_mlperf_without_labelled_inputs_stops_with_what_to_give(tmp_path, capsys):
    code = cli.main(["check", "test_vit", "--out", str(tmp_path), *FAST, "--target", "cpu", "--criteria", "mlperf"])
    assert code == 2
    line = last_error_line(capsys)
    assert "mlperf criterion judges task accuracy" in line and "--inputs DIR with one sub-folder per class" in line
    assert not (tmp_path / "summary.json").exists()
