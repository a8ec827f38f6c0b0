"""Reading a saved run back: summary.json (and layers.json) into the CheckResult the writers render.

`portproof report DIR` uses this to re-render report.md and report.html without running the model. The
conversion follows the dataclasses' own type hints, so a field added to a result dataclass is read back
without a change here; a field missing from an older summary takes its default when it has one. Numbers
that were not finite were saved as null and come back as None (shown as "n/a").
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from ..errors import SummaryError
from ..results import SCHEMA_VERSION, CheckResult

SUMMARY_FILE = "summary.json"
LAYERS_FILE = "layers.json"
# Said in a layer pass read back from summary.json alone, which holds the worst modules but not every row.
SUMMARY_ONLY_NOTE = "layers.json was not found: only the modules with the largest local error are shown, from summary.json"


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
    full_passes = {}
    if layers is not None:
        _expect(isinstance(layers, dict) and isinstance(layers.get("targets"), list), LAYERS_FILE, "an object with targets",
                layers)
        full_passes = {entry.get("target"): entry for entry in layers["targets"] if isinstance(entry, dict)}
    # summary.json names a few blocks differently from the dataclasses (settings = config), and keeps a
    # layer pass in a short form of its own; the rest match the dataclasses field by field.
    targets = summary.get("targets")
    _expect(isinstance(targets, list), "summary.json.targets", "a list", targets)
    short_passes = [t.get("layers") if isinstance(t, dict) else None for t in targets]
    fields = {**summary, "config": summary.get("settings"),
              "targets": [{k: v for k, v in t.items() if k != "layers"} if isinstance(t, dict) else t for t in targets]}
    result = _build(CheckResult, fields, "summary.json")
    if not any(short_passes):
        return result
    rebuilt = []
    for position, (target, short) in enumerate(zip(result.targets, short_passes)):
        if short:
            where = f"summary.json.targets[{position}].layers"
            full = full_passes.get(target.label)
            target = dataclasses.replace(target, layers=_layer_report(full if full else short, full is not None,
                                                                     LAYERS_FILE if full else where))
        rebuilt.append(target)
    return dataclasses.replace(result, targets=tuple(rebuilt))


def _layer_report(entry: Any, with_rows: bool, where: str) -> Any:
    """A layers.LayerReport from a layers.json entry (every row) or summary.json's short form (the rows
    of the worst modules only, with their local metrics)."""
    from ..config import Criteria
    from ..results import LayerMetrics, LayerReport, LayerRow

    _expect(isinstance(entry, dict), where, "an object", entry)
    metric_fields = [f.name for f in dataclasses.fields(LayerMetrics)]

    def metrics(value: Any, at: str) -> LayerMetrics:
        _expect(isinstance(value, dict), at, "an object", value)
        return _build(LayerMetrics, {k: value[k] for k in metric_fields if k in value}, at)

    if with_rows:
        rows = []
        for i, row in enumerate(entry.get("rows") or []):
            at = f"{where}.rows[{i}]"
            _expect(isinstance(row, dict), at, "an object", row)
            rows.append(LayerRow(order=_build(int, row.get("order"), f"{at}.order"),
                                 name=_build(str, row.get("module"), f"{at}.module"),
                                 element=_build(str, row.get("element", ""), f"{at}.element"),
                                 module_type=_build(str, row.get("type", ""), f"{at}.type"),
                                 shape=_build(tuple[int, ...], row.get("shape", []), f"{at}.shape"),
                                 dtype=_build(str, row.get("dtype", ""), f"{at}.dtype"),
                                 accumulated=metrics(row.get("accumulated"), f"{at}.accumulated"),
                                 local=metrics(row.get("local"), f"{at}.local")))
        worst = [w.get("module") if isinstance(w, dict) else w for w in entry.get("worst_local") or []]
    else:
        rows, worst = [], []
        for i, item in enumerate(entry.get("worst_local") or []):
            at = f"{where}.worst_local[{i}]"
            _expect(isinstance(item, dict), at, "an object", item)
            label = _build(str, item.get("module"), f"{at}.module")
            worst.append(label)
            rows.append(LayerRow(order=i, name=label, element="", module_type="", shape=(), dtype="",
                                 accumulated=LayerMetrics(error=f"not compared: {SUMMARY_ONLY_NOTE}"),
                                 local=metrics(item, at)))
    return LayerReport(
        target=_build(str, entry.get("target"), f"{where}.target"),
        samples=_build(int, entry.get("samples"), f"{where}.samples"),
        criteria=_build(Criteria, entry.get("criteria"), f"{where}.criteria"),
        rows=tuple(rows),
        first_divergent=_build(str | None, entry.get("first_divergent"), f"{where}.first_divergent"),
        first_divergent_accumulated=_build(str | None, entry.get("first_divergent_accumulated"),
                                           f"{where}.first_divergent_accumulated"),
        worst_local=tuple(_build(str, w, f"{where}.worst_local") for w in worst),
        notes=_build(tuple[str, ...], entry.get("notes", []), f"{where}.notes") + (
            (SUMMARY_ONLY_NOTE,) if not with_rows and entry.get("modules_compared") else ()),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SummaryError(f"cannot read {path} ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SummaryError(f"{path} is not valid JSON ({error}); it may be truncated: run the check again") from None


def _build(hint: Any, value: Any, where: str) -> Any:
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
                problems.append(str(error))
        raise SummaryError(problems[0] if len(problems) == 1 else f"{where}: unexpected value {_short(value)}")
    if value is None:
        # Non-finite floats are written as null; a float field reads them back as None.
        if hint is float:
            return None
        raise SummaryError(f"{where}: missing value (null)")
    if dataclasses.is_dataclass(hint):
        return _build_dataclass(hint, value, where)
    if origin is tuple or hint is tuple:
        _expect(isinstance(value, list), where, "a list", value)
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        _expect(len(args) == len(value), where, f"{len(args)} items", value)
        return tuple(_build(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list or hint is list:
        _expect(isinstance(value, list), where, "a list", value)
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict or hint is dict:
        _expect(isinstance(value, dict), where, "an object", value)
        if not args:
            return dict(value)
        return {_build(args[0], k, where): _build(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), where, "a number", value)
        return float(value)
    if hint is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), where, "an integer", value)
        return value
    if hint in (bool, str):
        _expect(isinstance(value, hint), where, hint.__name__, value)
        return value
    return value


def _build_dataclass(cls: type, value: Any, where: str) -> Any:
    _expect(isinstance(value, dict), where, "an object", value)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.name in value:
            kwargs[field.name] = _build(hints[field.name], value[field.name], f"{where}.{field.name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SummaryError(f"{where}: field {field.name!r} is missing")
    return cls(**kwargs)


def _expect(condition: bool, where: str, what: str, value: Any) -> None:
    if not condition:
        raise SummaryError(f"{where}: expected {what}, found {_short(value)}")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
