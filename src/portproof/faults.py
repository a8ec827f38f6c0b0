"""Guards around the parts of a check that can misbehave: a deadline on each side's run, and failures
(out of memory, a timeout) worded so that the user knows what to do.

A forward stuck in a driver call cannot be stopped from Python. `run_with_deadline` therefore runs the work
in a daemon thread and, past the deadline, abandons it: the check goes on, and the process still exits at
the end (a daemon thread does not keep it alive). An abandoned run that wakes up again ends at its next
progress report; until then it may keep a core or device memory busy.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

import torch

from .errors import describe

T = TypeVar("T")


class TimedOut(Exception):
    def __init__(self, seconds: float):
        super().__init__(
            f"timed out after {seconds:g} s (--target-timeout); the run was abandoned and may still occupy the device, "
            "so the latency of what runs after it may be disturbed"
        )


class _Abandoned(BaseException):
    """Raised inside an abandoned run at its next progress report, to end it quietly."""


def run_with_deadline(work: Callable[[Callable | None], T], timeout_s: float, progress: Callable | None = None) -> T:
    """`work(progress)` in a daemon thread; its value, or its exception re-raised here (KeyboardInterrupt
    included), or TimedOut after `timeout_s` seconds. Once abandoned, the run's progress calls stop reaching
    `progress` (they end the run instead), so it cannot write over what the check does next."""
    outcome: dict[str, object] = {}
    abandoned = threading.Event()
    gate = threading.Lock()

    def gated(*args, **kwargs):
        with gate:
            if abandoned.is_set():
                raise _Abandoned()
            return progress(*args, **kwargs)

    def body() -> None:
        try:
            outcome["value"] = work(gated if progress is not None else None)
        except _Abandoned:
            pass
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=body, name="portproof-run", daemon=True)
    thread.start()
    try:
        thread.join(timeout_s)
    finally:  # a timeout, or Ctrl-C while waiting: the run is left behind
        if thread.is_alive():
            with gate:
                abandoned.set()
    if thread.is_alive():
        raise TimedOut(timeout_s)
    if "error" in outcome:
        raise outcome.pop("error")
    return outcome["value"]


def is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError, host MemoryError, or a runtime's own wording (torch_npu, onnxruntime)."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(error, MemoryError) or (oom is not None and isinstance(error, oom)):
        return True
    text = str(error).lower()
    return "out of memory" in text or "failed to allocate memory" in text


def describe_failure(error: BaseException, device: str, batch_size: int) -> str:
    """One line for a side's ERROR: what was raised, and for out of memory and timeouts what to do."""
    if isinstance(error, TimedOut):
        return str(error)
    raised = describe(error)
    if is_out_of_memory(error):
        hint = ("lower --batch-size" if batch_size > 1 else
                "the batch size is already 1: try a lower-precision target (e.g. /fp16) or a device with more memory")
        return f"out of memory on {device} at batch size {batch_size} ({raised}); {hint}"
    return raised


