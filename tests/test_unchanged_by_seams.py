"""The seams refactor changed no verdict, metric or field: the default check of test_vit, with both a
float and a half-precision target and the layer pass, against the summary.json and layers.json that the code
before it wrote (tests/data/before_seams/, same command). Timings, timestamps, the machine and the
ONNX file's size (its inputs and outputs are now named) aside."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

BEFORE = Path(__file__).parent / "data" / "before_seams"
NOT_COMPARED = {"started_at", "finished_at", "duration_s", "latency", "latency_ms", "speedup", "environment",
                "command_line", "directory", "onnx_model_bytes"}
# Fields added since, which the older summary does not have: new information, nothing changed.
ADDED = {"outcomes", "shapes", "dtypes", "factory",
         "loaded_share", "unwrapped", "file_format", "dtype_conversions", "nonfloat_tensors", "allow_nonfloat",
         "accept_partial_as_pretrained", "isolation",
         "output_masks", "left_out_positions", "family",  # the transformers family: padding left out, --family
         # criteria presets and task accuracy (issue 13)
         "presets", "atol", "rtol", "mlperf_ratio", "criteria_verdicts", "accuracy", "labels", "labelled_samples",
         "label_source",
         "rescue", "keep_fp32", "kept_in_fp32",  # precision rescue and +fp32= targets (issue 10)
         "numerics", "prepare_s", "threads", "channels_last",  # each side's numerics settings and prepare time
         "mode"}  # a +mode= target spec (torch.compile's mode)


def differences(before, after, path: str) -> list[str]:
    if isinstance(before, dict):
        if not isinstance(after, dict):
            return [f"{path}: {after!r} is not an object"]
        extra = set(after) - set(before) - ADDED
        found = [f"{path}: new field {key}" for key in sorted(extra)]
        for key, value in before.items():
            if key in NOT_COMPARED:
                continue
            found += differences(value, after[key], f"{path}.{key}") if key in after else [f"{path}.{key}: missing"]
        return found
    if isinstance(before, list):
        if not isinstance(after, list) or len(after) != len(before):
            return [f"{path}: {len(before)} items before, {after!r:.80} after"]
        return [d for i, (a, b) in enumerate(zip(before, after)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(before, float) and isinstance(after, (int, float)):
        return [] if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-15) else [f"{path}: {before!r} -> {after!r}"]
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def test_the_default_check_writes_what_it_wrote_before_the_seams(tmp_path):
    command = json.loads((BEFORE / "summary.json").read_text())["settings"]["command_line"].split()[1:]
    out_index = command.index("--out") + 1
    command[out_index] = str(tmp_path)
    run = subprocess.run([sys.executable, "-m", "portproof", *command], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for name in ("summary.json", "layers.json"):
        before = json.loads((BEFORE / name).read_text())
        after = json.loads((tmp_path / name).read_text())
        assert differences(before, after, name) == []
