"""Where each side runs: in a child process of its own, on that process's main thread.

Two things decide it. torch's CPU kernels run about twice as slow from a non-main thread of a process that
has used torch, so a side timed anywhere but a main thread gets a false latency. And what a real port can
do (a vendor kernel that segfaults or aborts, a driver call that never returns, a device left unusable)
must end that side only: a child process can be stopped at the deadline and can die without taking the
check down. Children are forked from a fork server started once per process (it has imported torch and
timm before any parallel region ran), so a side starts in milliseconds.

A child ignores Ctrl-C (the parent decides, and stops it), sends progress and its result back through a
pipe, and writes whatever third-party code prints (exporters, compilers, runtimes; C++ included, at the
file-descriptor level) to a capture file, never to our stdout. `isolated=False` runs the side in the
calling thread instead (the Python API's in-process mode): no deadline, no containment, and timings
faithful only when called from a main thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from multiprocessing.connection import wait
from typing import Any, Callable

from . import errors
from .errors import PortproofError

_KILL_GRACE_S = 2.0
_STARTING = threading.Lock()  # a sweep starts processes from several threads; __main__ is hidden one at a time


class TimedOut(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"timed out after {seconds:g} s (--target-timeout); its process was stopped")


class SideFailed(Exception):
    """A side raised in its child: the one-line description the child wrote (faults.describe_failure)."""


class SideCrashed(Exception):
    """A side's child died without answering: killed by a signal, or exited."""


class Cancelled(Exception):
    """The caller's `cancel` event was set while the side ran; its process was stopped."""


def context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["portproof.fork_server"])  # what it imports once for every side: see there
    return ctx


def start() -> None:
    """Start the fork server now, so that its imports overlap with the caller's own work. It starts with
    /dev/null for stdout and stderr: it and the sides forked from it must never hold the caller's (a pipe a
    caller reads to its end would wait for them), and what its imports print is not ours to show."""
    from multiprocessing import forkserver

    from .fork_server import SERVER_MARK

    if _server_pid() is not None:
        return
    context()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    os.environ[SERVER_MARK] = str(os.getpid())
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        forkserver.ensure_running()
    finally:
        del os.environ[SERVER_MARK]
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (*saved, null):
            os.close(descriptor)


def _server_pid() -> int | None:
    """The fork server's pid while it runs (the standard library's own singleton: no public accessor)."""
    from multiprocessing import forkserver

    pid = forkserver._forkserver._forkserver_pid
    if pid is None:
        return None
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            return pid
    forkserver._forkserver._forkserver_pid = None  # it has ended (and is reaped): a later start() starts another
    return None


def stop() -> None:
    """Stop the fork server and multiprocessing's resource tracker now (the command's last step), rather
    than when they notice that this process has gone: nothing of the check outlives it, not even briefly."""
    from multiprocessing import forkserver, resource_tracker

    pid = _server_pid()
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        forkserver._forkserver._forkserver_pid = None
    with contextlib.suppress(Exception):
        resource_tracker._resource_tracker._stop()


def run(function: Callable[..., Any], args: tuple, *, label: str, timeout_s: float, capture_path: str,
        device: str, batch_size: int, progress: Callable[..., None] | None = None, isolated: bool = True,
        cancel: threading.Event | None = None, daemon: bool = True) -> Any:
    """`function(*args, progress=...)` for the side called `label` on `device`: its value, or SideFailed,
    SideCrashed, TimedOut, or the PortproofError it raised. What third-party code prints goes to `capture_path`.
    `cancel`, set from another thread, stops the process within a second (Cancelled): a caller running
    sides from worker threads cannot reach them with Ctrl-C, which only the main thread receives.
    `daemon=False` lets the function start processes of its own (a sweep's check starts its sides); it
    still dies with its parent (_die_with_the_parent)."""
    if not isolated:
        with stdout_to(capture_path):
            return function(*args, progress=progress)
    payload = pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL)
    parent_end, child_end = multiprocessing.Pipe(duplex=False)
    # the side's temporary files (an exported ONNX graph, say) go here, removed even when the side is killed
    scratch = tempfile.mkdtemp(prefix="portproof-side-")
    # the caller's torch thread count, which the fork server (started earlier) may not have
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    process = context().Process(target=_child, args=(child_end, payload, capture_path, device, batch_size, scratch,
                                                     threads), name=f"portproof {label}", daemon=daemon)
    try:
        with _STARTING, _main_module_hidden():
            process.start()
        child_end.close()
        return _wait(process, parent_end, label, timeout_s, progress, cancel)
    finally:
        parent_end.close()
        _stop(process)
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _main_module_hidden():
    """multiprocessing runs the parent's main script again in a child, so that objects defined there unpickle;
    a script without an `if __name__ == "__main__":` guard would then start its check again. The side needs
    only importable modules, so the child is not told which main module to import."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__spec__", "__file__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _wait(process, connection, label: str, timeout_s: float, progress, cancel: threading.Event | None) -> Any:
    deadline = time.monotonic() + timeout_s
    step = "start-up"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimedOut(timeout_s)
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        ready = wait([connection, process.sentinel], timeout=min(remaining, 1.0))  # short slices: signals act at once
        if connection in ready:
            try:
                kind, *body = connection.recv()
            except EOFError:  # the child closed its end by dying
                kind, body = "died", []
            if kind == "progress":
                step = body[0]
                if progress is not None:
                    progress(*body)
                continue
            if kind == "result":
                return pickle.loads(body[0])
            if kind == "failed":
                raise SideFailed(body[0])
            if kind == "portproof-error":
                name, message, hint = body
                raise getattr(errors, name, PortproofError)(message, cli_hint=hint)
        elif not ready:
            continue
        process.join(_KILL_GRACE_S)
        raise SideCrashed(f"{_death(process.exitcode)} while running {label} (at: {step}); what it printed is in "
                          "the run's captured output")


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"crashed with {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"crashed with signal {-exitcode}"
    return f"exited with status {exitcode} without a result"


def _stop(process) -> None:
    """No child outlives its side: a clean one has exited; any other is killed (it may be stuck in C++)."""
    if process.pid is None:
        return
    process.join(0.5 if process.exitcode is None else 0)
    if process.exitcode is None:
        process.kill()
        process.join(_KILL_GRACE_S)


def _child(connection, payload: bytes, capture_path: str, device: str, batch_size: int, scratch: str,
           threads: int | None) -> None:
    """The side, in its own process: run, answer, and leave without running library teardown."""
    from .faults import describe_failure

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    _die_with_the_parent()
    _redirect_output(capture_path)
    tempfile.tempdir = os.environ["TMPDIR"] = scratch
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    def report(message: str, done: int | None = None, total: int | None = None) -> None:
        connection.send(("progress", message, done, total))

    try:
        try:
            function, args = pickle.loads(payload)
        except (AttributeError, ImportError) as error:  # a class the child cannot import by name
            raise RuntimeError(f"the model cannot be handed to the side's process ({error}); define its class in an "
                               "importable module rather than the main script, or run in-process") from None
        value = function(*args, progress=report)
        answer = ("result", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except PortproofError as error:
        answer = ("portproof-error", type(error).__name__, str(error), error.cli_hint)
    except BaseException as error:  # every failure is the side's result, worded here where its type is known
        answer = ("failed", describe_failure(error, device, batch_size))
    connection.send(answer)
    connection.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # device runtimes' exit handlers are not ours to run (some abort once a device has failed)


def _die_with_the_parent() -> None:
    """A side never outlives the check that started it, even one interrupted while it was being started
    (before it knew the side's pid): a thread waits for the parent's end (the GIL is free while torch
    computes), and on Linux the kernel kills the side when the fork server, its parent, ends."""
    import threading

    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (wait([parent.sentinel]), os._exit(1)), name="parent-watch", daemon=True).start()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _redirect_output(path: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for stream, number in ((sys.stdout, 1), (sys.stderr, 2)):
        stream.flush()
        os.dup2(descriptor, number)
    os.close(descriptor)


@contextlib.contextmanager
def stdout_to(path: str):
    """Stdout (file descriptor 1, so C++ output too) into the capture file: around an in-process side, and
    around what the session runs of a user's code in this process (a factory, make_inputs, a hub download)."""
    sys.stdout.flush()
    saved = os.dup(1)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(descriptor, 1)
    os.close(descriptor)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)

