"""The backend registry: the vocabulary of target specs, and a third-party backend added as a plugin through
the `portproof.backends` entry-point group without any file of portproof edited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from portproof.backends import registry
from portproof.config import TargetSpec
from portproof.errors import ConfigError

from conftest import SMALL_MODEL

# A runtime that portproof does not ship: the model traced by TorchScript (torch.jit.trace) and run on the CPU.
PLUGIN_MODULE = '''
"""A third party's portproof backend: TorchScript tracing."""
import copy

import torch

from portproof import register_backend
from portproof.backends.base import cast_inputs, cpu_name


@register_backend("jit", devices=("cpu",), dtypes=("fp32",), layer_pass="none")
class TracedBackend:
    def __init__(self, spec):
        self.spec = spec

    def prepare(self, model, example):
        model = copy.deepcopy(model).eval()
        self.names = list(example)
        with torch.no_grad():
            self.output_names = list(model(**example))
            self.traced = torch.jit.trace(model, example_kwarg_inputs=dict(example), strict=False)

    def run(self, batch):
        with torch.no_grad():
            outputs = self.traced(**cast_inputs(batch, "cpu", torch.float32))
        return {name: outputs[name] for name in self.output_names}

    def step(self, batch):
        placed = cast_inputs(batch, "cpu", torch.float32)
        return lambda: self.traced(**placed)

    def synchronize(self):
        pass

    def describe(self):
        return {"backend": "jit", "device": "cpu", "device_name": cpu_name(), "dtype": "fp32",
                "runtime": f"torch.jit {torch.__version__}"}
'''


def install_plugin(root: Path, module_source: str = PLUGIN_MODULE, entry: str = "jit = portproof_jit_plugin:TracedBackend"):
    """The plugin as pip leaves an installed package: its module, and a dist-info folder with its entry points,
    on a sys.path entry."""
    root.mkdir()
    (root / "portproof_jit_plugin.py").write_text(textwrap.dedent(module_source))
    info = root / "portproof_jit_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: portproof-jit-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[portproof.backends]\n{entry}\n")
    return {**os.environ, "PYTHONPATH": str(root)}


def test_a_plugin_backend_runs_end_to_end_from_the_command_line(tmp_path):
    env = install_plugin(tmp_path / "site")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "portproof", "check", SMALL_MODEL, "--weights", "random", "--target",
                          "jit@cpu", "--num-samples", "2", "--iters", "2", "--warmup", "1", "--layers", "--out", str(out),
                          "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    target = json.loads(run.stdout)["targets"][0]
    assert target["label"] == "jit@cpu" and target["status"] == "PASS"
    assert target["description"]["runtime"].startswith("torch.jit") and target["latency"]["iters"] == 2
    assert target["layers"]["notes"] == ["no layer pass: the jit backend offers no way to observe its modules"]
    listed = subprocess.run([sys.executable, "-m", "portproof", "env"], env=env, capture_output=True, text=True, timeout=120)
    assert "jit@cpu: available" in listed.stdout


def test_a_broken_plugin_is_listed_by_env_and_does_not_stop_the_others(tmp_path):
    env = install_plugin(tmp_path / "site", "raise ImportError('its runtime is missing')\n")
    listed = subprocess.run([sys.executable, "-m", "portproof", "env"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0
    assert "plugin jit: not loaded: cannot be imported (ImportError: its runtime is missing)" in listed.stdout
    assert "eager@cpu: available" in listed.stdout


def test_the_vocabulary_is_what_the_registered_backends_declare():
    backends = registry.backends()
    assert list(backends)[:1] == ["eager"] and {"compile", "onnxruntime"} <= set(backends)
    assert backends["onnxruntime"].devices == ("cpu", "cuda", "npu") and not backends["onnxruntime"].autocast
    assert backends["eager"].autocast and backends["compile"].layer_pass == "eager"
    assert registry.devices() == ("cpu", "cuda", "npu", "xpu", "mps")


def test_validate_names_what_a_backend_does_not_take():
    with pytest.raises(ConfigError, match="autocast \\(amp-fp16\\) exists only in PyTorch backends"):
        registry.validate(TargetSpec(backend="onnxruntime", dtype="amp-fp16"))
    assert registry.validate(TargetSpec(backend="compile", dtype="amp-bf16")).dtype == "amp-bf16"


def test_register_backend_refuses_an_unknown_layer_pass_mode():
    with pytest.raises(ValueError, match="layer_pass must be one of"):
        registry.register_backend("x", devices=("cpu",), dtypes=("fp32",), layer_pass="hooks")


def test_a_plugin_that_fails_to_import_does_not_stop_a_check_of_other_targets(tmp_path):
    # OSError, as a missing vendor library gives: not the ImportError the standard library's preload forgives
    env = install_plugin(tmp_path / "site", "raise OSError('libvendor.so: cannot open shared object file')\n")
    run = subprocess.run([sys.executable, "-m", "portproof", "check", SMALL_MODEL, "--weights", "random", "--target",
                          "cpu/bf16", "--num-samples", "2", "--no-bench", "--out", str(tmp_path / "out"), "--json"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["targets"][0]["status"] == "PASS"
