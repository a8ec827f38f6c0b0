"""The command-line side of `portproof sweep` and `portproof diff`: their options, the checks on them
before any work, what is printed and the exit code. (cli.py registers them and handles errors and signals.)

Exit codes: sweep, without --baseline: 0 every cell passed, 1 some cell failed or raised; with --baseline:
0 no regression, 1 a regression (PASS before, FAIL or ERROR now). diff: 0 no regression, 1 a regression.
Both: 2 could not run, 130 interrupted, 143 terminated.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import replace
from pathlib import Path

from ..changes import MoveFactors, compare_cell
from ..errors import ConfigError
from .settings import SweepConfig

EXIT_PASS, EXIT_FAIL = 0, 1


def add_commands(commands, add_run_options) -> None:
    sweep = commands.add_parser(
        "sweep", help="check many models on the same targets: a resumable parity matrix, local or on Ray",
        description="Check every model of --models on the same targets with the same options (each model one "
                    "check, in a process of its own); write DIR/runs/<model>/ for each and DIR/matrix.csv, "
                    "DIR/matrix.json and DIR/index.html. A rerun into DIR keeps the checks already done.")
    add_run_options(sweep, sweep=True)
    S = argparse.SUPPRESS
    group = sweep.add_argument_group("sweep")
    group.add_argument("--models", required=True, metavar="FILE|NAME,NAME|timm:PATTERN",
                       help="a file with one model per line (# comments), a comma list, or timm:PATTERN[,PATTERN] "
                            "(timm's list_models filters, e.g. timm:vit_*)")
    group.add_argument("--limit", type=int, default=S, metavar="N", help="only the first N models of the selection")
    group.add_argument("--workers", type=int, default=S, metavar="N",
                       help="checks run at once on this machine (default: one per accelerator device of the targets, "
                            "or half the cores on the CPU)")
    group.add_argument("--timeout-per-model", type=float, default=S, metavar="S",
                       help="seconds one model's whole check may take before it is stopped and its row is ERROR "
                            f"(default {SweepConfig.timeout_per_model_s:g})")
    group.add_argument("--force", action="store_true", default=S,
                       help="check again the models whose summary.json from the same settings is already in DIR")
    group.add_argument("--ray", default=S, metavar="ADDRESS|auto",
                       help="run each model's check as a task on this Ray cluster (HOST:PORT, ray://HOST:PORT, or "
                            "auto for the cluster this machine belongs to) instead of local workers")
    group = sweep.add_argument_group("release-to-release tracking")
    group.add_argument("--baseline", default=S, metavar="DIR",
                       help="an earlier sweep's folder: mark every cell whose verdict changed or whose rel_l2 or "
                            "latency moved by more than its factor; exit 1 on a regression (PASS before, not now)")
    _add_factor_options(group)
    diff = commands.add_parser("diff", help="what changed between two check folders (verdicts, rel_l2, latency)",
                               description="Compare the summary.json of check folder B with that of folder A, target "
                                           "by target; exit 1 when a target that passed in A does not in B.")
    diff.add_argument("before", metavar="A", help="the earlier check's folder")
    diff.add_argument("after", metavar="B", help="the later check's folder")
    _add_factor_options(diff)
    diff.add_argument("--json", action="store_true", help="print the changes as JSON")


def _add_factor_options(parser) -> None:
    parser.add_argument("--rel-l2-factor", type=float, default=argparse.SUPPRESS, metavar="X",
                        help=f"rel_l2 moved when it grew or shrank by more than X times (default {MoveFactors.rel_l2:g})")
    parser.add_argument("--latency-factor", type=float, default=argparse.SUPPRESS, metavar="X",
                        help=f"latency moved when the median grew or shrank by more than X times "
                             f"(default {MoveFactors.latency:g})")


def run_sweep_command(args: argparse.Namespace, argv: list[str]) -> int:
    from .. import cli, worker
    from ..report import check_writable

    given = vars(args)
    if "out" not in given:
        raise ConfigError("portproof sweep needs --out DIR: the folder its runs and matrix files go to",
                          cli_hint="--out DIR")
    with cli._holding_ctrl_c():  # a Ctrl-C while torch is imported takes effect after (see cli)
        worker.start()  # the fork server imports torch beside this process, as for check
        sweep = _sweep_config(args, argv)
    baseline = _load_baseline(sweep)
    from ..report.matrix import render_json
    from ..terminal import print_written
    from .display import SweepDisplay, print_summary, summary_line

    with _ray_connection(sweep):
        directory = check_writable(sweep.directory)
        from ..lockfile import output_lock
        from .run import run_sweep

        with output_lock(directory, sweep.check.command_line), SweepDisplay(sys.stderr, quiet=args.quiet) as display:
            try:
                result = run_sweep(sweep, display, baseline)
            except KeyboardInterrupt:
                raise KeyboardInterrupt(f"the checks that finished are in {directory / 'runs'}; the same command again "
                                        "checks only the rest") from None
            written = _write_matrix(result, directory)
    if args.json:
        sys.stdout.write(render_json(result))
        print_written(written, sys.stderr)
    elif args.quiet:
        print(summary_line(result), flush=True)
    else:
        print_summary(result, written)
    if sweep.baseline is not None:
        return EXIT_FAIL if result.regressions else EXIT_PASS
    return EXIT_PASS if result.all_passed else EXIT_FAIL


def _sweep_config(args: argparse.Namespace, argv: list[str]):
    from .. import cli
    from ..backends import registry
    from .selection import select_models

    given = vars(args)
    check = cli.config_from_args(args, argv)
    for option, low in (("limit", 1), ("workers", 1)):
        if option in given and given[option] < low:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least {low}, got {given[option]}")
    if "timeout_per_model" in given and not 0 < given["timeout_per_model"] <= threading.TIMEOUT_MAX:
        raise ConfigError(f"--timeout-per-model must be a number of seconds above 0 and at most "
                          f"{threading.TIMEOUT_MAX:.0f}, got {given['timeout_per_model']:g}")
    factors = _factors(given)
    if "ray" in given and "workers" in given:
        raise ConfigError("--workers and --ray exclude each other: on Ray, the cluster's resources decide how many "
                          "checks run at once; drop --workers")
    if check.targets is None:  # --target auto, chosen once here so that every model has the same columns
        check = replace(check, targets=registry.auto_targets()[0])
    if "ray" in given and any(spec.index is not None for spec in (check.reference, *check.targets) if spec.device != "cpu"):
        raise ConfigError("on Ray, give accelerator targets without a device index: Ray gives each task its device",
                          cli_hint="--target npu rather than --target npu:1")
    models = select_models(args.models, given.get("limit"))
    fields = {"workers": "workers", "timeout_per_model": "timeout_per_model_s",
              "force": "force", "ray": "ray_address", "baseline": "baseline"}
    return SweepConfig(models=models, check=check, directory=given["out"], factors=factors, models_spec=args.models,
                       **{field: given[option] for option, field in fields.items() if option in given})


def _factors(given: dict) -> MoveFactors:
    factors = MoveFactors(**{field: given[option] for option, field in (("rel_l2_factor", "rel_l2"),
                                                                         ("latency_factor", "latency")) if option in given})
    for name, value in (("--rel-l2-factor", factors.rel_l2), ("--latency-factor", factors.latency)):
        if not 1 < value < float("inf"):
            raise ConfigError(f"{name} must be a number above 1 (a factor of change), got {value}")
    return factors


def _load_baseline(sweep):
    if sweep.baseline is None:
        return None
    from ..report.matrix import load_matrix

    return load_matrix(sweep.baseline)


def _ray_connection(sweep):
    import contextlib

    if sweep.ray_address is None:
        return contextlib.nullcontext()
    from . import on_ray

    @contextlib.contextmanager
    def connected_with_resources():
        with on_ray.connected(sweep.ray_address) as ray:
            on_ray.check_resources(ray, sweep.accelerators(), sweep.check.threads or 1)
            yield

    return connected_with_resources()


def _write_matrix(result, directory: Path) -> list[Path]:
    from ..report import write_files
    from ..report.matrix import INDEX_HTML, MATRIX_CSV, MATRIX_JSON, render_csv, render_json
    from ..report.sweep_html import render

    return write_files({MATRIX_JSON: render_json(result).encode("utf-8"), MATRIX_CSV: render_csv(result).encode("utf-8"),
                        INDEX_HTML: render(result).encode("utf-8")}, directory)


def run_diff_command(args: argparse.Namespace) -> int:
    """`portproof diff A B`: each target of B against the same target of A."""
    from ..report.load import load_directory
    from ..results.sweep import cells_of
    from ..terminal import inert

    factors = _factors(vars(args))
    before = {cell.target: cell for cell in cells_of(load_directory(args.before))}
    after = cells_of(load_directory(args.after))
    changes = [(cell, compare_cell(before.get(cell.target), cell, factors)) for cell in after]
    gone = [target for target in before if target not in {cell.target for cell in after}]
    regressions = sum(change is not None and change.kind == "regression" for _, change in changes)
    if args.json:
        from ..report.summary_json import to_jsonable

        print(json.dumps(to_jsonable({"before": args.before, "after": args.after, "rel_l2_factor": factors.rel_l2,
                                      "latency_factor": factors.latency, "regressions": regressions,
                                      "targets": [{"target": cell.target, "before": before.get(cell.target),
                                                   "after": cell, "change": change} for cell, change in changes],
                                      "only_before": gone}), indent=2, ensure_ascii=False, allow_nan=False))
    else:
        for cell, change in changes:
            was = before.get(cell.target)
            print(inert(f"{cell.target}: {was.verdict if was else '-'} → {cell.verdict}"
                        f"{f' ({change.kind}: {change.words})' if change else ' (unchanged)'}"))
        for target in gone:
            print(inert(f"{target}: only in {args.before}"))
        print(f"{regressions} regression{'s' if regressions != 1 else ''} (factors: rel_l2 {factors.rel_l2:g}, "
              f"latency {factors.latency:g})")
    return EXIT_FAIL if regressions else EXIT_PASS
