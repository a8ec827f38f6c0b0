"""OpenVINO on x86 CPUs: the model is exported to ONNX (onnx_export.py, as for ONNX Runtime), read by OpenVINO
and compiled for its CPU plugin with the precision the target names, always stated: OpenVINO infers in bf16 by
default on a CPU with native bf16, so `openvino@cpu` (fp32) sets INFERENCE_PRECISION_HINT=f32 and
`openvino@cpu/bf16` sets bf16. A bf16 target on a CPU without native bf16 is refused by the probe (OpenVINO
would emulate it, hundreds of times slower). openvino is an optional extra, imported only when used.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..config import TargetSpec
from ..errors import DeviceUnavailableError
from ..module_copy import cast_copy
from .base import Tensors, cast_inputs, cpu_name
from .onnx_export import export
from .registry import register_backend

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
# What OpenVINO's CPU plugin reports in OPTIMIZATION_CAPABILITIES when the hardware computes in that precision.
NATIVE_CAPABILITY = {"bf16": "BF16"}


def probe(spec: TargetSpec) -> None:
    try:
        import openvino
    except ImportError:
        raise DeviceUnavailableError("openvino is not installed; pip install 'portproof[openvino]'") from None
    if spec.index not in (None, 0):
        raise DeviceUnavailableError(f"cpu:{spec.index} does not exist: the CPU is a single device, cpu:0; give cpu")
    core = openvino.Core()
    if "CPU" not in core.available_devices:
        raise DeviceUnavailableError(f"OpenVINO finds no CPU device (it has {', '.join(core.available_devices) or 'none'})")
    wanted = NATIVE_CAPABILITY.get(spec.dtype)
    if wanted and wanted not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise DeviceUnavailableError(f"this CPU has no native {spec.dtype} ({cpu_name()}): OpenVINO would emulate it, "
                                     "far slower than fp32; use openvino@cpu")


@register_backend("openvino", devices=("cpu",), dtypes=tuple(PRECISION_HINTS), layer_pass="eager", probe=probe)
class OpenVinoBackend:
    def __init__(self, spec: TargetSpec):
        probe(spec)
        self.spec = spec
        self.compiled = None
        self._workdir = tempfile.TemporaryDirectory(prefix="portproof-openvino-")

    def prepare(self, model: nn.Module, example: Tensors) -> None:
        import openvino

        path = Path(self._workdir.name) / "model.onnx"
        # exported in fp32: the precision is OpenVINO's to choose, by the hint
        self.graph = export(cast_copy(model, dtype=torch.float32).eval(), cast_inputs(example, "cpu", torch.float32), path)
        core = openvino.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.spec.dtype],
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),  # the thread count the check runs with, as torch's
        })
        self.request = self.compiled.create_infer_request()
        self.output_names = [output.get_any_name() for output in self.compiled.outputs]

    def place(self, batch: Tensors) -> dict[str, np.ndarray]:
        return {name: tensor.numpy() for name, tensor in cast_inputs(batch, "cpu", torch.float32).items()}

    def run(self, batch: Tensors) -> dict[str, torch.Tensor]:
        results = self.request.infer(self.place(batch))
        by_name = {port.get_any_name(): value for port, value in results.items()}
        return {name: torch.from_numpy(np.array(by_name[name])) for name in self.graph.output_names}

    def step(self, batch: Tensors) -> Callable[[], Any]:
        feed = self.place(batch)
        return lambda: self.request.infer(feed)

    def synchronize(self) -> None:
        """infer() returns when the outputs are ready."""

    def describe(self) -> dict[str, Any]:
        import openvino

        described = {"backend": "openvino", "device": self.spec.device_string, "device_name": cpu_name(),
                     "dtype": self.spec.dtype, "openvino": openvino.__version__}
        if self.compiled is not None:  # what the plugin says it runs with, not what was asked
            described["numerics"] = {
                "inference_precision_hint": self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
                "inference_num_threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS"))}
        return described
