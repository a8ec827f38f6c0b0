"""The command line: argv -> CheckConfig, human output, exit codes.

Exit codes: 0 every target passed, 1 a target failed its criteria (or raised), 2 the check could not
run, 130 interrupted, 143 terminated (SIGTERM). Only options the user gave are passed on; every default lives in config.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import traceback
from dataclasses import replace
from pathlib import Path

from . import __version__, criteria
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
from .errors import ConfigError, PortproofError, describe
from .lockfile import output_lock
from .report.i18n import LANGUAGES
from .results import RANDOM_WEIGHTS_BANNER, CheckResult
from .results.rescue import ALREADY_PASSES, RESCUED
from .terminal import CONTROL_CHARACTERS, inert

EXIT_PASS, EXIT_FAIL, EXIT_CANNOT_RUN, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
MAX_NUM_SAMPLES = 100_000
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed's range; it folds a negative seed onto a positive one
# The options that name things, as an error shows them, and what to give instead of an empty value.
NAMED_OPTIONS = {
    "model": ("the model name", f"a timm model name, hf:DIR, or none for {ModelSpec.name}"),
    "family": ("--family", "a model family's name (portproof env lists them)"),
    "weights": ("--weights", "auto, random or the path of a checkpoint"),
    "weights_cache": ("--weights-cache", "a cache directory"),
    "inputs": ("--inputs", "images, random, a folder of images or pkg.module:make_inputs"),
    "labels": ("--labels", "a CSV file of filename,label"),
    "out": ("--out", f"a directory, or leave it out for {OutputSpec.directory}"),
    "directory": ("DIR", "the folder portproof check wrote"),
}


class Terminated(BaseException):
    """SIGTERM (what `timeout`, CI cancellation and `docker stop` send), raised where the program is, so that
    it unwinds as Ctrl-C does: a side's process stopped, no temporary file left, exit 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


def run() -> None:
    """The `portproof` command: main(), then exit without tearing down torch and the runtimes (a second of
    CPU, after every file has been written, synced and the lock released)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    from . import worker

    worker.stop()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    as_json = _asks_for_json(argv)  # until argparse has read the options (its own errors come first)
    try:
        args = _parse(argv, as_json)
        as_json = bool(getattr(args, "json", False))
        if args.command == "env":
            return print_constraints() if args.constraints else print_environment()
        if args.command == "report":
            return run_report_command(args)
        if args.command == "diff":
            from .sweep.command import run_diff_command

            return run_diff_command(args)
        if args.command == "sweep":
            from .sweep.command import run_sweep_command

            return run_sweep_command(args, argv)
        return run_check_command(args, argv)  # imports torch: a Ctrl-C from here on is handled below
    except PortproofError as error:
        return _stop(EXIT_CANNOT_RUN, f"error: {error.for_cli()}", as_json)
    except KeyboardInterrupt as interrupt:
        done = interrupt.args[0] if interrupt.args else ("no report was written; files already in the output "
                                                         "directory were left as they were")
        return _stop(EXIT_INTERRUPTED, f"interrupted; {done}", as_json)
    except Terminated:
        return _stop(EXIT_TERMINATED, "terminated (SIGTERM); the output directory holds one run's complete files, "
                     "this one's or the earlier ones", as_json)
    except Exception as error:  # a bug here or in a library: one line, and the traceback on request
        if os.environ.get("PORTPROOF_DEBUG"):
            raise
        where = traceback.extract_tb(error.__traceback__)[-1]
        return _stop(EXIT_CANNOT_RUN, f"internal error: {describe(error)} (at {Path(where.filename).name}:"
                     f"{where.lineno}); no report was written. Rerun with PORTPROOF_DEBUG=1 for the traceback, "
                     "and please report it", as_json)


def _stop(exit_code: int, message: str, as_json: bool) -> int:
    """`message` as one inert line on stderr; with --json also as a JSON error object on stdout, so that a
    caller parsing stdout always gets JSON."""
    print(f"portproof: {inert(message)}", file=sys.stderr, flush=True)
    if as_json:
        status = "INTERRUPTED" if exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED) else "ERROR"
        error = message.removeprefix("error: ")  # "internal error: ..." and "interrupted; ..." say what they are
        print(json.dumps({"status": status, "exit_code": exit_code, "error": error}), flush=True)
    return exit_code


def _asks_for_json(argv: list[str]) -> bool:
    """Whether --json (or an abbreviation argparse would take) is among the options, before any `--`."""
    options = argv[:argv.index("--")] if "--" in argv else argv
    return any(len(token) > 2 and "--json".startswith(token) for token in options)


def _parse(argv: list[str], as_json: bool) -> argparse.Namespace:
    """argparse's reading of argv. Its usage errors still exit 2 with one line (SystemExit, as argparse
    does), and with --json among the options also print the JSON error object."""
    try:
        return build_parser().parse_args(argv)
    except _UsageExit as usage:
        raise SystemExit(_stop(EXIT_CANNOT_RUN, usage.message, as_json)) from None


class _UsageExit(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in our one-line form (exit 2, as ours)."""

    def error(self, message: str):
        raise _UsageExit(f"error: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="portproof", description="Prove that a model port computes the same thing, and time it.")
    parser.add_argument("--version", action="version", version=f"portproof {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = commands.add_parser("check", help="compare a model on targets against a reference and write a report",
                                description="Compare a model on one or more targets against a reference, time both, "
                                            "and write summary.json, accuracy_compare.log, report.md and report.html.")
    env = commands.add_parser("env", help="show versions and which devices and backends are available")
    env.add_argument("--constraints", action="store_true",
                     help="print pip constraints holding torch (and torch_npu) at their installed versions, for "
                          "`pip install -c <(portproof env --constraints) ...`")
    report = commands.add_parser("report", help="re-render report.md and report.html from a saved summary.json",
                                 description="Re-render report.md and report.html from the summary.json (and layers.json) "
                                             "in DIR, without running the model.")
    report.add_argument("directory", metavar="DIR", help="a folder written by portproof check (holding summary.json)")
    report.add_argument("--lang", choices=LANGUAGES, help="language of report.md and report.html "
                                                         "(default: the one the check wrote them in)")
    layers = commands.add_parser("layers", help="find the first module where a target parts ways with the reference",
                                 description="Compare one target with the reference module by module (accumulated and "
                                             "local modes), without timing; writes layers.csv, layers.json and the reports.")
    rescue = commands.add_parser("rescue", help="find the fewest modules to keep in fp32 so that a low-precision "
                                                 "target passes",
                                 description="For a lower-precision target that fails, find a minimal set of modules "
                                             "that, kept in fp32 on the same device, make it pass (starting from the "
                                             "layer pass's ranking); writes the check's files with the failing and the "
                                             "rescued target, and the rescue in summary.json and the reports.")
    tune = commands.add_parser("tune", help="find the fastest configuration on a device that still passes",
                               description="Judge and time a grid of configurations (backend x dtype, then CPU thread "
                                           "counts) against one reference run, and report the fastest passing one per "
                                           "batch size, every configuration (skipped ones with the reason) and the "
                                           "accuracy/latency Pareto front; writes tune.json, tune.csv, report.md and "
                                           "report.html.")
    for command in (check, layers, rescue, tune):
        _add_run_options(command)
    group = tune.add_argument_group("tune")
    S = argparse.SUPPRESS
    group.add_argument("--device", default=S, metavar="DEV", help="the device to tune on: cpu, cuda, npu, ... "
                                                                   "(default cpu)")
    group.add_argument("--batch-sizes", default=S, metavar="N,N", help="batch sizes, each tuned apart (default 1)")
    group.add_argument("--budget", type=float, default=S, metavar="S",
                       help="seconds for the whole tune: cheap configurations first, the rest skipped for time")
    group.add_argument("--rescue", action="store_true", default=S,
                       help="add a precision rescue of each failing low-precision configuration (see portproof rescue)")
    group.add_argument("--backends", default=S, metavar="A,B", help="only these backends (default: every one registered)")
    group.add_argument("--dtypes", default=S, metavar="A,B", help="only these dtypes (default: every one a backend takes)")
    group.add_argument("--thread-counts", default=S, metavar="N,N",
                       help="CPU thread counts to try on the fastest passing configurations (default: 1 and half the "
                            "current count)")
    from .sweep.command import add_commands

    add_commands(commands, _add_run_options)
    return parser


def _add_run_options(command: argparse.ArgumentParser, sweep: bool = False) -> None:
    """The options of `check` and `layers`; of `sweep` too, whose models come from --models and whose --out
    is the sweep's folder."""
    # SUPPRESS: an option the user did not give is absent, and the dataclass default applies.
    S = argparse.SUPPRESS
    if not sweep:
        command.add_argument("model", nargs="?", default=S,
                             help="timm name, with or without tag or timm/ or hf-hub: prefix; hf:DIR or hf:OWNER/NAME "
                                  "for a Hugging Face transformers model; or pkg.module:factory for a model of your own "
                                  f"(default {ModelSpec.name})")
    command.add_argument("--family", default=S, metavar="NAME",
                         help="the model family that reads the name (timm, transformers, python); by default the "
                              "one whose spelling the name has")
    group = command.add_argument_group("weights")
    group.add_argument("--weights", default=S, metavar="auto|PATH|random",
                       help="auto (default) searches the caches then the hub; PATH is a checkpoint file or directory")
    group.add_argument("--weights-cache", action="append", default=S, metavar="DIR",
                       help="a ModelScope-style cache root to search first (repeatable)")
    group.add_argument("--offline", action="store_true", default=S, help="never download weights")
    group.add_argument("--require-pretrained", action="store_true", default=S,
                       help="fail (exit 2) instead of falling back to random weights")
    group.add_argument("--allow-partial-weights", action="store_true", default=S,
                       help="load a checkpoint with missing or unexpected keys (recorded in the summary)")
    group.add_argument("--allow-nonfinite-weights", action="store_true", default=S,
                       help="load a checkpoint holding NaN or Inf values (recorded in the summary)")
    group.add_argument("--allow-nonfloat-weights", action="store_true", default=S,
                       help="load integer or quantised tensors into floating-point parameters, dequantised or cast "
                            "(recorded in the summary)")
    group.add_argument("--accept-partial-as-pretrained", action="store_true", default=S,
                       help="count a partial checkpoint that supplies under half of the parameters as pretrained")
    group.add_argument("--trust-pickle", action="store_true", default=S,
                       help="unpickle a .bin/.pth/.pt checkpoint in full when safe loading refuses it; unpickling "
                            "can run any code, so only for files you trust (recorded in the summary)")
    group = command.add_argument_group("inputs")
    group.add_argument("--inputs", default=S, metavar="images|random|DIR|FILE|pkg.module:make_inputs",
                       help="the bundled samples (default: photos; sentences for a text model), seeded random "
                            "inputs, a folder of your images (of WAV files for an audio model), a text file with "
                            "one sentence per line (text models), or a callable make_inputs(num_samples, seed) "
                            "returning {name: tensor}")
    group.add_argument("--labels", default=S, metavar="FILE",
                       help="a CSV of filename,label for the flat folder of --inputs (a label is a class index or an "
                            "ImageNet synset id); a folder with one sub-folder per class is labelled without it")
    group.add_argument("--num-samples", type=int, default=S,
                       help=f"number of inputs compared tensor by tensor (default {InputSpec.num_samples}); task "
                            "accuracy covers every labelled image")
    group.add_argument("--batch-size", type=int, default=S, help=f"batch size for comparison and latency (default {InputSpec.batch_size})")
    group.add_argument("--seed", type=int, default=S, help=f"seed for random inputs and random weights (default {InputSpec.seed})")
    group.add_argument("--threads", type=int, default=S, metavar="N",
                       help="torch's CPU thread count on every side (default: torch's own, the core count)")
    group = command.add_argument_group("reference and targets")
    group.add_argument("--reference", default=S, metavar="SPEC", help=f"[backend@]device[:index][/dtype] (default {TargetSpec().label})")
    group.add_argument("--target", action="append", default=S, metavar="SPEC",
                       help="repeatable; e.g. npu, npu:0/fp16, cuda/amp-bf16, onnxruntime@cpu, compile@cpu, "
                            "compile@cuda/bf16+mode=max-autotune, cpu/bf16+fp32=head (README: Target specs); "
                            "auto (default) = every accelerator present")
    group.add_argument("--no-fp64-reference", action="store_true", default=S,
                       help="skip the float64 CPU run that measures the noise floor")
    group.add_argument("--target-timeout", type=float, default=S, metavar="S",
                       help="seconds a target may take to run and be timed before it ends as ERROR: timed out "
                            f"(default {CheckConfig.target_timeout_s:g}); also bounds the reference")
    group.add_argument("--in-process", action="store_true", default=S,
                       help="run every side in this process instead of a child process each: no --target-timeout, "
                            "a crash ends the check, timings only as faithful as the calling thread (for debugging)")
    group.add_argument("--layers", action="store_true", default=S,
                       help="also compare every module (accumulated and local modes) and name the first that diverges")
    group = command.add_argument_group("criteria")
    group.add_argument("--criteria", action="append", default=S, metavar="NAME",
                       help="judge by this criterion (repeatable; the first decides the exit code): "
                            f"{', '.join(criteria.registered())} (default {Criteria.presets[0]}); see README, Criteria")
    group.add_argument("--atol", type=float, default=S,
                       help="absolute tolerance of allclose and polygraphy (default: torch.testing's for the dtype, "
                            "and 1e-5)")
    group.add_argument("--rtol", type=float, default=S,
                       help="relative tolerance of allclose and polygraphy (default: torch.testing's for the dtype, "
                            "and 1e-5)")
    group.add_argument("--mlperf-ratio", type=float, default=S,
                       help=f"share of the reference's top-1 accuracy a target must keep under mlperf "
                            f"(default {Criteria.mlperf_ratio:g}; 0.999 for the strict variant)")
    group.add_argument("--min-cosine", type=float, default=S, help=f"lowest passing cosine similarity (default {Criteria.min_cosine:g})")
    group.add_argument("--max-rel-l2", type=float, default=S, help=f"highest passing relative L2 error (default {Criteria.max_rel_l2:g})")
    group = command.add_argument_group("latency")
    group.add_argument("--warmup", type=int, default=S, help=f"untimed runs before timing (default {TimingSpec.warmup})")
    group.add_argument("--iters", type=int, default=S, help=f"timed runs (default {TimingSpec.iters})")
    group.add_argument("--no-bench", action="store_true", default=S, help="skip the latency measurement")
    group = command.add_argument_group("output")
    group.add_argument("--out", default=S, metavar="DIR",
                       help="the sweep's folder (required): runs/<model>/, matrix.csv, matrix.json, index.html" if sweep
                       else f"output directory (default {OutputSpec.directory})")
    group.add_argument("--save-tensors", action="store_true", default=S,
                       help="also write inputs and outputs as safetensors under "
                            f"{'DIR/runs/<model>' if sweep else 'DIR'}/tensors/")
    group.add_argument("--lang", choices=LANGUAGES, default=S,
                       help=f"language of report.md and report.html (default {OutputSpec.lang})")
    shown = group.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true",
                       help=f"print only the {'summary' if sweep else 'verdict'} line (no progress, no table)")
    shown.add_argument("--json", action="store_true",
                       help=f"print {'matrix' if sweep else 'summary'}.json to stdout instead of the table")


def config_from_args(args: argparse.Namespace, argv: list[str]) -> CheckConfig:
    given = vars(args)
    _check_names(given)
    _check_ranges(given)
    seed = {"seed": given["seed"]} if "seed" in given else {}
    weights = WeightsSpec(**_pick(given, weights="source", weights_cache="cache_dirs", offline="offline",
                                  require_pretrained="require_pretrained", allow_partial_weights="allow_partial",
                                  allow_nonfinite_weights="allow_nonfinite", trust_pickle="trust_pickle",
                                  allow_nonfloat_weights="allow_nonfloat",
                                  accept_partial_as_pretrained="accept_partial_as_pretrained"), **seed)
    if weights.source == "random" and weights.require_pretrained:
        raise ConfigError("--weights random and --require-pretrained contradict each other; drop one of them")
    if isinstance(weights.cache_dirs, list):
        weights = replace(weights, cache_dirs=tuple(weights.cache_dirs))
    inputs = InputSpec(**_pick(given, inputs="source", labels="labels", num_samples="num_samples",
                               batch_size="batch_size"), **seed)
    if inputs.labels is not None and inputs.source in ("images", "random"):
        raise ConfigError("--labels names the classes of your images: give their folder as --inputs DIR too")
    if inputs.batch_size > inputs.num_samples:
        raise ConfigError(f"--batch-size {inputs.batch_size} is larger than the {inputs.num_samples} samples; "
                          "lower it or raise --num-samples")
    timing = TimingSpec(**_pick(given, warmup="warmup", iters="iters"))
    layers_command = args.command == "layers"
    if given.get("no_bench") or layers_command:
        timing = replace(timing, enabled=False)
    targets = given.get("target")
    if targets is not None:
        targets = None if set(targets) == {"auto"} else tuple(parse_target(t) for t in targets if t != "auto")
    if layers_command and targets is not None and len(targets) != 1:
        raise ConfigError("portproof layers compares one target at a time: give a single --target")
    if args.command == "rescue":
        _check_rescue_target(targets)
    if args.command == "tune" and (targets is not None or given.get("layers")):
        raise ConfigError("portproof tune chooses the targets itself (--device, --backends, --dtypes); drop --target "
                          "and --layers, or use portproof check")
    if args.command == "tune":
        _check_tune_options(given)
    config = CheckConfig(
        model=ModelSpec(**_pick(given, model="name", family="family")),
        weights=weights,
        inputs=inputs,
        criteria=Criteria(**_pick(given, min_cosine="min_cosine", max_rel_l2="max_rel_l2", atol="atol", rtol="rtol",
                                  mlperf_ratio="mlperf_ratio"),
                          **({"presets": tuple(given["criteria"])} if "criteria" in given else {})),
        timing=timing,
        output=OutputSpec(**_pick(given, out="directory", save_tensors="save_tensors", lang="lang")),
        targets=targets,
        fp64_reference=not given.get("no_fp64_reference", False),
        layers=layers_command or given.get("layers", False),
        single_target=layers_command,
        command_line=shlex.join(["portproof", *argv]),
        isolation="none" if given.get("in_process") else CheckConfig.isolation,
        **_pick(given, target_timeout="target_timeout_s", threads="threads"),
    )
    if "reference" in given:
        config = replace(config, reference=parse_target(given["reference"]))
    criteria.require(config.criteria)
    _check_devices(config)
    return config


def _check_tune_options(given: dict) -> None:
    from .backends import registry

    if "budget" in given and not given["budget"] > 0:
        raise ConfigError(f"--budget must be a positive number of seconds, got {given['budget']}")
    device = given.get("device", "cpu")
    if device not in registry.devices():
        raise ConfigError(f"--device {device!r}: choose one of {', '.join(registry.devices())}")
    for option, known in (("backends", registry.backends()), ("dtypes", registry.dtypes())):
        unknown = [name for name in (_names(given, option) or ()) if name not in known]
        if unknown:
            raise ConfigError(f"--{option}: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    _numbers(given, "batch_sizes", None)
    _numbers(given, "thread_counts", None)


def _check_rescue_target(targets: tuple[TargetSpec, ...] | None) -> None:
    from .backends import registry

    if targets is None or len(targets) != 1 or targets[0].dtype == "fp32":
        raise ConfigError("portproof rescue takes one lower-precision target: give a single --target with a dtype "
                          "below fp32, e.g. --target cpu/bf16")
    if not registry.info(targets[0].backend).keeps_fp32:
        keeping = ", ".join(name for name, info in registry.backends().items() if info.keeps_fp32)
        raise ConfigError(f"portproof rescue keeps torch modules in fp32, which {targets[0].backend} cannot do (it runs "
                          f"its own graph); rescue the same dtype on {keeping}, e.g. --target cpu/{targets[0].dtype}")


def _check_devices(config: CheckConfig) -> None:
    """An absent device or device index (cuda:7 on a one-GPU machine, cpu:1) stops the check here, before
    the output folder is made and the model loaded."""
    from .backends import registry
    from .backends.base import check_device

    for spec in (config.reference, *(config.targets or ())):
        registry.require(spec)
        if spec.device == "cpu":
            check_device("cpu", spec.index)  # whichever backend runs there: cpu:1 names nothing


def run_check_command(args: argparse.Namespace, argv: list[str]) -> int:
    with _holding_ctrl_c():  # start-up: imports of torch and numpy that a Ctrl-C must not break halfway
        if not getattr(args, "in_process", False):
            from . import worker

            # the sides' fork server imports torch while this process does the same (and checks the options;
            # on a refused option run() stops the server at once)
            worker.start()
        from .session import run_check
        from .report import check_writable, write_reports
        from .terminal import ProgressDisplay

        config = config_from_args(args, argv)

    out_dir = check_writable(config.output.directory)
    if args.command == "tune":
        return run_tune(args, config, out_dir)
    with output_lock(out_dir, config.command_line), ProgressDisplay(sys.stderr, quiet=args.quiet) as progress:
        result = run_rescue(config, progress) if args.command == "rescue" else run_check(config, progress=progress)
        progress("writing the reports")
        written = write_reports(result, out_dir, config.output.lang)
    print_summary(result, written, quiet=args.quiet, as_json=args.json)
    if result.rescue is not None:
        return EXIT_PASS if result.rescue.outcome in (RESCUED, ALREADY_PASSES) else EXIT_FAIL
    return EXIT_PASS if result.all_passed else EXIT_FAIL


def run_tune(args: argparse.Namespace, config: CheckConfig, out_dir: Path) -> int:
    """`portproof tune`: the grid on one device; exit 0 when some configuration passed at every batch size."""
    from .report import RUN_FILES, write_files
    from .report.tune_files import render_files, summary_lines
    from .terminal import ProgressDisplay, print_tune
    from .tune import tune

    given = vars(args)
    with output_lock(out_dir, config.command_line), ProgressDisplay(sys.stderr, quiet=args.quiet) as progress:
        result = tune(config, given.get("device", "cpu"), _numbers(given, "batch_sizes", (1,)), given.get("budget"),
                      _names(given, "backends"), _names(given, "dtypes"), _numbers(given, "thread_counts", None),
                      bool(given.get("rescue")), progress)
        progress("writing the reports")
        written = write_files(render_files(result), out_dir, replaces=RUN_FILES)
    if args.json:
        print((out_dir / "tune.json").read_text(), end="")
    else:
        print_tune(result, summary_lines(result), written, quiet=args.quiet)
    return EXIT_PASS if len(result.fastest_passing) == len(result.batch_sizes) else EXIT_FAIL


def _numbers(given: dict, option: str, default):
    if option not in given:
        return default
    try:
        values = tuple(int(v) for v in given[option].split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ConfigError(f"--{option.replace('_', '-')} takes positive integers separated by commas, e.g. 1,8; "
                          f"got {given[option]!r}")
    return tuple(dict.fromkeys(values))


def _names(given: dict, option: str) -> tuple[str, ...] | None:
    if option not in given:
        return None
    names = tuple(v.strip() for v in given[option].split(",") if v.strip())
    if not names:
        raise ConfigError(f"--{option} takes names separated by commas, e.g. eager,onnxruntime")
    return names


def run_rescue(config: CheckConfig, progress) -> CheckResult:
    """`portproof rescue`: the check of the failing target and of its rescue, with what the rescue found."""
    from .rescue import rescue
    from .session import Session

    with Session(config, progress) as session:
        found = rescue(session, session.targets[0], progress)
        return replace(session.result(), rescue=found)


@contextlib.contextmanager
def _holding_ctrl_c():
    """Ctrl-C during the block takes effect when it ends (a KeyboardInterrupt, handled by main). Meant for
    importing torch: a KeyboardInterrupt raised inside that import is swallowed by torch's C++ while numpy
    is half-loaded, and the run then goes on broken or fails with "cannot load module more than once"."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # only the main thread sets handlers; an ignored Ctrl-C stays ignored
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


def run_report_command(args: argparse.Namespace) -> int:
    """`portproof report DIR`: report.md and report.html again, from the saved summary, in --lang."""
    _check_names(vars(args))
    from .report import check_writable, render_reports, write_files
    from .report.load import SUMMARY_FILE, load_directory

    result = load_directory(args.directory)
    directory = check_writable(args.directory)
    with output_lock(directory, shlex.join(["portproof", "report", args.directory])):
        lang = args.lang or result.config.output.lang
        written = write_files(render_reports(result, lang, source=str(directory / SUMMARY_FILE)), directory)
    print_summary(result, written)
    return EXIT_PASS


def print_summary(result: CheckResult, written, quiet: bool = False, as_json: bool = False) -> None:
    """stdout: the verdict line alone (quiet), summary.json (as_json), or the summary table and the files."""
    from . import terminal
    from .report import summary_json

    if quiet:
        print(terminal.verdict_line(result), flush=True)
    elif as_json:
        if result.random_weights:
            print(f"WARNING: {RANDOM_WEIGHTS_BANNER}", file=sys.stderr)
        sys.stdout.write(summary_json.render(result))
        sys.stdout.flush()
        terminal.print_written(written, sys.stderr)
    else:
        terminal.print_summary(result, written)


def print_environment() -> int:
    from . import torch_pairing
    from .backends.registry import availability
    from .environment import collect

    for key, value in collect().items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v) or "none"
        print(f"{key}: {value}")
    for name, state in availability():
        print(f"{name}: {state}")
    try:
        from .models import families

        print(f"model families: {', '.join(family.name for family in families())}")
    except PortproofError as error:  # a broken family plugin is named, and env still answers
        print(f"model families: {error}")
    for warning in torch_pairing.pairing_warnings(torch_pairing.read_installed()):
        print(f"WARNING: {warning}", file=sys.stderr)
    return EXIT_PASS


def print_constraints() -> int:
    from . import torch_pairing

    lines = torch_pairing.constraint_lines(torch_pairing.read_installed())
    if not lines:
        raise PortproofError("pip does not know the installed torch (it has no package metadata), so no constraint "
                             "can hold it; install by hand with care not to replace it")
    print("\n".join(lines))
    return EXIT_PASS


def _pick(given: dict, **names: str) -> dict:
    """Map the options the user gave (argparse names) onto dataclass field names."""
    return {field: given[option] for option, field in names.items() if option in given}


def _check_ranges(given: dict) -> None:
    for option, low in (("num_samples", 1), ("batch_size", 1), ("warmup", 0), ("iters", 1), ("threads", 1)):
        if option in given and given[option] < low:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least {low}, got {given[option]}")
    if given.get("num_samples", 0) > MAX_NUM_SAMPLES:
        raise ConfigError(f"--num-samples must be at most {MAX_NUM_SAMPLES:,}, got {given['num_samples']:,}: every "
                          "sample and every side's outputs for it are held in memory at once")
    if "seed" in given and not 0 <= given["seed"] <= MAX_SEED:
        raise ConfigError(f"--seed must be between 0 and 2**64 - 1 (what torch's generator takes), got {given['seed']}")
    for option in ("min_cosine", "max_rel_l2"):
        if option in given and not 0.0 <= given[option] <= 1.0:
            raise ConfigError(f"--{option.replace('_', '-')} must be between 0 and 1, got {given[option]}")
    for option in ("atol", "rtol"):
        if option in given and not 0.0 <= given[option] < float("inf"):
            raise ConfigError(f"--{option} must be a number of at least 0, got {given[option]}")
    if "mlperf_ratio" in given and not 0.0 < given["mlperf_ratio"] <= 1.0:
        raise ConfigError(f"--mlperf-ratio must be above 0 and at most 1, got {given['mlperf_ratio']}")
    if "target_timeout" in given and not 0.0 < given["target_timeout"] < float("inf"):
        raise ConfigError(f"--target-timeout must be a number of seconds above 0, got {given['target_timeout']}")
    if given.get("target_timeout", 0) > threading.TIMEOUT_MAX:
        raise ConfigError(f"--target-timeout must be at most {threading.TIMEOUT_MAX:.0f} seconds (the longest wait "
                          f"this platform accepts), got {given['target_timeout']:g}")


def _check_names(given: dict) -> None:
    """No model name or path is empty or holds a control character (an escape sequence would drive the
    terminal, and the value reaches summary.json and the reports): refuse those before any work."""
    for option, (shown, expected) in NAMED_OPTIONS.items():
        values = given.get(option, [])
        for value in values if isinstance(values, list) else [values]:
            if not value.strip():
                raise ConfigError(f"{shown} is empty; give {expected}")
            if CONTROL_CHARACTERS.search(value):
                raise ConfigError(f"{shown} '{inert(value)}' holds a control character, which no model or file "
                                  "name needs; check the quoting")
