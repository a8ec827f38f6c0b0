"""ONNX Runtime: the model is exported to ONNX once (onnx_export.py), then run by an InferenceSession whose
execution provider matches the target's device. The session must really use that provider: a silent fall
back to the CPU would measure something other than what was asked, so it is an error."""

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

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "npu": "CANNExecutionProvider"}
INSTALL_HINT = {"cuda": "pip install onnxruntime-gpu", "npu": "install onnxruntime built with the CANN execution provider"}
EXPORT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def probe(spec: TargetSpec) -> str:
    """The execution provider for the spec's device, or DeviceUnavailableError naming what is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise DeviceUnavailableError("onnxruntime is not installed; pip install onnxruntime") from None
    provider = PROVIDERS[spec.device]
    if provider not in onnxruntime.get_available_providers():
        raise DeviceUnavailableError(
            f"this onnxruntime has no {provider} (it has {', '.join(onnxruntime.get_available_providers())}); "
            f"{INSTALL_HINT.get(spec.device, 'install an onnxruntime build with it')}"
        )
    return provider


def open_session(path: Path, spec: TargetSpec, provider: str):
    """An InferenceSession on the spec's device that really uses `provider`."""
    import onnxruntime

    options = {"device_id": spec.index or 0} if spec.device != "cpu" else {}
    settings = onnxruntime.SessionOptions()
    settings.intra_op_num_threads = torch.get_num_threads()  # the thread count the check runs with, as torch's
    session = onnxruntime.InferenceSession(str(path), settings, providers=[(provider, options)])
    used = session.get_providers()[0]
    if used != provider:
        raise DeviceUnavailableError(f"onnxruntime fell back to {used} instead of {provider}; check its installation")
    return session


@register_backend("onnxruntime", devices=tuple(PROVIDERS), dtypes=tuple(EXPORT_DTYPES), layer_pass="graph", probe=probe)
class OnnxRuntimeBackend:
    def __init__(self, spec: TargetSpec):
        self.spec = spec
        self.provider = probe(spec)
        self.session = None
        self.graph = None
        self._workdir = tempfile.TemporaryDirectory(prefix="portproof-onnx-")

    def prepare(self, model: nn.Module, example: Tensors) -> None:
        dtype = EXPORT_DTYPES[self.spec.dtype]
        path = Path(self._workdir.name) / "model.onnx"
        self.graph = export(cast_copy(model, dtype=dtype).eval(), cast_inputs(example, "cpu", dtype), path)
        self.model_bytes = path.stat().st_size
        self.session = open_session(path, self.spec, self.provider)

    def place(self, batch: Tensors) -> dict[str, np.ndarray]:
        return {name: tensor.numpy() for name, tensor in cast_inputs(batch, "cpu", EXPORT_DTYPES[self.spec.dtype]).items()}

    def run(self, batch: Tensors) -> dict[str, torch.Tensor]:
        outputs = self.session.run(list(self.graph.output_names), self.place(batch))
        return {name: torch.from_numpy(np.asarray(o)) for name, o in zip(self.graph.output_names, outputs)}

    def step(self, batch: Tensors) -> Callable[[], Any]:
        feed = self.place(batch)
        return lambda: self.session.run(None, feed)

    def synchronize(self) -> None:
        """session.run returns only when its outputs are on the host."""

    def describe(self) -> dict[str, Any]:
        import onnxruntime

        return {
            "backend": "onnxruntime",
            "device": self.spec.device_string,
            "device_name": cpu_name() if self.spec.device == "cpu" else self.spec.device_string,
            "dtype": self.spec.dtype,
            "onnxruntime": onnxruntime.__version__,
            "provider": self.provider,
            "exporter": self.graph.exporter if self.graph else "",
            "onnx_model_bytes": getattr(self, "model_bytes", None),
            "numerics": {"graph_optimization_level": str(self.session.get_session_options().graph_optimization_level)
                         if self.session is not None else None,
                         "intra_op_num_threads": self.session.get_session_options().intra_op_num_threads
                         if self.session is not None else None},
        }
