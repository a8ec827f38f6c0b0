"""Failures of a side worded so that the user knows what to do: out of memory, a timeout, a crash.

The containment itself (a child process per side, the deadline, crashes) lives in worker.py.
"""

from __future__ import annotations

from .errors import describe


def is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError, host MemoryError, or a runtime's own wording (torch_npu, onnxruntime)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(error, MemoryError) or (oom is not None and isinstance(error, oom)):
        return True
    text = str(error).lower()
    return "out of memory" in text or "failed to allocate memory" in text


def describe_failure(error: BaseException, device: str, batch_size: int) -> str:
    """One line for a side's ERROR: what was raised, and for out of memory what to do. Failures already
    worded by the side's process (worker.SideFailed, SideCrashed, TimedOut) are taken as they are."""
    from .worker import SideCrashed, SideFailed, TimedOut

    if isinstance(error, (TimedOut, SideFailed, SideCrashed)):
        return str(error)
    raised = describe(error)
    if is_out_of_memory(error):
        hint = ("lower --batch-size" if batch_size > 1 else
                "the batch size is already 1: try a lower-precision target (e.g. /fp16) or a device with more memory")
        return f"out of memory on {device} at batch size {batch_size} ({raised}); {hint}"
    return raised
