"""portproof: prove that a model port computes the same thing as its reference, and time it.

    from portproof import CheckConfig, Session, run_check
    result = run_check(CheckConfig())
"""

from .backends.registry import register_backend
from .compare import compare_outputs, judge
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
from .layers import compare_layers
from .models import register_family
from .results import CheckResult, LayerReport, OutputComparison, TargetResult, Verdict
from .session import Session, run_check

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
    "parse_target",
    "register_backend",
    "register_family",
    "run_check",
]
