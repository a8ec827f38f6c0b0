"""What a sweep is asked to do: the models, the check every one of them gets, and how the work is spread.
Each default is stated once, here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..changes import MoveFactors
from ..config import CheckConfig
from .selection import run_folder

RUNS_FOLDER = "runs"
# How a process is shown one accelerator of several: the variable each runtime reads when it starts.
VISIBLE_DEVICES = {"cuda": "CUDA_VISIBLE_DEVICES", "npu": "ASCEND_RT_VISIBLE_DEVICES", "xpu": "ZE_AFFINITY_MASK"}


@dataclass(frozen=True)
class SweepConfig:
    models: tuple[str, ...]
    check: CheckConfig  # every model's check; the model's name and its run folder are set per model
    directory: str
    workers: int | None = None  # None: one per accelerator device the targets use, or cores // 2 on the CPU
    timeout_per_model_s: float = 7200.0  # a check that takes longer is stopped and its row is ERROR
    force: bool = False  # check again the models whose summary.json from the same settings exists
    ray_address: str | None = None  # "auto" or HOST:PORT: the checks run as Ray tasks instead of local processes
    baseline: str | None = None  # an earlier sweep's folder to mark changes against
    factors: MoveFactors = field(default_factory=MoveFactors)
    models_spec: str = ""  # --models as given, recorded in matrix.json

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(spec.label for spec in self.check.targets or ())

    def run_dir(self, model: str) -> Path:
        return Path(self.directory) / RUNS_FOLDER / run_folder(model)

    def model_check(self, model: str) -> CheckConfig:
        """The check of one model, writing to its run folder."""
        return replace(self.check, model=replace(self.check.model, name=model),
                       output=replace(self.check.output, directory=str(self.run_dir(model))))

    def accelerators(self) -> tuple[str, ...]:
        """The accelerator types the targets (and the reference) run on."""
        specs = (self.check.reference, *(self.check.targets or ()))
        return tuple(dict.fromkeys(spec.device for spec in specs if spec.device != "cpu"))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def device_count(device: str) -> int:
    """How many devices of a type this machine shows (torch's count; 1 for mps)."""
    if device == "mps":
        return 1
    import torch

    if device == "npu":
        import torch_npu  # noqa: F401  (registers torch.npu)
    return getattr(torch, device).device_count()


def local_workers(sweep: SweepConfig) -> int:
    """--workers, or one per device of the first accelerator type the targets use, or half the cores."""
    if sweep.workers is not None:
        return sweep.workers
    accelerators = sweep.accelerators()
    if accelerators:
        return max(1, device_count(accelerators[0]))
    return max(1, cpu_count() // 2)


def slot_environment(sweep: SweepConfig, slot: int, workers: int) -> dict[str, str]:
    """What local worker `slot` sets in its checks' processes so that each worker has its own accelerator:
    device `slot` (of those already visible) of every accelerator type the targets use. Nothing with
    one worker, or on the CPU."""
    if workers == 1:
        return {}
    environment = {}
    for device in sweep.accelerators():
        variable = VISIBLE_DEVICES.get(device)
        if variable is None:
            continue
        visible = os.environ.get(variable)
        devices = [d.strip() for d in visible.split(",") if d.strip()] if visible else [str(i) for i in range(device_count(device))]
        if devices:
            environment[variable] = devices[slot % len(devices)]
    return environment


def with_local_threads(sweep: SweepConfig) -> SweepConfig:
    """The sweep with its checks' torch thread count (--threads) set, when it was not given: the cores shared
    by the local workers, so that parallel checks do not oversubscribe them."""
    if sweep.check.threads is not None:
        return sweep
    return replace(sweep, check=replace(sweep.check, threads=max(1, cpu_count() // local_workers(sweep))))
