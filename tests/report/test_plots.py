"""The figures' own text: log axes read 10⁻³, never matplotlib's mathtext source ($\\mathdefault{10^{-3}}$),
which report figures would otherwise show raw (they turn math parsing off for names from the summary)."""

from __future__ import annotations

from portproof.report.plots import _figure, _png, power_of_ten


def test_log_axes_are_labelled_as_plain_powers_of_ten():
    figure, (ax,) = _figure(1, 1, 3.0)
    ax.plot([1, 2, 3], [1e-6, 1e-3, 1e2], label="a $name$ from the summary")
    ax.set_yscale("log")
    ax.legend()
    assert _png(figure).startswith(b"\x89PNG")
    labels = [label.get_text() for label in ax.get_yticklabels() if label.get_text()]
    assert labels and all("$" not in text and text.startswith("10") for text in labels), labels
    assert ax.get_legend().get_texts()[0].get_text() == "a $name$ from the summary"  # shown as written


def test_power_of_ten():
    assert [power_of_ten(v) for v in (1e-12, 1.0, 1e4, 2.5, 0.0)] == ["10⁻¹²", "10⁰", "10⁴", "2.5", ""]
