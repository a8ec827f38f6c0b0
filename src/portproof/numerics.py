"""The numerics settings in force on a side, which change its numbers as much as its dtype does: torch's
float32 matmul precision and deterministic algorithms, TF32 on CUDA (matmul and cuDNN), HF32 on Ascend
(matmul and convolution). Each side records them (its description's `numerics`); the `tf32` dtype turns
TF32/HF32 on around an fp32 forward.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

TF32_DEVICES = ("cuda", "npu")


def torch_settings(device_type: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"float32_matmul_precision": torch.get_float32_matmul_precision(),
                                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
    if device_type == "cuda":
        settings["cuda_matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
        settings["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    if device_type == "npu":
        settings["npu_matmul_allow_hf32"] = torch.npu.matmul.allow_hf32
        settings["npu_conv_allow_hf32"] = torch.npu.conv.allow_hf32
    return settings


@contextlib.contextmanager
def tf32(device_type: str) -> Iterator[None]:
    """TF32 (CUDA) or HF32 (Ascend) matmuls and convolutions on, for the block; the settings before restored."""
    if device_type == "cuda":
        flags = [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32")]
    else:
        flags = [(torch.npu.matmul, "allow_hf32"), (torch.npu.conv, "allow_hf32")]
    before = [getattr(owner, name) for owner, name in flags]
    for owner, name in flags:
        setattr(owner, name, True)
    try:
        yield
    finally:
        for (owner, name), value in zip(flags, before):
            setattr(owner, name, value)
