"""torch_pairing on version strings, and the `portproof env` lines built from it."""

from __future__ import annotations

from importlib import metadata

import pytest

from portproof import cli, torch_pairing
from portproof.torch_pairing import (
    InstalledTorch,
    constraint_lines,
    exact_torch_pin,
    pairing_warnings,
    release_of,
    torch_series_for,
    torchvision_fits,
    torchvision_series_for,
)


@pytest.mark.parametrize("torch_version, series", [("2.9.0+cpu", "0.24"), ("2.14.1", "0.29"), ("2.0.1", "0.15"),
                                                   ("2.10.0rc1+cu130", "0.25"), ("1.13.1", None), ("3.0.0", None)])
def test_torchvision_series_for_torch(torch_version, series):
    assert torchvision_series_for(torch_version) == series


@pytest.mark.parametrize("torchvision_version, series", [("0.24.0", "2.9"), ("0.29.1", "2.14"), ("0.15.2", "2.0"),
                                                         ("0.14.1", None)])
def test_torch_series_for_torchvision(torchvision_version, series):
    assert torch_series_for(torchvision_version) == series


@pytest.mark.parametrize("requires, pin", [
    (("numpy", "torch==2.9.0", "pillow!=8.3.*,>=5.3.0"), "2.9.0"),
    (("torch (==2.0.0)",), "2.0.0"),
    (("torch==2.9.0+cpu",), "2.9.0"),
    (("torch (>=2.14.0)",), None),
    (("torchaudio==2.9.0",), None),
    ((), None),
])
def test_exact_torch_pin(requires, pin):
    assert exact_torch_pin(requires) == pin


def test_release_drops_post_pre_and_local_parts():
    assert [release_of(v) for v in ("2.9.0.post1", "2.10.0rc1+cpu", "2.1.0")] == ["2.9.0", "2.10.0", "2.1.0"]


@pytest.mark.parametrize("installed, fits", [
    (InstalledTorch("2.9.0+cpu", "0.24.0", ("torch==2.9.0",)), True),
    (InstalledTorch("2.9.0+cpu", "0.25.0", ("torch==2.10.0",)), False),
    (InstalledTorch("2.9.1", "0.24.0", ("torch==2.9.0",)), False),  # an exact pin is exact
    (InstalledTorch("2.14.1", "0.29.1", ("torch (>=2.14.0)",)), True),  # no exact pin: by series
    (InstalledTorch("2.13.0+cpu", "0.29.1", ("torch (>=2.14.0)",)), False),
    (InstalledTorch("2.9.0", "0.14.1", ()), False),
    (InstalledTorch("3.0.0", "0.40.0", ()), True),  # an unknown series cannot be judged
    (InstalledTorch("2.9.0", None), True),
])
def test_torchvision_fits(installed, fits):
    assert torchvision_fits(installed) is fits


def test_constraints_hold_torch_with_its_local_label_and_torch_npu():
    assert constraint_lines(InstalledTorch("2.9.0+cpu", torch_npu="2.9.0.post1")) == ["torch==2.9.0+cpu",
                                                                                      "torch_npu==2.9.0.post1"]
    assert constraint_lines(InstalledTorch("2.14.1", "0.29.1")) == ["torch==2.14.1"]
    assert constraint_lines(InstalledTorch(None)) == []


def test_no_warning_for_a_matched_set():
    assert pairing_warnings(InstalledTorch("2.9.0+cpu", "0.24.0", ("torch==2.9.0",), "2.9.0.post1")) == []


def test_warns_about_a_torchvision_built_for_another_torch_and_names_the_right_one():
    [warning] = pairing_warnings(InstalledTorch("2.9.0+cpu", "0.25.0", ("torch==2.10.0",)))
    assert "torchvision 0.25.0" in warning and "torch 2.10.0" in warning and "torch 2.9.0+cpu" in warning
    assert "'torchvision==0.24.*'" in warning


def test_warns_about_a_torch_npu_built_for_another_torch():
    [warning] = pairing_warnings(InstalledTorch("2.9.0+cpu", torch_npu="2.8.0.post2"))
    assert "torch_npu 2.8.0.post2 is built for torch 2.8.0" in warning and "torch 2.9.0+cpu" in warning


def test_env_constraints_prints_the_installed_torch(capsys):
    assert cli.main(["env", "--constraints"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"torch=={metadata.version('torch')}"


def test_env_warns_on_stderr_about_a_mismatched_pair(monkeypatch, capsys):
    mismatched = InstalledTorch("2.9.0+cpu", "0.25.0", ("torch==2.10.0",), "2.9.0.post1")
    monkeypatch.setattr(torch_pairing, "read_installed", lambda: mismatched)
    assert cli.main(["env"]) == 0
    [warning] = pairing_warnings(mismatched)
    assert f"WARNING: {warning}" in capsys.readouterr().err.splitlines()
