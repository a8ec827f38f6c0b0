"""portproof: prove that a model port computes the same thing as its reference, and time it.

    from portproof import CheckConfig, Session, run_check
    result = run_check(CheckConfig())
"""

from .config import (
    CheckConfig,
    Criteria,
    InputSpec,
    ModelSpec,
    OutputSpec,
    TargetSpec,
    TimingSpec,
    WeightsSpec,
    parse_target,
)
from .errors import PortproofError
from .results import CheckResult, LayerReport, OutputComparison, TargetResult, Verdict

# Names whose modules import torch are loaded on first use, so that `portproof --help`, `portproof report`
# and the result types work in a Python without torch.
_LAZY = {
    "Session": "session", "run_check": "session", "compare_layers": "layers", "compare_outputs": "compare",
    "judge": "compare", "register_backend": "backends.registry", "register_family": "models",
    "register_criterion": "criteria", "keep_fp32": "precision", "rescue": "rescue",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'portproof' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "CheckConfig",
    "CheckResult",
    "Criteria",
    "InputSpec",
    "LayerReport",
    "ModelSpec",
    "OutputComparison",
    "OutputSpec",
    "PortproofError",
    "Session",
    "TargetResult",
    "TargetSpec",
    "TimingSpec",
    "Verdict",
    "WeightsSpec",
    "compare_layers",
    "compare_outputs",
    "judge",
    "keep_fp32",
    "parse_target",
    "register_backend",
    "register_criterion",
    "register_family",
    "rescue",
    "run_check",
]
