"""Shared fixtures. Every test runs with its own empty caches and a hub endpoint on a closed local port,
so nothing is read from the real caches and nothing reaches a network."""

from __future__ import annotations

import socket

import pytest
import timm
import torch

SMALL_MODEL = "test_vit"  # timm's 0.4M-parameter ViT: the real code path, fast on two cores
SMALL_REPO = "timm/test_vit.r160_in1k"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free now, and nothing listens on it


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf-cache"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    for name in ("MODELSCOPE_CACHE", "PORTPROOF_WEIGHTS_CACHE", "HF_HUB_OFFLINE", "HF_HOME", "XDG_CACHE_HOME",
                 "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def small_state() -> dict[str, torch.Tensor]:
    """A complete test_vit state dict whose values differ from the seed-0 random initialisation."""
    torch.manual_seed(1234)
    model = timm.create_model(SMALL_MODEL, pretrained=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One real check, reused by the tests that need a result or a summary.json on disk (none changes it)."""
    from portproof import cli

    from helpers import FAST

    out = tmp_path_factory.mktemp("finished")
    code = cli.main(["check", SMALL_MODEL, "--out", str(out), *FAST, "--target", "cpu"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory):
    """One real sweep of two small models and an unknown name on two workers, reused by the tests that read
    its folder (none changes it): (folder, exit code)."""
    from portproof import cli

    from helpers import SWEEP_FAST

    out = tmp_path_factory.mktemp("sweep")
    code = cli.main(["sweep", "--models", f"{SMALL_MODEL},test_resnet,no_such_model", "--workers", "2",
                     "--out", str(out), *SWEEP_FAST])
    return out, code
