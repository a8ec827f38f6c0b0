"""portproof: prove that a model port computes the same thing as its reference, and time it.

    from portproof import CheckConfig, run_check
    result = run_check(CheckConfig())
"""

from .compare import OutputComparison, Verdict, compare_outputs, judge
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
from .layers import LayerReport, compare_layers
from .pipeline import run_check
from .result import CheckResult, TargetResult

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
    "TargetResult",
    "TargetSpec",
    "TimingSpec",
    "Verdict",
    "WeightsSpec",
    "compare_layers",
    "compare_outputs",
    "judge",
    "parse_target",
    "run_check",
]
