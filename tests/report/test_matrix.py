"""A sweep's matrix files: matrix.json read back (and refused with its place named when it cannot be),
index.html escaped, and index.html as headless Chromium shows it: sortable, filterable, linking each report,
fetching nothing."""

from __future__ import annotations

import json

import pytest

from portproof.errors import SummaryError
from portproof.report import matrix, sweep_html
from portproof.results.sweep import Cell, ModelRow, SweepResult

from browser import Browser, chromium_or_skip


def hand_made(model: str = "resnet18") -> SweepResult:
    cells = (Cell("cpu/bf16", "FAIL", cosine=0.999, rel_l2=0.02, top1=1.0, median_ms=3.5, speedup=0.5,
                  first_divergent="blocks.0.mlp"),)
    return SweepResult(targets=("cpu/bf16",), rows=(ModelRow(model, "runs/x", cells, duration_s=2.0),), settings={},
                       started_at="2026-11-29T00:00:00+00:00", finished_at="2026-11-29T00:00:02+00:00", duration_s=2.0)


def test_matrix_json_reads_back_into_the_same_result(tmp_path):
    result = hand_made()
    (tmp_path / "matrix.json").write_text(matrix.render_json(result))
    assert matrix.load_matrix(tmp_path) == result


def test_a_matrix_json_that_cannot_be_read_names_the_field(tmp_path):
    document = json.loads(matrix.render_json(hand_made()))
    document["rows"][0]["cells"][0]["rel_l2"] = "small"
    (tmp_path / "matrix.json").write_text(json.dumps(document))
    with pytest.raises(SummaryError, match=r"matrix.json: field rows\[0\].cells\[0\].rel_l2: expected a number"):
        matrix.load_matrix(tmp_path)


def test_index_html_shows_names_as_text():
    page = sweep_html.render(hand_made("<script>alert(1)</script>"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "first divergent module blocks.0.mlp" in page


def test_index_html_sorts_filters_and_links_in_headless_chromium(finished_sweep, tmp_path):
    executable = chromium_or_skip("index.html")
    out, _ = finished_sweep
    shown = "Array.from(document.querySelectorAll('#matrix tbody tr')).filter(r => !r.hidden).map(r => r.cells[0].innerText.trim())"
    with Browser(executable, width=1400, height=900) as browser:
        browser.open(out / "index.html")
        everything = browser.evaluate(shown)
        links = browser.evaluate("Array.from(document.querySelectorAll('#matrix a')).map(a => a.href)")
        browser.evaluate("{ const f = document.getElementById('filter'); f.value = 'RESNET'; "
                         "f.dispatchEvent(new Event('input')); }")
        filtered, counter = browser.evaluate(shown), browser.evaluate("document.getElementById('shown').innerText")
        browser.evaluate("{ document.getElementById('filter').value = ''; const v = document.getElementById('verdict'); "
                         "v.value = 'ERROR'; v.dispatchEvent(new Event('change')); }")
        errors_only = browser.evaluate(shown)
        browser.evaluate("{ const v = document.getElementById('verdict'); v.value = ''; v.dispatchEvent(new Event('change')); }")
        # the median latency of the first target, twice: ascending, then descending
        header = "document.querySelector('th[data-column=\"5\"]')"
        browser.evaluate(f"{header}.click()")
        ascending = browser.evaluate(shown)
        browser.evaluate(f"{header}.click()")
        descending, sort_state = browser.evaluate(shown), browser.evaluate(f"{header}.getAttribute('aria-sort')")
        errors, urls = browser.console_errors(), browser.requested_urls()
    rows = json.loads((out / "matrix.json").read_text())["rows"]
    by_latency = [row["model"] for row in sorted(rows[:2], key=lambda row: row["cells"][0]["median_ms"])]
    assert everything == ["test_vit", "test_resnet", "no_such_model"]
    assert [link.rsplit("/", 3)[-3:] for link in links] == [["runs", "test_vit", "report.html"],
                                                            ["runs", "test_resnet", "report.html"]]
    assert all((out / "runs" / name / "report.html").is_file() for name in ("test_vit", "test_resnet"))
    assert filtered == ["test_resnet"] and counter == "1 of 3 models shown"
    assert errors_only == ["no_such_model"]
    assert ascending == [*by_latency, "no_such_model"]  # a row without the value comes last either way
    assert descending == [*reversed(by_latency), "no_such_model"] and sort_state == "descending"
    assert errors == []
    assert all(url.startswith("file:") for url in urls), urls
