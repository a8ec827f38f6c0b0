"""Reports from any summary.json are safe (issue 9): `portproof report DIR`, run as a user runs it, shows
every string of a summary.json as text in report.html and report.md, and refuses a summary.json with a
bad field in one line that names the field (exit 2), never with an internal error.

Each page is compared with the page of the same summary whose strings are a plain word: a hostile string
must change the text and nothing else, no element, no attribute, no table cell."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

BEFORE_SEAMS = Path(__file__).parent.parent / "data" / "before_seams" / "summary.json"
PLAIN = "Qz9"
HOSTILE = ('<script>alert(1)</script> <img src=x onerror=alert(2)> "onmouseover="alert(3)" x=\' a|b `c` '
           "[x](javascript:alert(4)) *em* _u_ ~~s~~ # &amp; \x1b[31mred\x1b]0;title\x07 \x9b2J")
# How the hostile string reads on the page: its control characters written out, the rest as it is.
HOSTILE_SHOWN = HOSTILE.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\x9b", "\\x9b")


def dressed(summary: dict, text: str) -> dict:
    """`summary` with `text` in every kind of string a user, a model or a runtime puts there: labels, output
    names, notes, error messages, file names, descriptions; and a target that raised, added after the others."""
    summary = copy.deepcopy(summary)
    model, reference, first = summary["model"], summary["reference"], summary["targets"][0]
    model["requested"] = model["architecture"] = text
    # the second output, renamed wherever an output is named
    model["output_names"][1] = text
    reference["output_shapes"] = {text if name == "features" else name: shape for name, shape in reference["output_shapes"].items()}
    reference["rel_l2_vs_fp64"] = {text if name == "features" else name: v for name, v in reference["rel_l2_vs_fp64"].items()}
    first["comparisons"][1]["name"] = text
    reference["label"] = reference["description"]["device_name"] = text
    first["label"] = first["layers"]["target"] = summary["scoring_target"] = f"{text} 0"
    first["layers"]["notes"] = [text]
    raised = {**copy.deepcopy(first), "label": f"{text} 1", "status": "ERROR", "error": f"RuntimeError: {text}",
              "comparisons": [], "verdict": None, "latency": None, "speedup": None, "layers": None}
    summary["targets"].append(raised)
    summary["notes"] = [text]
    summary["weights"].update(path=f"/models/{text}.safetensors", sha256=text, file_size=1, searched=[text, text],
                              missing_keys=[text])
    summary["inputs"]["sources"] = [f"{text}.jpg"] * len(summary["inputs"]["sources"])
    summary["inputs"]["skipped"] = [f"{text}.png: not an image"]
    summary["environment"].update(cpu=text, command_line=f"portproof check {text}")
    return summary


def report_command(folder: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "portproof", "report", str(folder), *options],
                          capture_output=True, text=True, timeout=300)


def rendered(folder: Path, summary: dict, lang: str) -> dict[str, str]:
    """report.html and report.md that `portproof report` writes for `summary` in `folder` (which the page names)."""
    folder.mkdir(exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    run = report_command(folder, "--lang", lang)
    assert run.returncode == 0, run.stderr
    return {page: (folder / page).read_text(encoding="utf-8") for page in ("report.html", "report.md")}


class Page(HTMLParser):
    """What a browser builds from a page: its elements with their attributes, and its text."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list]] = []
        self.texts: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        # an image's data differs with the text drawn in it; its place and other attributes must not
        self.elements.append((tag, [(name, "data:..." if name == "src" else value) for name, value in attrs]))

    def handle_data(self, data):
        self.texts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)


def markdown_as_html(markdown: str) -> str:
    """report.md as a viewer shows it: CommonMark with tables, raw HTML allowed (the most a viewer does)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


@pytest.fixture(scope="module")
def original() -> dict:
    return json.loads(BEFORE_SEAMS.read_text(encoding="utf-8"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_hostile_strings_change_the_text_of_the_reports_and_nothing_else(original, tmp_path, lang):
    plain = rendered(tmp_path, dressed(original, PLAIN), lang)
    hostile = rendered(tmp_path, dressed(original, HOSTILE), lang)
    html_plain, html_hostile = Page(plain["report.html"]), Page(hostile["report.html"])
    markdown_plain, markdown_hostile = Page(markdown_as_html(plain["report.md"])), Page(markdown_as_html(hostile["report.md"]))
    assert PLAIN in html_plain.text and PLAIN in markdown_plain.text  # the strings are shown at all
    for before, after in ((html_plain, html_hostile), (markdown_plain, markdown_hostile)):
        assert after.elements == before.elements  # no element, attribute or table cell added, nor any class changed
        assert after.text == before.text.replace(PLAIN, HOSTILE_SHOWN)
    assert not [tag for tag, _ in markdown_hostile.elements if tag in ("a", "script", "img")]
    for page in hostile.values():  # and a terminal that prints a report obeys none of them
        assert not {"\x1b", "\x07", "\x9b"} & set(page)


def test_the_status_that_becomes_a_class_name_is_refused_unless_it_is_a_verdict(original, tmp_path):
    summary = copy.deepcopy(original)
    summary["targets"][0]["status"] = 'PASS" onmouseover="alert(1)'
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    run = report_command(folder)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        'portproof: error: summary.json: field targets[0].status: expected one of PASS, FAIL, ERROR, '
        'found "PASS\\" onmouseover=\\"alert(1)"']
    assert not (folder / "report.html").exists() and not (folder / "report.md").exists()


DELETE = object()


def _set(path: str, value):
    """A change to summary.json: the field at `path` (dots and [i]) set to `value`, or removed for DELETE."""
    def change(summary: dict) -> None:
        *parents, last = [int(step) if step.isdigit() else step for step in path.replace("[", ".").replace("]", "").split(".")]
        for step in parents:
            summary = summary[step]
        if value is DELETE:
            del summary[last]
        else:
            summary[last] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set("targets[0].status", "<script>"), 'field targets[0].status: expected one of PASS, FAIL, ERROR, found "<script>"'),
    (_set("targets[0].status", DELETE), "field targets[0].status: missing"),
    (_set("targets[0].label", 7), "field targets[0].label: expected a string, found 7"),
    (_set("reference.label", None), "field reference.label: missing (null)"),
    (_set("model.output_names", ["logits", ["features"]]), 'field model.output_names[1]: expected a string, found ["features"]'),
    (_set("model.output_names", []), "field model.output_names: expected at least one item, found []"),
    (_set("targets", []), "field targets: expected at least one item, found []"),
    (_set("notes", "read me"), 'field notes: expected a list, found "read me"'),
    (_set("targets[0].error", {"message": "x"}), 'field targets[0].error: expected a string, found {"message": "x"}'),
    (_set("targets[0].comparisons[0].max_abs_diff", "0.1"), 'field targets[0].comparisons[0].max_abs_diff: expected a number, found "0.1"'),
    (_set("targets[0].comparisons[0].topk.tie_aware_top1_agreement", 1e300),
     "field targets[0].comparisons[0].topk.tie_aware_top1_agreement: expected a share between 0 and 1, found 1e+300"),
    (_set("settings.output.lang", "fr"), 'field settings.output.lang: expected one of en, zh, found "fr"'),
    (_set("settings.criteria.min_cosine", None), "field settings.criteria.min_cosine: expected a number, found null"),
    (_set("settings", DELETE), "field settings: missing"),
    (_set("duration_s", None), "field duration_s: expected a number, found null"),
    (_set("environment.packages", ["torch"]), 'field environment.packages: expected an object, found ["torch"]'),
    (_set("environment.command_line", 12), "field environment.command_line: expected a string, found 12"),
    # a key is quoted, its control characters escaped: the error line is inert on a terminal too
    (_set("environment.packages", {"\x1b[2J": 1}), 'field environment.packages["\\u001b[2J"]: expected a string, found 1'),
    (_set("weights.searched", ["\x1b[2J", 3]), "field weights.searched[1]: expected a string, found 3"),
])
def test_a_bad_field_is_refused_in_one_line_that_names_it(original, tmp_path, change, message):
    summary = copy.deepcopy(original)
    change(summary)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    run = report_command(tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == [f"portproof: error: summary.json: {message}"]
    assert "\x1b" not in run.stderr
    assert not (tmp_path / "report.html").exists()
