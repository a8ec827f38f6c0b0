"""report.html, report.md in both languages, `portproof report DIR`, and the saved summary read back.

One real check of test_vit (a passing cpu/bf16 target and a deliberately broken cpu/fp16 one) feeds
every test here; the browser test opens its report.html in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from portproof import cli
from portproof.backends import registry
from portproof.backends.torch_eager import EagerBackend
from portproof.compare import DiffHistogram, compare_outputs, diff_histogram, histogram_edges
from portproof.config import CheckConfig, InputSpec, ModelSpec, OutputSpec, TimingSpec, WeightsSpec, parse_target
from portproof.errors import SummaryError
from portproof.session import run_check
from portproof.report import html, markdown, summary_json, write_reports
from portproof.report.load import from_summary, load_directory
from portproof.results import RANDOM_WEIGHTS_BANNER

from browser import Browser, chromium_or_skip
from conftest import SMALL_MODEL

TARGETS = ("cpu/bf16", "cpu/fp16")  # the second is broken on purpose (BrokenBackend)


class BrokenBackend(EagerBackend):
    """A wrong port: one weight of the target's copy is scaled."""

    def prepare(self, model, example):
        super().prepare(model, example)
        with torch.no_grad():
            self.model.model.blocks[0].mlp.fc2.weight.mul_(3.0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The live result and the folder its reports were written to (English)."""
    out = tmp_path_factory.mktemp("report")
    original = registry.create
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "create", lambda spec: BrokenBackend(spec) if spec.label == "cpu/fp16" else original(spec))
        config = CheckConfig(model=ModelSpec(SMALL_MODEL), weights=WeightsSpec(source="random"), inputs=InputSpec(num_samples=4),
                             targets=tuple(parse_target(t) for t in TARGETS), timing=TimingSpec(warmup=1, iters=4),
                             output=OutputSpec(directory=str(out)), command_line="portproof check test_vit",
                             isolation="none")  # the swapped backend lives in this process
        result = run_check(config)
    write_reports(result, out, "en")
    return result, out


# --- the histogram stored for the plot -----------------------------------------------------------------------


def test_histogram_bins_are_fixed_log_spaced_and_counts_match_numpy():
    rng = np.random.default_rng(3)
    diffs = np.concatenate([10.0 ** rng.uniform(-11, 5, size=5000), [0.0, 0.0, 0.0, 1e-14, 1e7, 2e7]])
    reference = rng.normal(size=diffs.size)
    histogram = diff_histogram(torch.tensor(diffs), torch.tensor(reference))
    edges = np.array(histogram.edges)
    assert histogram.edges == histogram_edges() and len(histogram.counts) == len(edges) - 1 == 72
    assert edges[0] == pytest.approx(1e-12) and edges[-1] == pytest.approx(1e6)
    assert np.allclose(np.diff(np.log10(edges)), 0.25)
    inside = diffs[(diffs >= edges[0]) & (diffs < edges[-1])]
    assert list(histogram.counts) == np.histogram(inside, bins=edges)[0].tolist()
    assert (histogram.zero, histogram.below, histogram.above) == (3, 1, 2)
    assert histogram.total == diffs.size
    assert histogram.reference_rms == pytest.approx(np.sqrt(np.mean(reference ** 2)))


def test_histogram_edge_value_falls_in_the_bin_it_opens():
    edges = histogram_edges()
    histogram = diff_histogram(torch.tensor([edges[10], edges[10] * 0.999]), torch.ones(2))
    assert histogram.counts[10] == 1 and histogram.counts[9] == 1


def test_comparison_histogram_counts_only_elements_finite_on_both_sides():
    reference = torch.tensor([[1.0, 2.0, float("nan"), 4.0], [1.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([[1.0, 2.5, 3.0, float("inf")], [1.001, 1.0, 1.0, 1.0]])
    histogram = compare_outputs(reference, target).abs_diff_histogram
    assert isinstance(histogram, DiffHistogram)
    assert histogram.total == 6 and histogram.zero == 4 and sum(histogram.counts) == 2
    finite_reference = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    assert histogram.reference_rms == pytest.approx(np.sqrt(np.mean(finite_reference ** 2)))
    assert compare_outputs(torch.ones(2, 3), torch.ones(3, 2)).abs_diff_histogram is None


# --- summary.json read back ---------------------------------------------------------------------------------


def test_summary_reads_back_into_an_equal_result(run):
    result, out = run
    assert load_directory(out) == replace(result, tensors=None)


def test_reports_rendered_from_the_reloaded_summary_equal_the_live_ones(run):
    result, out = run
    reloaded = load_directory(out)
    for render in (markdown.render, lambda r: markdown.render(r, "zh"), summary_json.render):
        assert render(reloaded) == render(result)
    for lang in ("en", "zh"):
        assert html.render(reloaded, lang) == html.render(result, lang)


def test_summary_carries_the_histogram_of_every_output(run):
    _, out = run
    summary = json.loads((out / "summary.json").read_text())
    for target in summary["targets"]:
        for comparison in target["comparisons"]:
            histogram = comparison["abs_diff_histogram"]
            assert len(histogram["edges"]) == len(histogram["counts"]) + 1
            elements = int(np.prod(comparison["reference_shape"]))
            assert histogram["zero"] + histogram["below"] + histogram["above"] + sum(histogram["counts"]) == elements


def test_an_older_summary_without_histograms_still_loads(run):
    _, out = run
    summary = json.loads((out / "summary.json").read_text())
    for target in summary["targets"]:
        for comparison in target["comparisons"]:
            del comparison["abs_diff_histogram"]
    result = from_summary(summary)
    assert all(c.abs_diff_histogram is None for t in result.targets for c in t.comparisons)
    assert "Error distribution" not in html.render(result)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(schema_version="2.0"), "schema_version 2.0"),
    (lambda s: s.pop("model"), "summary.json: field model: missing"),
    (lambda s: s["targets"][0].update(latency="fast"), "summary.json: field targets[0].latency: expected an object"),
    (lambda s: s["inputs"].update(num_samples="four"), "inputs.num_samples: expected an integer"),
])
def test_a_damaged_summary_is_refused_with_the_place_named(run, change, message):
    _, out = run
    summary = json.loads((out / "summary.json").read_text())
    change(summary)
    with pytest.raises(SummaryError, match=re.escape(message)):
        from_summary(summary)


# --- report.md in both languages: the structure, not the digits ---------------------------------------------


def skeleton(markdown_text: str) -> list[str]:
    """Headings, and the header row of every table."""
    lines = markdown_text.splitlines()
    return [line for i, line in enumerate(lines)
            if line.startswith("#") or (line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"))]


def table_rows(markdown_text: str, header_start: str) -> list[list[str]]:
    lines = markdown_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_english_markdown_structure(run):
    result, _ = run
    text = markdown.render(result)
    assert text.startswith(f"> **{RANDOM_WEIGHTS_BANNER}**")
    assert skeleton(text) == [
        "# test_vit.r160_in1k port report: cpu/bf16, cpu/fp16 against cpu",
        "## Model", "## Hardware", "## Software", "## Install and run", "## Weight loading", "## Inputs",
        "## Run result",
        "| side | status | output shapes | mean latency | median latency | cold run | speedup |",
        "## Comparison",
        "| target | output | max_abs_diff | mean_abs_diff | max_rel_diff | rel_l2 | cosine | min sample cosine | "
        "within 1% | x noise floor | top-1 | top-5 |",
        "## Verdict by criterion",
        "| target | portproof |",
        "## Scoring fields",
        "| field | value |",
        "## Conclusion",
    ]
    assert [row[:2] for row in table_rows(text, "| target | output |")] == [
        ["cpu/bf16", "logits"], ["cpu/bf16", "features"], ["cpu/fp16", "logits"], ["cpu/fp16", "features"]]


def test_chinese_markdown_follows_the_ascend_report_structure(run):
    result, _ = run
    text = markdown.render(result, "zh")
    assert text.startswith(f"> **{RANDOM_WEIGHTS_BANNER}（随机权重")
    assert skeleton(text) == [
        "# test_vit.r160_in1k 适配报告：cpu/bf16, cpu/fp16 对比 cpu",
        "## 模型信息", "## 硬件环境", "## 软件环境", "## 安装与运行", "## 权重加载情况", "## 输入数据",
        "## 运行结果",
        "| 运行端 | 运行状态 | 输出形状 | 平均时延 | 时延中位数 | 首次运行 | 加速比 |",
        "## 精度对比",
        "| 目标端 | 输出 | max_abs_diff | mean_abs_diff | max_rel_diff | rel_l2 | cosine | 最小单样本 cosine | "
        "相对误差 ≤1% 占比 | 噪声底倍数 | top-1 | top-5 |",
        "## 各判定标准下的结论",
        "| 目标端 | portproof |",
        "## 评分字段",
        "| 字段 | 取值 |",
        "## 适配结论",
    ]
    assert [row[0] for row in table_rows(text, "| 运行端 |")] == ["参考端 cpu", "目标端 cpu/bf16", "目标端 cpu/fp16"]
    # the same scoring fields as the English report, by the same names
    english = markdown.render(result)
    assert [row[0] for row in table_rows(text, "| 字段 |")] == [row[0] for row in table_rows(english, "| field |")]


def test_chinese_conclusion_states_each_verdict_with_the_measured_values(run):
    result, _ = run
    bf16, broken = result.targets
    assert bf16.status == "PASS" and broken.status == "FAIL"
    conclusion = markdown.render(result, "zh").split("## 适配结论", 1)[1]
    lines = [line for line in conclusion.splitlines() if line.startswith("- ")]
    assert lines[0].startswith("- **cpu/bf16：通过（PASS）**")
    assert f"cosine_similarity={bf16.comparison('logits').cosine_similarity:.6f} ≥ 0.99" in lines[0]
    assert lines[1].startswith("- **cpu/fp16：不通过（FAIL）**")
    failing = broken.comparison("logits")
    assert f"logits：cosine_similarity={failing.cosine_similarity:.6f}，低于下限 0.99" in lines[1]
    assert f"logits：rel_l2={failing.rel_l2:.3e}，超过上限 0.01" in lines[1]
    assert "≤ 0.01" not in lines[1]  # only the broken rules are listed for a FAIL
    assert lines[2].startswith(f"- {RANDOM_WEIGHTS_BANNER}")


# --- report.html ---------------------------------------------------------------------------------------------


def embedded_images(page: str) -> list[Image.Image]:
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    return [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in sources]


def test_html_is_self_contained_and_scriptless(run):
    _, out = run
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page  # the browser may fetch nothing
    assert not re.search(r'(src|href)="(?!data:)', page)
    images = embedded_images(page)
    assert len(images) == 3  # error histogram, per-sample, latency (no layer pass ran)
    for image in images:
        image.load()
        assert image.format == "PNG" and image.width >= 800 and len(image.getcolors(1 << 20)) > 10


def test_html_states_each_verdict_and_the_banner(run):
    result, out = run
    page = (out / "report.html").read_text()
    assert page.index(RANDOM_WEIGHTS_BANNER) < page.index("<h1>")
    assert '<div class="verdict pass">' in page and '<div class="verdict fail">' in page
    for failure in result.targets[1].verdict.failures:
        assert f"<li class=\"bad\">{failure}</li>" in page


def test_html_in_chinese_uses_the_chinese_sections(run):
    result, _ = run
    page = html.render(result, "zh")
    assert '<html lang="zh-CN">' in page
    for heading in ("模型信息", "硬件环境", "软件环境", "权重加载情况", "运行结果", "精度对比", "评分字段", "适配结论"):
        assert heading in page


def test_html_page_renders_in_headless_chromium(run, tmp_path):
    executable = chromium_or_skip("report.html")
    result, out = run
    with Browser(executable, width=1280, height=900) as browser:
        browser.open(out / "report.html")
        images = browser.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        text = browser.evaluate("document.body.innerText")
        badges = browser.evaluate("Array.from(document.querySelectorAll('.verdict .badge')).map(b => b.innerText)")
        overflow = browser.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        screenshot = browser.screenshot()
        errors = browser.console_errors()
        urls = browser.requested_urls()
    (tmp_path / "report.png").write_bytes(screenshot)
    assert len(images) == 3 and all(complete and width > 0 and height > 0 for complete, width, height in images), images
    assert badges == ["PASS", "FAIL"]
    assert RANDOM_WEIGHTS_BANNER in text and all(t.label in text for t in result.targets)
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in urls), [u[:80] for u in urls]
    assert overflow <= 0  # nothing wider than the window
    image = Image.open(io.BytesIO(screenshot)).convert("RGB")
    assert image.width == 1280 and image.height > 2000  # the whole page, with its figures
    pixels = np.asarray(image)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # not blank


# --- the command line ----------------------------------------------------------------------------------------


def test_report_command_rewrites_both_reports_in_chinese_without_running_the_model(run, tmp_path, capsys, monkeypatch):
    result, out = run
    folder = tmp_path / "saved"
    folder.mkdir()
    for name in ("summary.json", "accuracy_compare.log"):
        (folder / name).write_bytes((out / name).read_bytes())
    (folder / "report.md").write_text("old")
    monkeypatch.setattr(registry, "create", lambda spec: pytest.fail("the report command must not run a model"))
    code = cli.main(["report", str(folder), "--lang", "zh"])
    assert code == 0
    assert (folder / "summary.json").read_bytes() == (out / "summary.json").read_bytes()
    assert (folder / "report.md").read_text() == markdown.render(result, "zh")
    assert (folder / "report.html").read_text().startswith("<!DOCTYPE html>\n<html lang=\"zh-CN\">")
    printed = capsys.readouterr().out
    assert str(folder / "report.md") in printed and str(folder / "report.html") in printed


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "summary.json does not exist"),
    (lambda d: (d / "summary.json").write_text('{"schema_version": "1.0", "model"'), "is not valid JSON"),
])
def test_report_command_on_a_folder_without_a_usable_summary_exits_2(tmp_path, capsys, setup, message):
    setup(tmp_path)
    code = cli.main(["report", str(tmp_path)])
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.startswith("portproof: error:") and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "report.html").exists()


def test_report_command_rejects_an_unknown_language(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["report", str(tmp_path), "--lang", "fr"])
    assert caught.value.code == 2 and "invalid choice: 'fr'" in capsys.readouterr().err


# --- a layer pass in the reports ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layered_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("layers")
    config = CheckConfig(model=ModelSpec(SMALL_MODEL), weights=WeightsSpec(source="random"), inputs=InputSpec(num_samples=2),
                         targets=(parse_target("cpu/bf16"),), timing=TimingSpec(warmup=1, iters=2), layers=True,
                         fp64_reference=False, output=OutputSpec(directory=str(out)))
    result = run_check(config)
    write_reports(result, out, "en")
    return result, out


def test_a_layer_pass_reads_back_from_layers_json_into_an_equal_result(layered_run):
    result, out = layered_run
    assert (out / "layers.json").is_file() and len(result.targets[0].layers.rows) > 50
    reloaded = load_directory(out)
    assert reloaded == replace(result, tensors=None)
    for lang in ("en", "zh"):
        page = html.render(reloaded, lang)
        assert page == html.render(result, lang)
        assert len(embedded_images(page)) == 4  # histogram, per-sample, layers, latency
    assert markdown.render(reloaded, "zh") == markdown.render(result, "zh")


def test_without_layers_json_the_worst_modules_come_from_summary_json(layered_run, tmp_path):
    result, out = layered_run
    (tmp_path / "summary.json").write_bytes((out / "summary.json").read_bytes())
    reloaded = load_directory(tmp_path)
    report, original = reloaded.targets[0].layers, result.targets[0].layers
    assert report.worst_local == original.worst_local and report.first_divergent == original.first_divergent
    assert [r.local for r in report.rows] == [original.row(label).local for label in original.worst_local]
    page = html.render(reloaded)
    assert "layers.json was not found" in page and len(embedded_images(page)) == 3  # no figure from ten rows
    text = markdown.render(reloaded, "zh")
    worst = table_rows(text, "| 模块 |")
    assert [row[0].strip("`") for row in worst] == list(original.worst_local)


def test_the_first_divergent_module_is_named_and_drawn(run):
    """An altered copy of the model, compared module by module, shown in the report of the run."""
    import copy

    import timm

    from portproof.layers import compare_layers

    result, _ = run
    torch.manual_seed(0)
    reference = timm.create_model(SMALL_MODEL).eval()
    altered = copy.deepcopy(reference)
    with torch.no_grad():
        altered.blocks[2].mlp.fc2.weight.mul_(1.5)
    layers = compare_layers(reference, altered, torch.randn(2, 3, 160, 160), target="cpu")
    assert layers.first_divergent == "blocks.2.mlp.fc2"
    shown = replace(result, targets=(replace(result.targets[0], layers=layers), *result.targets[1:]))
    page = html.render(shown)
    assert ("First divergent module — local: blocks.2.mlp.fc2; accumulated: blocks.2.mlp.fc2." in page)
    assert len(embedded_images(page)) == 4
    worst = re.search(r"<td class=\"mono\">([^<]+)</td>", page.split("Layer by layer", 1)[1]).group(1)
    assert worst == "blocks.2.mlp.fc2"
    assert "首个发散模块 —— 局部模式：`blocks.2.mlp.fc2`" in markdown.render(shown, "zh")


def test_without_matplotlib_the_page_is_written_without_figures_and_says_why(run, monkeypatch):
    result, _ = run
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # `import matplotlib` now fails
    page = html.render(result)
    assert "<img" not in page and "matplotlib could not be imported" in page
    assert '<div class="verdict fail">' in page  # the rest of the report is all there


def test_both_languages_have_every_text():
    from portproof.report.i18n import _EN, _ZH

    assert set(_EN) == set(_ZH)
    for key in _EN:  # the same placeholders, so that either language formats with the same values
        assert sorted(re.findall(r"{(\w+)", _EN[key])) == sorted(re.findall(r"{(\w+)", _ZH[key])), key
