"""The software and hardware a check ran on, for the summary's `environment` block."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .backends.base import cpu_name

PACKAGES = ("torch", "torchvision", "timm", "numpy", "safetensors", "huggingface_hub", "transformers", "onnx", "onnxruntime",
            "torch_npu")
CANN_VERSION_FILES = ("version.cfg", "ascend_toolkit_install.info", "version.info")


def collect() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "portproof": package_version("portproof"),
        "cann": cann_version(),
        "executable": sys.executable,
    }


def package_version(name: str) -> str | None:
    """The installed version, or None. A module already imported says it itself; otherwise the package
    metadata is read, and only for an importable module: each metadata look-up scans every installed
    distribution, which costs about a tenth of a second in a large environment."""
    module = sys.modules.get(name)
    if isinstance(getattr(module, "__version__", None), str):
        return module.__version__
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cann_version() -> str | None:
    """The CANN toolkit version, read from its install files; None where no toolkit is installed."""
    homes = [os.environ.get("ASCEND_TOOLKIT_HOME"), os.environ.get("ASCEND_HOME_PATH"), "/usr/local/Ascend/ascend-toolkit/latest"]
    for home in filter(None, homes):
        for name in CANN_VERSION_FILES:
            path = Path(home) / name
            if path.is_file():
                for line in path.read_text(errors="replace").splitlines():
                    key, _, value = line.partition("=")
                    if key.strip().lower() in ("version", "toolkit_version", "runtime_running_version"):
                        return value.strip().strip("[]\"'")
    return None
