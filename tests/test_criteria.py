"""criteria: each preset's formula on hand-made outputs just inside and just outside its limit, allclose held
against torch.testing.assert_close itself, and mlperf counted in whole samples."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from portproof import criteria
from portproof.compare import compare_outputs
from portproof.config import Criteria
from portproof.errors import ConfigError
from portproof.results import Accuracy, TargetAccuracy

STEP = 2.0 ** -10  # exact in float64, so a sum lands on the limit itself


def verdict(name: str, reference: torch.Tensor, target: torch.Tensor, **settings):
    comparison = compare_outputs(reference, target, name="logits")
    evidence = criteria.Evidence((comparison,), {"logits": reference}, {"logits": target})
    return criteria.registered()[name]().judge(evidence, Criteria(**settings))


def msprobe(cosine: float, max_abs: float) -> bool:
    """msprobe's verdict on an output with this cosine and max abs error (the two figures it reads)."""
    return criteria.Msprobe().judge(with_figures(cosine, max_abs), Criteria()).passed


def with_figures(cosine: float, max_abs: float) -> criteria.Evidence:
    ones = torch.ones(1, 4)
    comparison = replace(compare_outputs(ones, ones, name="logits"), cosine_similarity=cosine, max_abs_diff=max_abs)
    return criteria.Evidence((comparison,), {"logits": ones}, {"logits": ones})


def test_msprobe_at_each_boundary_of_its_three_conditions():
    assert msprobe(0.99, 0.5) and not msprobe(0.98999, 0.0011)  # cosine < 0.99 counts with max abs > 0.001
    assert msprobe(0.98, 0.001) and not msprobe(0.98, 0.0010001)
    assert msprobe(0.9, 0.001) and not msprobe(0.89999, 0.0)  # cosine < 0.9 alone
    assert msprobe(1.0, 1.0) and not msprobe(1.0, 1.0000001)  # max abs > 1 alone


def test_msprobe_names_the_condition_that_failed():
    cell = criteria.Msprobe().judge(with_figures(0.95, 0.01), Criteria())
    assert [(t.quantity, t.relation, t.limit) for t in cell.terms] == [("cosine_similarity", "<", 0.99),
                                                                        ("max_abs_diff", ">", 0.001)]


def test_allclose_at_atol_plus_rtol_times_the_reference():
    reference = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    inside = reference + torch.tensor([[2 * STEP, 0.0]], dtype=torch.float64)  # |t − r| = atol + rtol·|r| exactly
    outside = reference + torch.tensor([[2 * STEP + 2.0 ** -40, 0.0]], dtype=torch.float64)
    settings = {"atol": STEP, "rtol": STEP}
    assert verdict("allclose", reference, inside, **settings).passed
    cell = verdict("allclose", reference, outside, **settings)
    assert not cell.passed and cell.terms[1].measured == 1  # one element outside
    assert cell.terms[0].measured > 1 and cell.terms[0].relation == ">"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_allclose_defaults_agree_with_torch_testing_assert_close(dtype):
    reference = torch.linspace(-3, 3, 400).reshape(4, 100)
    seen = set()
    for scale in (0.3, 0.9, 1.2, 3.0, 30.0):
        rtol, atol = criteria.TORCH_TESTING_TOLERANCES[str(dtype).removeprefix("torch.")]
        target = (reference + scale * (atol + rtol * reference.abs()) * torch.cos(reference * 7)).to(dtype)
        try:
            torch.testing.assert_close(target, reference, check_dtype=False)
            expected = True
        except AssertionError:
            expected = False
        assert verdict("allclose", reference, target).passed == expected, (dtype, scale)
        seen.add(expected)
    assert seen == {True, False}  # both sides of the boundary were tried


def test_torch_testing_tolerances_are_torchs_own():
    from torch.testing._comparison import default_tolerances

    for name, tolerances in criteria.TORCH_TESTING_TOLERANCES.items():
        assert default_tolerances(torch.empty(0, dtype=getattr(torch, name))) == tolerances


def test_polygraphy_passes_an_element_within_either_tolerance():
    reference = torch.tensor([[1.0, 4.0, 0.0]], dtype=torch.float64)
    # absolute: |t − r| = atol exactly (its relative error is far above rtol)
    assert verdict("polygraphy", reference, reference + torch.tensor([[STEP, 0, 0]], dtype=torch.float64),
                   atol=STEP, rtol=2.0 ** -30).passed
    assert not verdict("polygraphy", reference, reference + torch.tensor([[2 * STEP, 0, 0]], dtype=torch.float64),
                       atol=STEP, rtol=2.0 ** -30).passed
    # relative: |t − r| / |r| = rtol exactly at r = 4 (its absolute error is far above atol)
    assert verdict("polygraphy", reference, reference + torch.tensor([[0, 4 * STEP, 0]], dtype=torch.float64),
                   atol=2.0 ** -30, rtol=STEP).passed
    assert not verdict("polygraphy", reference, reference + torch.tensor([[0, 8 * STEP, 0]], dtype=torch.float64),
                       atol=2.0 ** -30, rtol=STEP).passed
    # a zero reference: only the absolute tolerance can pass it
    assert not verdict("polygraphy", reference, reference + torch.tensor([[0, 0, 2.0 ** -29]], dtype=torch.float64),
                       atol=2.0 ** -30, rtol=0.5).passed


def test_polygraphy_defaults_and_a_nan():
    reference = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    cell = verdict("polygraphy", reference, torch.tensor([[1.0, 2.0 + 1.5e-5]], dtype=torch.float64))
    assert cell.passed and [t.measured for t in cell.terms[2:]] == [1e-5, 1e-5]  # relative 7.5e-6 within 1e-5
    # absolute and relative error 1.5e-5, both above 1e-5
    assert not verdict("polygraphy", reference, torch.tensor([[1.0 + 1.5e-5, 2.0]], dtype=torch.float64)).passed
    assert not verdict("polygraphy", reference, torch.tensor([[float("nan"), 2.0]], dtype=torch.float64)).passed


def accuracies(reference_correct: int, target_correct: int, samples: int) -> criteria.Evidence:
    reference = Accuracy(samples, reference_correct, samples, reference_correct / samples, 1.0)
    target = Accuracy(samples, target_correct, samples, target_correct / samples, 1.0)
    moved = reference_correct - target_correct
    return criteria.Evidence((), {}, {}, reference, TargetAccuracy(target, target.top1 / reference.top1, moved, moved, 0, ()))


def test_mlperf_at_99_and_99_9_percent_of_the_reference():
    mlperf = criteria.Mlperf()
    assert mlperf.judge(accuracies(300, 297, 400), Criteria()).passed  # exactly 99%
    assert not mlperf.judge(accuracies(300, 296, 400), Criteria()).passed
    assert mlperf.judge(accuracies(1000, 999, 1200), Criteria(mlperf_ratio=0.999)).passed
    cell = mlperf.judge(accuracies(1000, 998, 1200), Criteria(mlperf_ratio=0.999))
    assert not cell.passed and cell.terms[0].measured == pytest.approx(0.998) and cell.terms[0].relation == "<"


def test_portproof_names_the_rule_that_broke():
    reference = torch.tensor([[1.0, 0.0]])
    cell = verdict("portproof", reference, torch.tensor([[0.0, 1.0]]))
    assert not cell.passed and cell.terms[0].quantity == "cosine_similarity" and cell.terms[0].limit == 0.99


def test_unknown_or_no_criterion_is_refused():
    with pytest.raises(ConfigError, match="unknown criterion 'pytorch'; choose from portproof, msprobe"):
        criteria.require(Criteria(presets=("pytorch",)))
    with pytest.raises(ConfigError, match="no criterion given"):
        criteria.require(Criteria(presets=()))


def test_the_verdict_table_is_printed_written_and_read_back(tmp_path, capsys):
    from portproof import cli

    from helpers import run_check

    code, summary = run_check(tmp_path, "--criteria", "msprobe", "--criteria", "allclose", "--target", "cpu/bf16",
                              "--target", "cpu")
    assert code == 0  # msprobe, the first, passes both; allclose fails bf16 without changing the exit code
    cells = {t["label"]: [(v["criterion"], v["passed"]) for v in t["criteria_verdicts"]] for t in summary["targets"]}
    assert cells == {"cpu/bf16": [("msprobe", True), ("allclose", False)], "cpu": [("msprobe", True), ("allclose", True)]}
    bf16 = summary["targets"][0]["criteria_verdicts"][1]
    assert bf16["terms"][2:] == [{"quantity": "atol", "measured": 1e-5, "relation": "", "limit": None},
                                 {"quantity": "rtol", "measured": 1.6e-2, "relation": "", "limit": None}]
    printed = capsys.readouterr().out
    assert "verdict by criterion" in printed and "FAIL logits: max |t−r|/(atol+rtol·|r|)" in printed
    english = (tmp_path / "report.md").read_text()
    assert "| target | msprobe | allclose |" in english and "**FAIL** logits: max" in english
    (tmp_path / "report.md").unlink()
    assert cli.main(["report", str(tmp_path), "--lang", "zh"]) == 0  # read back from summary.json
    chinese = (tmp_path / "report.md").read_text()
    assert "| 目标端 | msprobe | allclose |" in chinese and "**FAIL** logits: max" in chinese
    assert chinese.count("**PASS** logits: cosine_similarity") == 2
    assert "判定" in (tmp_path / "report.html").read_text() and "verdict fail" in (tmp_path / "report.html").read_text()


def test_a_criterion_registered_from_python_judges_and_is_read_back(monkeypatch):
    from portproof.report.load import VALUE_CHECKS
    from portproof.results import CriterionVerdict, Term

    class SameArgmax:
        """Every sample's top-1 class is the same on both sides."""

        name = "same_argmax"
        needs_labels = False

        def judge(self, evidence, settings):
            c = evidence.comparisons[0]
            return CriterionVerdict(self.name, c.topk.top1_match, c.name, (Term("top-1 agreement", c.topk.top1_agreement),))

    monkeypatch.setitem(criteria._REGISTERED, "same_argmax", SameArgmax)
    criteria.register_criterion(SameArgmax)
    settings = Criteria(presets=("same_argmax", "msprobe"))
    criteria.require(settings)
    reference = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    comparison = compare_outputs(reference, target, name="logits", classifier=True)
    cells = criteria.judge(criteria.Evidence((comparison,), {"logits": reference}, {"logits": target}), settings)
    assert [(v.criterion, v.passed) for v in cells] == [("same_argmax", False), ("msprobe", False)]
    assert cells[0].terms[0].measured == 0.5
    assert VALUE_CHECKS[(CriterionVerdict, "criterion")]("same_argmax") is None
    assert VALUE_CHECKS[(CriterionVerdict, "criterion")]("not_registered") is not None
