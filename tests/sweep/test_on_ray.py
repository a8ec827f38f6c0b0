"""The sweep on a Ray cluster: a local Ray instance started in the test, the same small sweep sent to it as
Ray tasks; its verdicts equal the local run's. A task no node can place is refused before any work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import portproof
from portproof import cli
from portproof.sweep.on_ray import resources

from conftest import SMALL_MODEL
from helpers import SWEEP_FAST

ray = pytest.importorskip("ray")


def cells(folder: Path) -> dict[tuple[str, str], tuple]:
    rows = json.loads((folder / "matrix.json").read_text())["rows"]
    return {(row["model"], cell["target"]): (cell["verdict"], cell["cosine"], cell["error"])
            for row in rows for cell in row["cells"]}


def test_a_sweep_on_ray_gives_the_local_runs_verdicts(finished_sweep, tmp_path, monkeypatch, capsys):
    # Ray's workers start from its raylet, with this environment: they import the portproof under test
    source = str(Path(portproof.__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH")))))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "on-ray"
        code = cli.main(["sweep", "--models", f"{SMALL_MODEL},test_resnet,no_such_model", "--ray", "auto",
                         "--out", str(out), *SWEEP_FAST])
        assert ray.is_initialized()  # the caller's connection is the caller's to close
        too_big = tmp_path / "too-big"
        refused = cli.main(["sweep", "--models", SMALL_MODEL, "--ray", "auto", "--out", str(too_big), *SWEEP_FAST,
                            "--threads", "4"])
        assert refused == 2 and not too_big.exists()  # no node has 4 CPUs: refused before any work
        assert "no node of the Ray cluster offers what one model's check asks for (4 CPU)" in capsys.readouterr().err
    finally:
        ray.shutdown()
    local, _ = finished_sweep
    assert code == finished_sweep[1]
    assert cells(out) == cells(local)  # same verdicts, same cosine (a deterministic CPU run), same errors
    settings = json.loads((out / "matrix.json").read_text())["settings"]
    assert settings["ray"] == "auto"
    summary = json.loads((out / "runs" / SMALL_MODEL / "summary.json").read_text())
    assert summary["environment"]["torch_threads"] == 1  # --threads 1: the CPUs each task asked for too


def test_a_task_asks_for_one_device_of_each_accelerator_type_its_targets_use():
    assert resources(("npu",), 4) == {"num_cpus": 4, "max_retries": 0, "resources": {"NPU": 1}}
    assert resources(("cuda", "npu"), 1) == {"num_cpus": 1, "max_retries": 0, "num_gpus": 1, "resources": {"NPU": 1}}
    assert resources((), 2) == {"num_cpus": 2, "max_retries": 0}
