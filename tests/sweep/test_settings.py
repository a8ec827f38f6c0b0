"""How a sweep spreads its checks on one machine: threads shared by the workers, one accelerator per worker."""

from __future__ import annotations

from portproof.config import CheckConfig, TargetSpec
from portproof.sweep.settings import SweepConfig, cpu_count, slot_environment, with_local_threads


def sweep_of(*targets: TargetSpec, **fields) -> SweepConfig:
    return SweepConfig(models=("test_vit",), check=CheckConfig(targets=targets, **fields), directory="out", workers=2)


def test_workers_share_the_cores_unless_threads_are_given():
    assert with_local_threads(sweep_of(TargetSpec(dtype="bf16"))).check.threads == max(1, cpu_count() // 2)
    assert with_local_threads(sweep_of(TargetSpec(dtype="bf16"), threads=3)).check.threads == 3


def test_each_worker_is_shown_its_own_device_of_those_visible(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    sweep = sweep_of(TargetSpec(device="cuda"), TargetSpec(device="cuda", dtype="fp16"))
    assert [slot_environment(sweep, slot, 2) for slot in range(2)] == [{"CUDA_VISIBLE_DEVICES": "4"},
                                                                       {"CUDA_VISIBLE_DEVICES": "5"}]
    assert slot_environment(sweep, 0, 1) == {}  # one worker: the devices as they are
    assert slot_environment(sweep_of(TargetSpec(dtype="bf16")), 1, 2) == {}  # the CPU has no such variable
