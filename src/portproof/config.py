"""What a check is asked to do: frozen settings, each default stated once, here.

The CLI builds these from argv and passes only what the user gave; the pipeline reads them and never
changes them. `parse_target` turns the `[backend@]device[:index][/dtype]` syntax into a TargetSpec, checked
against the registered backends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ConfigError

DEFAULT_MODEL = "vit_tiny_patch16_224"
ISOLATION_MODES = ("process", "none")
CHANNELS_LAST = "channels_last"


@dataclass(frozen=True)
class ModelSpec:
    name: str = DEFAULT_MODEL
    family: str | None = None  # a registered family's name; None: the family whose spelling the name has


@dataclass(frozen=True)
class WeightsSpec:
    """Where the weights come from: `auto` searches (file, ModelScope caches, HF cache, download)."""

    source: str = "auto"  # "auto" | "random" | a path to a file or directory
    cache_dirs: tuple[str, ...] = ()  # extra ModelScope-style roots, searched first
    offline: bool = False  # never try a download
    require_pretrained: bool = False  # random initialisation becomes an error
    allow_partial: bool = False  # missing / unexpected keys are recorded instead of refused
    allow_nonfinite: bool = False  # NaN / Inf values in the checkpoint are recorded instead of refused
    allow_nonfloat: bool = False  # integer / quantised tensors for floating parameters are loaded instead of refused
    # a checkpoint that supplies under half of the parameters still counts as pretrained (weights.PRETRAINED_SHARE)
    accept_partial_as_pretrained: bool = False
    trust_pickle: bool = False  # a pickle that weights_only loading refuses may be unpickled (it can run code)
    download_timeout_s: float = 10.0
    seed: int = 0  # seeds the random initialisation when no weights are found


@dataclass(frozen=True)
class InputSpec:
    source: str = "images"  # "images" (bundled photos) | "random" | a directory of the user's images
    labels: str | None = None  # a CSV of `filename,label` for the images of the `source` directory (labelled.py)
    num_samples: int = 8
    batch_size: int = 1
    seed: int = 0


@dataclass(frozen=True)
class TargetSpec:
    backend: str = "eager"
    device: str = "cpu"
    index: int | None = None
    dtype: str = "fp32"
    keep_fp32: tuple[str, ...] = ()  # modules that stay fp32 in a low-precision target (`+fp32=a,b`; precision.py)
    channels_last: bool = False  # the model and its 4-D inputs in channels-last memory format (`+channels_last`)
    mode: str | None = None  # a backend's own mode (`+mode=max-autotune`: torch.compile's); None: its default

    @property
    def device_string(self) -> str:
        return self.device if self.index is None else f"{self.device}:{self.index}"

    @property
    def label(self) -> str:
        """The canonical spelling, which `parse_target` reads back to an equal spec."""
        prefix = "" if self.backend == "eager" else f"{self.backend}@"
        suffix = "" if self.dtype == "fp32" else f"/{self.dtype}"
        layout = f"+{CHANNELS_LAST}" if self.channels_last else ""
        mode = f"+mode={self.mode}" if self.mode else ""
        kept = f"+fp32={','.join(self.keep_fp32)}" if self.keep_fp32 else ""
        return f"{prefix}{self.device_string}{suffix}{layout}{mode}{kept}"


@dataclass(frozen=True)
class Criteria:
    """The verdict's thresholds (see README, "Verdict"), and the criteria a target is judged by (README,
    "Criteria"; criteria.py): the first decides its status and the exit code."""

    min_cosine: float = 0.99
    max_rel_l2: float = 0.01
    presets: tuple[str, ...] = ("portproof",)
    atol: float | None = None  # of allclose and polygraphy; None: each one's own default
    rtol: float | None = None
    mlperf_ratio: float = 0.99  # the share of the reference's top-1 accuracy a target must keep under mlperf

    def rules(self) -> tuple:
        """The rules in force, in the order they are checked and worded (rules.py)."""
        from . import rules

        return (rules.SameShape(), rules.FiniteWhereReferenceFinite(), rules.Comparable(),
                *self.threshold_rules(), rules.TieAwareTop1())

    def threshold_rules(self) -> tuple:
        """The rules with a limit on a metric, which the layer pass applies to every module output."""
        from . import rules

        return (rules.MinCosine(self.min_cosine), rules.MaxRelL2(self.max_rel_l2))


@dataclass(frozen=True)
class TimingSpec:
    enabled: bool = True
    warmup: int = 10
    iters: int = 50


@dataclass(frozen=True)
class OutputSpec:
    directory: str = "logs"
    save_tensors: bool = False
    lang: str = "en"  # of report.md and report.html ("en" | "zh")


@dataclass(frozen=True)
class CheckConfig:
    model: ModelSpec = field(default_factory=ModelSpec)
    weights: WeightsSpec = field(default_factory=WeightsSpec)
    inputs: InputSpec = field(default_factory=InputSpec)
    reference: TargetSpec = field(default_factory=TargetSpec)
    targets: tuple[TargetSpec, ...] | None = None  # None: every accelerator present (see backends/registry.py)
    criteria: Criteria = field(default_factory=Criteria)
    timing: TimingSpec = field(default_factory=TimingSpec)
    output: OutputSpec = field(default_factory=OutputSpec)
    fp64_reference: bool = True
    layers: bool = False  # also compare module by module (layers.py) for each target
    single_target: bool = False  # `portproof layers`: `--target auto` takes only the first target it finds
    target_timeout_s: float = 3600.0  # a side whose run and timing take longer ends as ERROR: timed out
    # "process": each side in a child process of its own (faithful timings, crashes and hangs contained);
    # "none": in the calling thread (no deadline, no containment; see README "Where each side runs")
    isolation: str = "process"
    threads: int | None = None  # torch's CPU thread count for every side (None: as this process has it)
    command_line: str = ""


_TARGET_PATTERN = re.compile(
    r"^(?:(?P<backend>[a-z_]+)@)?(?P<device>[a-z]+)(?::(?P<index>\d+))?(?:/(?P<dtype>[a-z0-9-]+))?$"
)


def parse_target(text: str) -> TargetSpec:
    """`[backend@]device[:index][/dtype][+channels_last][+mode=MODE][+fp32=module,...]`, e.g. `npu:0/fp16`,
    `onnxruntime@cpu`, `cuda/amp-bf16`, `cpu/bf16+fp32=head`, `compile@cuda/bf16+mode=max-autotune`; the backend,
    device, dtype and mode must be ones a registered backend takes (backends/registry.py)."""
    from .backends import registry

    base, *extras = text.strip().split("+")  # module names keep their case
    match = _TARGET_PATTERN.match(base.lower())
    channels_last, keep, fp32_given, mode = False, (), False, None
    for extra in extras:
        if extra.strip().lower() == CHANNELS_LAST:
            channels_last = True
        elif extra.strip().lower().startswith("mode="):
            mode = extra.strip().lower()[5:] or None
        elif extra.strip().lower().startswith("fp32="):
            fp32_given = True
            keep = tuple(dict.fromkeys(name.strip() for name in extra.strip()[5:].split(",") if name.strip()))
        else:
            match = None
    if not match:
        raise ConfigError(
            f"cannot read target {text!r}: expected [backend@]device[:index][/dtype][+channels_last][+mode=MODE]"
            "[+fp32=module,...], e.g. npu:0/fp16 or onnxruntime@cpu"
        )
    index = int(match["index"]) if match["index"] is not None else None
    spec = TargetSpec(backend=match["backend"] or "eager", device=match["device"], index=index,
                      dtype=match["dtype"] or "fp32", keep_fp32=keep, channels_last=channels_last, mode=mode)
    if fp32_given and not keep:
        raise ConfigError(f"target {text!r}: +fp32= names no module; give module names, e.g. +fp32=head")
    if keep and spec.dtype == "fp32":
        raise ConfigError(f"target {text!r}: +fp32= keeps modules in fp32 within a lower precision, and the target is "
                          "fp32 already; give a dtype, e.g. /bf16+fp32=head")
    return registry.validate(spec, text)
