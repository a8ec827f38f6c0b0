"""ONNX Runtime: the model is exported to ONNX once, then run by an InferenceSession whose execution
provider matches the target's device. The session must really use that provider: a silent fall back to
the CPU would measure something other than what was asked, so it is an error."""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..config import TargetSpec
from ..errors import ConfigError, DeviceUnavailableError
from .base import cpu_name

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "npu": "CANNExecutionProvider"}
INSTALL_HINT = {"cuda": "pip install onnxruntime-gpu", "npu": "install onnxruntime built with the CANN execution provider"}
EXPORT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


class OnnxRuntimeBackend:
    def __init__(self, spec: TargetSpec):
        try:
            import onnxruntime
        except ImportError:
            raise DeviceUnavailableError("onnxruntime is not installed; pip install onnxruntime") from None
        if spec.device not in PROVIDERS:
            raise ConfigError(f"onnxruntime runs on {', '.join(PROVIDERS)}, not {spec.device!r}")
        if spec.dtype not in EXPORT_DTYPES:
            raise ConfigError(f"onnxruntime targets take fp32 or fp16, not {spec.dtype!r}")
        provider = PROVIDERS[spec.device]
        if provider not in onnxruntime.get_available_providers():
            raise DeviceUnavailableError(
                f"this onnxruntime has no {provider} (it has {', '.join(onnxruntime.get_available_providers())}); "
                f"{INSTALL_HINT.get(spec.device, 'install an onnxruntime build with it')}"
            )
        self.spec = spec
        self.provider = provider
        self.session = None
        self.exporter = ""
        self._workdir = tempfile.TemporaryDirectory(prefix="portproof-onnx-")

    def prepare(self, model: nn.Module, example: torch.Tensor) -> None:
        import onnxruntime

        dtype = EXPORT_DTYPES[self.spec.dtype]
        path = Path(self._workdir.name) / "model.onnx"
        self.exporter = export(copy.deepcopy(model).to(dtype).eval(), example.to(dtype), path)
        self.model_bytes = path.stat().st_size
        options = {"device_id": self.spec.index or 0} if self.spec.device != "cpu" else {}
        self.session = onnxruntime.InferenceSession(str(path), providers=[(self.provider, options)])
        used = self.session.get_providers()[0]
        if used != self.provider:
            raise DeviceUnavailableError(f"onnxruntime fell back to {used} instead of {self.provider}; check its installation")
        self.input_name = self.session.get_inputs()[0].name

    def place(self, batch: torch.Tensor) -> np.ndarray:
        return batch.to(EXPORT_DTYPES[self.spec.dtype]).numpy()

    def run(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(np.asarray(o)) for o in self.session.run(None, {self.input_name: self.place(batch)}))

    def step(self, batch: torch.Tensor) -> Callable[[], Any]:
        feed = {self.input_name: self.place(batch)}
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
            "exporter": self.exporter,
            "onnx_model_bytes": getattr(self, "model_bytes", None),
        }


def export(model: nn.Module, example: torch.Tensor, path: Path) -> str:
    """Export with a dynamic batch dimension; returns which exporter wrote the file.

    The TorchScript exporter is tried first: it is an order of magnitude faster and keeps module names in
    node names. Where a torch release has dropped it, the dynamo exporter is used, and the summary says so.
    """
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model, (example,), str(path), dynamo=False, input_names=["input"], dynamic_axes={"input": {0: "batch"}}
            )
            return f"torch.onnx (TorchScript) {torch.__version__}"
        except (TypeError, RuntimeError, NotImplementedError):
            torch.onnx.export(model, (example,), str(path), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},))
            return f"torch.onnx (dynamo) {torch.__version__}"
