"""Strings from the model, the user's files or a summary.json from anywhere (issue 4) are shown as text in
report.html and report.md: no script, no event handler, no way out of Markdown's code spans and fences."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from PIL import Image

from portproof import cli
from portproof.backends.torch_eager import EagerBackend

from helpers import run_check, substitute

HOSTILE = "<script>alert(1)</script>"
HOSTILE_IMG = '<img src=x onerror="alert(2)">'
# Ways out of Markdown's code spans and fences, and into a raw HTML block (a blank line, then a tag)
HOSTILE_TICKS = "`` ` <script>alert(3)</script>"
HOSTILE_LINES = "name\n\n<script>alert(4)</script>\n```\n"


class _Elements(HTMLParser):
    """What a browser would build: the elements and their attributes, and the text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, list]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def assert_rendered_as_text(page: str, *strings: str) -> None:
    elements = _Elements(page)
    assert not [tag for tag, _ in elements.tags if tag == "script"]
    assert not [(tag, name) for tag, attrs in elements.tags for name, _ in attrs if name.lower().startswith("on")]
    text = "".join(elements.text)
    for string in strings:
        assert string in text, string


def assert_markdown_inert(markdown: str, *strings: str) -> None:
    """Rendered as CommonMark with GitHub's tables and raw HTML allowed (the most a viewer would do), the
    page has no script and no event handler, and shows each string as text (line breaks become spaces)."""
    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    assert_rendered_as_text(page)
    text = " ".join("".join(_Elements(page).text).split())
    for string in strings:
        assert " ".join(string.split()) in text, string


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_hostile_strings_in_a_saved_summary_render_as_text(finished_run, tmp_path, lang):
    """`portproof report` on a summary.json from anywhere: every string a person or a model can set."""
    summary = json.loads((finished_run / "summary.json").read_text())
    summary["model"]["requested"] = f"vit{HOSTILE_TICKS}"
    summary["model"]["architecture"] = HOSTILE_LINES
    summary["reference"]["label"] = HOSTILE
    summary["weights"]["path"] = f"/tmp/{HOSTILE_TICKS}/model.safetensors"
    summary["weights"]["sha256"], summary["weights"]["file_size"] = HOSTILE_LINES, 1
    summary["weights"]["searched"] = [f"{HOSTILE_IMG}: absent"]
    summary["inputs"]["sources"] = [HOSTILE, HOSTILE_IMG]
    summary["inputs"]["skipped"] = [f"{HOSTILE_IMG}: not an image PIL can read"]
    summary["notes"] = [HOSTILE]
    summary["environment"]["command_line"] = f"portproof check {HOSTILE_LINES}"
    summary["environment"]["cpu"] = HOSTILE_IMG
    summary["environment"]["python"] = summary["environment"]["portproof"] = HOSTILE_LINES
    summary["environment"]["packages"]["torch"] = HOSTILE
    summary["weights"]["source_kind"] = summary["inputs"]["kind"] = HOSTILE_LINES
    target = summary["targets"][0]
    target["label"] = HOSTILE
    target["description"]["device_name"] = HOSTILE_IMG
    summary["scoring_target"] = HOSTILE
    out = tmp_path / "hostile"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(summary))
    assert cli.main(["report", str(out), "--lang", lang]) == 0
    assert_rendered_as_text((out / "report.html").read_text(), HOSTILE, HOSTILE_IMG, HOSTILE_TICKS)
    assert_markdown_inert((out / "report.md").read_text(), HOSTILE, HOSTILE_IMG, HOSTILE_TICKS)


class HostileErrorBackend(EagerBackend):
    def run(self, batch):
        raise RuntimeError(f"driver says {HOSTILE_IMG}")


def test_hostile_file_names_and_error_messages_of_a_real_run_render_as_text(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(folder / "<script>alert(1)`.png")  # no "/" in a file name
    (folder / "<img src=x onerror=alert(2)>.txt").write_text("not an image")
    substitute(monkeypatch, {"cpu/fp16": HostileErrorBackend})
    code, summary = run_check(tmp_path / "out", "--inputs", str(folder), "--target", "cpu", "--target", "cpu/fp16")
    assert code == 1 and summary["targets"][1]["error"] == f"RuntimeError: driver says {HOSTILE_IMG}"
    for page in ("report.html", "report.md"):
        check = assert_rendered_as_text if page.endswith("html") else assert_markdown_inert
        check((tmp_path / "out" / page).read_text(), "<script>alert(1)`.png", "<img src=x onerror=alert(2)>.txt", HOSTILE_IMG)
