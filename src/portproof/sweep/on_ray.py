"""The sweep's checks as Ray tasks (`--ray ADDRESS|auto`): one task per model, asking for the devices its
targets run on; each task runs the same unit of work as a local worker (runner.run_model: the check in a
process of its own, under --timeout-per-model) and returns the check's files to the driver, which writes
them. Ray is imported only here, only when asked for."""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import replace
from typing import Iterator

from ..errors import ConfigError, PlatformError, first_line
from .runner import ERROR_FILE, ModelOutcome, ModelTask, run_model
from .settings import VISIBLE_DEVICES

# The Ray resource that stands for one device of a target's type (Ray's own names for them).
RAY_RESOURCES = {"cuda": "GPU", "xpu": "GPU", "npu": "NPU"}
_PROBE_TIMEOUT_S = 5.0


@contextlib.contextmanager
def connected(address: str):
    """A connection to the Ray cluster at `address` ("auto": the one this machine belongs to) for the block;
    a PlatformError, before any work, when there is none. A process already connected (ray.init called by
    the caller) keeps its connection, and it is not closed here."""
    try:
        import ray
    except ImportError:
        raise PlatformError("Ray is not installed; install portproof's ray extra: pip install 'portproof[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    if address != "auto":
        _probe(address)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as error:  # ConnectionError, RuntimeError, ValueError: Ray words each in its own way
        raise PlatformError(f"cannot connect to the Ray cluster at {address} ({first_line(error)}); start one with "
                            "`ray start --head` or give the address of its head node", cli_hint="--ray ADDRESS|auto") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _probe(address: str) -> None:
    """A TCP connection to HOST:PORT (a `ray://` client address too), so that a wrong address is an error in
    seconds rather than after Ray's own retries."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"cannot read the Ray address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto",
                          cli_hint="--ray ADDRESS|auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as error:
        raise PlatformError(f"cannot reach the Ray cluster at {address} ({error.strerror or error}); check that its "
                            "head node runs (`ray status` there) and that this machine can reach it",
                            cli_hint="--ray ADDRESS|auto") from None


def resources(devices: tuple[str, ...], threads: int) -> dict:
    """The ray.remote options of one model's task: its CPUs and one device of each accelerator type."""
    needed: dict[str, float] = {}
    for device in devices:
        if device in RAY_RESOURCES:
            needed[RAY_RESOURCES[device]] = 1
    options: dict = {"num_cpus": threads, "max_retries": 0}
    if "GPU" in needed:
        options["num_gpus"] = needed.pop("GPU")
    if needed:
        options["resources"] = needed
    return options


def check_resources(ray, devices: tuple[str, ...], threads: int) -> None:
    """A PlatformError, before any work, when no node of the cluster has what a task asks for (it would wait forever)."""
    wanted = resources(devices, threads)
    asked = {"CPU": wanted["num_cpus"], "GPU": wanted.get("num_gpus", 0), **wanted.get("resources", {})}
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if not any(all(node.get(name, 0) >= amount for name, amount in asked.items() if amount) for node in nodes):
        shown = ", ".join(f"{amount:g} {name}" for name, amount in asked.items() if amount)
        raise PlatformError(f"no node of the Ray cluster offers what one model's check asks for ({shown}); add such "
                            "nodes, or lower --threads", cli_hint="--threads N")


def run_task(task: ModelTask) -> ModelOutcome:
    """On a Ray worker: the model's check, shown the devices Ray gave this task (Ray sets them in the
    worker's environment per task, after the worker's fork server was started)."""
    given = {variable: os.environ[variable] for variable in VISIBLE_DEVICES.values() if variable in os.environ}
    return run_model(replace(task, environment={**task.environment, **given}))


def run_on_ray(tasks: list[ModelTask], devices: tuple[str, ...], threads: int) -> Iterator[ModelOutcome]:
    """The tasks on the connected Ray cluster, outcomes as they finish; closing the iterator cancels the rest."""
    import ray

    remote = ray.remote(run_task)
    pending = {}
    for task in tasks:
        pending[remote.options(**resources(devices, threads)).remote(task)] = task
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)  # short: signals act at once
            for reference in done:
                task = pending.pop(reference)
                try:
                    yield ray.get(reference)
                except ray.exceptions.RayError as error:  # the task's worker died, or Ray could not run it
                    message = f"the Ray task failed: {first_line(error)}"
                    yield ModelOutcome(task.model, {ERROR_FILE: f"{message}\n".encode("utf-8")}, message, 0.0)
    finally:
        for reference in pending:
            with contextlib.suppress(Exception):
                ray.cancel(reference, force=True)
