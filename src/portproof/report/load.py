"""Reading a saved run back: summary.json (and layers.json) into the CheckResult the writers render.

`portproof report DIR` uses this to re-render report.md and report.html without running the model. The
conversion follows the dataclasses' own type hints, so a field added to a result dataclass is read back
without a change here; a field missing from an older summary takes its default when it has one. Numbers
that were not finite were saved as null and come back as None (shown as "n/a"). A value the writers
could not render (wrong type, a status outside PASS/FAIL/ERROR, ...) is refused with its place named:
"summary.json: field targets[0].status: ...".
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypedDict

from ..config import Criteria, OutputSpec
from ..errors import SummaryError
from ..results import (
    SCHEMA_VERSION,
    CheckResult,
    CriterionVerdict,
    DiffHistogram,
    LatencyStats,
    ModelInfo,
    Outcome,
    OutputComparison,
    PredictionChange,
    TargetResult,
    TopKAgreement,
)
from ..criteria import registered
from ..rules import RULE_TYPES
from .formatting import visible_controls
from .i18n import LANGUAGES

SUMMARY_FILE = "summary.json"
LAYERS_FILE = "layers.json"
# Said in a layer pass read back from summary.json alone, which holds the worst modules but not every row.
SUMMARY_ONLY_NOTE = "layers.json was not found: only the modules with the largest local error are shown, from summary.json"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_%.+-]+")


class SavedEnvironment(TypedDict, total=False):
    """The entries of summary.json's free-form `environment` that the writers read (environment.collect)."""

    python: str | None
    platform: str | None
    cpu: str | None
    cpu_count: int | None
    torch_threads: int | None
    packages: dict[str, str | None]
    portproof: str | None
    cann: str | None
    executable: str | None
    command_line: str | None


# Where summary.json says more than the dataclasses: its own names for a few fields, and what its
# free-form entries hold.
JSON_NAMES = {(CheckResult, "config"): "settings"}
HINTS = {(CheckResult, "environment"): SavedEnvironment}


@dataclasses.dataclass(frozen=True)
class _Place:
    """Where a value sits: a file, and the path of the field inside it (`targets[0].status`)."""

    file: str
    path: str = ""

    def key(self, name: str) -> _Place:
        if not _PLAIN_KEY.fullmatch(name):  # a key may hold anything, a terminal escape included: quoted
            return _Place(self.file, f"{self.path}[{json.dumps(name)}]")
        return _Place(self.file, f"{self.path}.{name}" if self.path else name)

    def item(self, index: int) -> _Place:
        return _Place(self.file, f"{self.path}[{index}]")

    def error(self, problem: str) -> SummaryError:
        return SummaryError(f"{self.file}: field {self.path}: {problem}" if self.path else f"{self.file}: {problem}")


def load_directory(directory: str | Path) -> CheckResult:
    """The result saved in `directory`: its summary.json, and its layers.json when there is one."""
    directory = Path(directory)
    path = directory / SUMMARY_FILE
    if not path.is_file():
        raise SummaryError(f"{path} does not exist; give a folder that holds the summary.json a check wrote",
                           cli_hint=f"run `portproof check --out {directory}` first, or point `portproof report` at "
                                    "such a folder")
    layers_path = directory / LAYERS_FILE
    layers = _read_json(layers_path) if layers_path.is_file() else None
    return from_summary(_read_json(path), layers)


def from_summary(summary: dict[str, Any], layers: dict[str, Any] | None = None) -> CheckResult:
    """The inverse of summary_json.summary() (and of layers_files.render_json() for `layers`): a
    CheckResult equal to the one that was saved, without tensors and with non-finite numbers as None.
    Without layers.json, a target's layer pass comes back from summary.json's short form: the first
    divergent modules and the worst ten by local error, without the other rows."""
    if not isinstance(summary, dict):
        raise SummaryError("summary.json does not hold a JSON object")
    version = str(summary.get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SummaryError(f"summary.json has schema_version {version or 'none'}; this portproof reads {SCHEMA_VERSION}")
    root = _Place(SUMMARY_FILE)
    full_passes = _layer_passes(layers) if layers is not None else {}
    # A layer pass is kept in summary.json in a short form of its own, read below; the rest matches the
    # dataclasses field by field.
    targets = summary.get("targets")
    _expect(isinstance(targets, list), root.key("targets"), "a list", targets)
    short_passes = [t.get("layers") if isinstance(t, dict) else None for t in targets]
    fields = {**summary, "targets": [{k: v for k, v in t.items() if k != "layers"} if isinstance(t, dict) else t
                                     for t in targets]}
    result = _build(CheckResult, fields, root)
    if not any(short_passes):
        return result
    rebuilt = []
    for position, (target, short) in enumerate(zip(result.targets, short_passes)):
        if short:
            full = full_passes.get(target.label)
            place, entry = full if full else (root.key("targets").item(position).key("layers"), short)
            target = dataclasses.replace(target, layers=_layer_report(entry, full is not None, place))
        rebuilt.append(target)
    return dataclasses.replace(result, targets=tuple(rebuilt))


def _layer_passes(layers: Any) -> dict[str, tuple[_Place, dict]]:
    """layers.json's passes by target label, each with its place in the file."""
    root = _Place(LAYERS_FILE)
    _expect(isinstance(layers, dict), root, "an object", layers)
    entries = layers.get("targets")
    _expect(isinstance(entries, list), root.key("targets"), "a list", entries)
    return {entry["target"]: (root.key("targets").item(i), entry) for i, entry in enumerate(entries)
            if isinstance(entry, dict) and isinstance(entry.get("target"), str)}


def _layer_report(entry: Any, with_rows: bool, where: _Place) -> Any:
    """A layers.LayerReport from a layers.json entry (every row) or summary.json's short form (the rows
    of the worst modules only, with their local metrics)."""
    from ..results import LayerMetrics, LayerReport, LayerRow

    _expect(isinstance(entry, dict), where, "an object", entry)
    metric_fields = [f.name for f in dataclasses.fields(LayerMetrics)]

    def metrics(value: Any, at: _Place) -> LayerMetrics:
        _expect(isinstance(value, dict), at, "an object", value)
        return _build(LayerMetrics, {k: value[k] for k in metric_fields if k in value}, at)

    def entries(name: str) -> list[tuple[_Place, Any]]:
        at = where.key(name)
        return [(at.item(i), item) for i, item in enumerate(_build(list, entry.get(name, []), at))]

    if with_rows:
        rows = []
        for at, row in entries("rows"):
            _expect(isinstance(row, dict), at, "an object", row)
            rows.append(LayerRow(order=_build(int, row.get("order"), at.key("order")),
                                 name=_build(str, row.get("module"), at.key("module")),
                                 element=_build(str, row.get("element", ""), at.key("element")),
                                 module_type=_build(str, row.get("type", ""), at.key("type")),
                                 shape=_build(tuple[int, ...], row.get("shape", []), at.key("shape")),
                                 dtype=_build(str, row.get("dtype", ""), at.key("dtype")),
                                 accumulated=metrics(row.get("accumulated"), at.key("accumulated")),
                                 local=metrics(row.get("local"), at.key("local"))))
        worst = [(at.key("module"), w.get("module")) if isinstance(w, dict) else (at, w) for at, w in entries("worst_local")]
    else:
        rows, worst = [], []
        for order, (at, item) in enumerate(entries("worst_local")):
            _expect(isinstance(item, dict), at, "an object", item)
            label = _build(str, item.get("module"), at.key("module"))
            worst.append((at.key("module"), label))
            rows.append(LayerRow(order=order, name=label, element="", module_type="", shape=(), dtype="",
                                 accumulated=LayerMetrics(error=f"not compared: {SUMMARY_ONLY_NOTE}"),
                                 local=metrics(item, at)))
    return LayerReport(
        target=_build(str, entry.get("target"), where.key("target")),
        samples=_build(int, entry.get("samples"), where.key("samples")),
        criteria=_build(Criteria, entry.get("criteria"), where.key("criteria")),
        rows=tuple(rows),
        first_divergent=_build(str | None, entry.get("first_divergent"), where.key("first_divergent")),
        first_divergent_accumulated=_build(str | None, entry.get("first_divergent_accumulated"),
                                           where.key("first_divergent_accumulated")),
        worst_local=tuple(_build(str, label, at) for at, label in worst),
        notes=_build(tuple[str, ...], entry.get("notes", []), where.key("notes")) + (
            (SUMMARY_ONLY_NOTE,) if not with_rows and entry.get("modules_compared") else ()),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SummaryError(f"cannot read {path} ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SummaryError(f"{path} is not valid JSON ({error}); it may be truncated: run the check again") from None


def _build(hint: Any, value: Any, where: _Place) -> Any:
    """`value` (parsed JSON) as an instance of the type `hint`, checked on the way."""
    if hint is Any or hint is typing.Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        problems = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _build(option, value, where)
            except SummaryError as error:
                problems.append(error)
        if len(problems) == 1:
            raise problems[0]
        raise where.error(f"unexpected value {_short(value)}")
    if value is None:
        # Non-finite floats are written as null; a float field reads them back as None.
        if hint is float:
            return None
        raise where.error("missing (null)")
    if dataclasses.is_dataclass(hint):
        return _build_dataclass(hint, value, where)
    if typing.is_typeddict(hint):
        _expect(isinstance(value, dict), where, "an object", value)
        entries = typing.get_type_hints(hint)
        return {k: _build(entries[k], v, where.key(k)) if k in entries else v for k, v in value.items()}
    if origin is tuple or hint is tuple:
        _expect(isinstance(value, list), where, "a list", value)
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, where.item(i)) for i, v in enumerate(value))
        _expect(len(args) == len(value), where, f"{len(args)} items", value)
        return tuple(_build(a, v, where.item(i)) for i, (a, v) in enumerate(zip(args, value)))
    if origin is list or hint is list:
        _expect(isinstance(value, list), where, "a list", value)
        return [_build(args[0], v, where.item(i)) for i, v in enumerate(value)] if args else list(value)
    if origin is dict or hint is dict:
        _expect(isinstance(value, dict), where, "an object", value)
        if not args:
            return dict(value)
        return {_build(args[0], k, where): _build(args[1], v, where.key(k)) for k, v in value.items()}
    if hint is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), where, "a number", value)
        return float(value)
    if hint is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), where, "an integer", value)
        return value
    if hint in (bool, str):
        _expect(isinstance(value, hint), where, "a string" if hint is str else "true or false", value)
        return value
    return value


def _build_dataclass(cls: type, value: Any, where: _Place) -> Any:
    _expect(isinstance(value, dict), where, "an object", value)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        name = JSON_NAMES.get((cls, field.name), field.name)
        if name in value:
            built = _build(HINTS.get((cls, field.name), hints[field.name]), value[name], where.key(name))
            check = VALUE_CHECKS.get((cls, field.name))
            problem = check(built) if check else None
            if problem:
                raise where.key(name).error(f"{problem}, found {_short(value[name])}")
            kwargs[field.name] = built
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise where.key(name).error("missing")
    built = cls(**kwargs)
    check = OBJECT_CHECKS.get(cls)
    found = check(built) if check else None
    if found:
        name, problem = found
        raise where.key(name).error(f"{problem}, found {_short(value.get(name))}")
    return built


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in allowed else f"expected one of {', '.join(allowed)}"


def _a_number(value: float | None) -> str | None:
    return None if value is not None else "expected a number"


def _a_share(value: float | None) -> str | None:
    return None if value is not None and 0 <= value <= 1 else "expected a share between 0 and 1"


def _numbers(values: tuple[float | None, ...]) -> str | None:
    return None if None not in values else "expected numbers, not null"


def _not_empty(value: Any) -> str | None:
    return None if value else "expected at least one item"


def _criteria(names: tuple[str, ...]) -> str | None:
    """Criteria by name, each one registered here (a plugin's too): the report words each by its name."""
    unknown = [name for name in names if name not in registered()]
    return f"expected criteria among {', '.join(registered())}" if unknown or not names else None


# What the writers rely on beyond the type hints: a status becomes a CSS class and picks the verdict's
# words, the language picks the texts, a rule's name its sentence; these numbers are printed, counted or
# drawn with (timings, histograms), so the null that stands for a non-finite number elsewhere cannot stand
# for them.
VALUE_CHECKS: dict[tuple[type, str], Callable[[Any], str | None]] = {
    (TargetResult, "status"): _one_of("PASS", "FAIL", "ERROR"),
    (CheckResult, "targets"): _not_empty,
    (CheckResult, "duration_s"): _a_number,
    (ModelInfo, "output_names"): _not_empty,
    (OutputSpec, "lang"): _one_of(*LANGUAGES),
    (Outcome, "rule"): _one_of(*RULE_TYPES),
    (CriterionVerdict, "criterion"): lambda name: _criteria((name,)),
    (Criteria, "presets"): _criteria,
    (PredictionChange, "kind"): _one_of("right_to_wrong", "wrong_to_right", "wrong_to_wrong"),
    (Criteria, "min_cosine"): _a_number,
    (Criteria, "max_rel_l2"): _a_number,
    **{(TopKAgreement, name): _a_share for name in ("top1_agreement", "topk_agreement", "tie_aware_top1_agreement")},
    **{(LatencyStats, name): _a_number for name, hint in typing.get_type_hints(LatencyStats).items() if hint is float},
    (LatencyStats, "samples_ms"): _numbers,
    (DiffHistogram, "edges"): _numbers,
    (DiffHistogram, "reference_rms"): _a_number,
}


def _outcome_numbers(outcome: Outcome) -> tuple[str, str] | None:
    """A threshold outcome's sentence prints its measured value and limit; a top-1 one counts samples with its share."""
    if outcome.rule == "top1" and _a_share(outcome.measured):
        return "measured", _a_share(outcome.measured)
    if outcome.rule in ("min_cosine", "max_rel_l2"):
        missing = [name for name in ("measured", "limit") if getattr(outcome, name) is None]
        return (missing[0], "expected a number") if missing else None
    return None


def _comparison_parts(comparison: OutputComparison) -> tuple[str, str] | None:
    """A top-1 outcome's sentence names the samples of the comparison's topk; the per-sample figure draws
    each sample's cosine and rel_l2 together."""
    if comparison.topk is None and any(outcome.rule == "top1" for outcome in comparison.outcomes):
        return "topk", "expected an object, as the outcomes hold a top1 rule"
    if len(comparison.sample_rel_l2) != len(comparison.sample_cosine):
        return "sample_rel_l2", f"expected {len(comparison.sample_cosine)} items, one per sample_cosine"
    return None


def _histogram_bins(histogram: DiffHistogram) -> tuple[str, str] | None:
    if len(histogram.edges) != len(histogram.counts) + 1:
        return "edges", f"expected {len(histogram.counts) + 1} items, one more than counts"
    return None


# The same, where a field's value is checked against another's: (field, problem) or None.
OBJECT_CHECKS: dict[type, Callable[[Any], tuple[str, str] | None]] = {
    Outcome: _outcome_numbers,
    OutputComparison: _comparison_parts,
    DiffHistogram: _histogram_bins,
}


def _expect(condition: bool, where: _Place, what: str, value: Any) -> None:
    if not condition:
        raise where.error(f"expected {what}, found {_short(value)}")


def _short(value: Any) -> str:
    text = visible_controls(json.dumps(value, ensure_ascii=False))  # json leaves C1 controls (a terminal's CSI) raw
    return text if len(text) <= 60 else text[:57] + "..."
