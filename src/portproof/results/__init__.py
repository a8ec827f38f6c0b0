"""What a check found: plain dataclasses that the writers render and nothing else computes on.

Nothing here imports torch (or greenlet, timm, onnxruntime): re-rendering a saved summary, diffing two of
them or reading a thousand of them stays light. The arithmetic that fills these lives in compare.py,
layers.py and timing.py; the rules that judge them in rules.py.
"""

from .accuracy import Accuracy, PredictionChange, TargetAccuracy
from .check import (
    RANDOM_WEIGHTS_BANNER,
    SCHEMA_VERSION,
    CheckResult,
    InputInfo,
    LatencyStats,
    ModelInfo,
    ReferenceResult,
    TargetResult,
    WeightsProvenance,
)
from .criteria import CriterionVerdict, Term
from .comparison import DiffHistogram, NonFiniteCounts, OutputComparison, Outcome, TopKAgreement, Verdict
from .layers import LayerMetrics, LayerReport, LayerRow
from .rescue import RescueResult
from .tune import TuneResult, TuneRow

__all__ = [
    "RANDOM_WEIGHTS_BANNER", "SCHEMA_VERSION", "Accuracy", "CheckResult", "CriterionVerdict", "DiffHistogram", "InputInfo", "LatencyStats",
    "LayerMetrics", "LayerReport", "LayerRow", "ModelInfo", "NonFiniteCounts", "Outcome", "OutputComparison",
    "PredictionChange", "ReferenceResult", "RescueResult", "TuneResult", "TuneRow", "TargetAccuracy", "TargetResult", "Term", "TopKAgreement", "Verdict", "WeightsProvenance",
]
