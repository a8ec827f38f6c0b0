"""One model's check as a unit of work, and the local pool that runs them.

A model's check runs in a process of its own (worker.run: forked from the fork server, stopped at
--timeout-per-model, a crash or an out-of-memory kill contained), and its sides run in processes of their
own below it, as in `portproof check`. The process returns the check's files as bytes; the sweep writes
them into the model's run folder (runs/<model>/) the moment they arrive, locally or from a Ray task alike.
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .. import worker
from ..config import CheckConfig
from ..errors import PortproofError
from ..report import CAPTURED_OUTPUT_FILE

ERROR_FILE = "error.txt"  # a run folder whose check could not run holds this (and what it printed) instead


@dataclass(frozen=True)
class ModelTask:
    model: str
    config: CheckConfig  # the model's check, writing to its run folder
    timeout_s: float
    environment: dict[str, str] = field(default_factory=dict)  # set in the check's process (visible devices)


@dataclass(frozen=True)
class ModelOutcome:
    model: str
    files: dict[str, bytes]  # the run folder's files: the check's, or ERROR_FILE (and what it printed)
    error: str | None  # why the check could not run; None when it ran (whatever its verdicts)
    duration_s: float


def run_model(task: ModelTask, cancel: threading.Event | None = None,
              progress: Callable[..., None] | None = None) -> ModelOutcome:
    """The check of one model, in a process of its own; a failure of the whole check is its outcome, never an
    exception (worker.Cancelled aside). Also the function a Ray task runs."""
    worker.start()
    started = time.monotonic()
    with tempfile.NamedTemporaryFile(prefix="portproof-model-", suffix=".log") as printed:
        try:
            files = worker.run(check_in_own_process, (task.config, task.environment),
                               label=f"the check of {task.model}", timeout_s=task.timeout_s, capture_path=printed.name,
                               device="cpu", batch_size=task.config.inputs.batch_size, progress=progress, cancel=cancel,
                               daemon=False)  # the check starts its sides' processes
            return ModelOutcome(task.model, files, None, time.monotonic() - started)
        except PortproofError as error:
            message = error.for_cli()
        except worker.TimedOut:
            message = f"timed out after {task.timeout_s:g} s (--timeout-per-model); its process was stopped"
        except (worker.SideFailed, worker.SideCrashed) as error:
            message = str(error)
        files = {ERROR_FILE: f"{message}\n".encode("utf-8")}
        output = printed.read()
        if output.strip():
            files[CAPTURED_OUTPUT_FILE] = output
    return ModelOutcome(task.model, files, message, time.monotonic() - started)


def check_in_own_process(config: CheckConfig, environment: dict[str, str], *, progress) -> dict[str, bytes]:
    """In the model's process: the check, and its files rendered (summary.json last, so that a folder
    holding it holds the rest: it is what a resumed sweep looks for)."""
    os.environ.update(environment)
    from ..report import check_files
    from ..session import run_check

    files = check_files(run_check(config, progress=progress), config.output.lang)
    summary = files.pop("summary.json")
    return {**files, "summary.json": summary}


def run_locally(tasks: list[ModelTask], workers: int, environments: list[dict[str, str]],
                started: Callable[[str], None], step: Callable[..., None]) -> Iterator[ModelOutcome]:
    """The tasks on `workers` local workers, outcomes as they finish. Worker `i` adds `environments[i]` to
    its checks (its own accelerator). Closing the iterator (Ctrl-C, SIGTERM) stops every running check."""
    cancel = threading.Event()
    slots: queue.SimpleQueue[int] = queue.SimpleQueue()
    for slot in range(workers):
        slots.put(slot)

    def one(task: ModelTask) -> ModelOutcome:
        slot = slots.get()
        try:
            if cancel.is_set():
                raise worker.Cancelled()
            started(task.model)
            placed = ModelTask(task.model, task.config, task.timeout_s, {**task.environment, **environments[slot]})
            return run_model(placed, cancel, lambda message, done=None, total=None: step(task.model, message))
        finally:
            slots.put(slot)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="portproof-sweep")
    pending = {pool.submit(one, task) for task in tasks}
    try:
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)  # short: signals act at once
            for future in done:
                yield future.result()
    finally:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)


def settings_match(saved: dict, config: CheckConfig) -> bool:
    """Whether a saved summary.json's settings are `config`'s, the command line and the folder aside (a
    sweep resumed by another command, or from a moved folder, reuses what it can)."""
    from ..report.summary_json import to_jsonable

    expected = json.loads(json.dumps(to_jsonable(config)))
    return _comparable(saved) == _comparable(expected)


def _comparable(settings: dict) -> dict:
    if not isinstance(settings, dict):
        return {}
    output = settings.get("output")
    output = {k: v for k, v in output.items() if k != "directory"} if isinstance(output, dict) else output
    return {**{k: v for k, v in settings.items() if k != "command_line"}, "output": output}
