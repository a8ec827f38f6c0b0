"""Report writers: each renders a CheckResult to text and computes nothing. `write_reports` puts every
file in place atomically (temporary files, then renames), after everything has rendered: all of them
are replaced, or none."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path

from ..errors import OutputError
from ..results import CheckResult
from . import html, layers_files, log, markdown, summary_json

WRITTEN_BEFORE_INTERRUPT = "the reports had been written whole when the interrupt took effect"
# report.md and report.html (render_reports) are in the language of --lang; these are for scripts and stay English.
WRITERS = {"summary.json": summary_json.render, "accuracy_compare.log": log.render}
CAPTURED_OUTPUT_FILE = "runtime_output.log"  # what third-party code printed while the sides ran
# Every file a check may write (patterns, relative to its folder): what an earlier run left and this one
# does not write again is removed, so that a folder never holds files of two runs.
CHECK_FILES = (*WRITERS, "report.md", "report.html", "layers.csv", "layers.json", CAPTURED_OUTPUT_FILE,
               "tensors/*.safetensors")
TUNE_FILES = ("tune.json", "tune.csv", "report.md", "report.html")
# What any earlier run of check, rescue or tune left in an output folder: the next run's writing removes what
# it does not write again, so that the folder holds one run's files, never a check's summary beside a tune's
# report.
RUN_FILES = tuple(dict.fromkeys(CHECK_FILES + TUNE_FILES))


def check_writable(directory: str | Path) -> Path:
    """Create the directory if needed and prove a file can be written there, before any work is done."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".portproof-probe-"):
            pass
    except OSError as error:
        raise OutputError(f"cannot write to output directory {path} ({error.strerror or error}); choose another output directory",
                          cli_hint="--out DIR") from None
    return path


def render_reports(result: CheckResult, lang: str = "en", source: str = "this run") -> dict[str, bytes]:
    """report.md and report.html, for people, in `lang`; `source` says in report.html what they were made from."""
    return {"report.md": markdown.render(result, lang).encode("utf-8"),
            "report.html": html.render(result, lang, source).encode("utf-8")}


def write_files(contents: dict[str, bytes], directory: str | Path, replaces: tuple[str, ...] = ()) -> list[Path]:
    """All the files or none: each is first written whole to a temporary file beside it (a full disk or an
    unwritable folder fails here, before any previous file is touched), then all are renamed into place and
    the files of `replaces` (an earlier run's) that this set does not hold are removed, with Ctrl-C and
    SIGTERM held off for those few renames: the folder holds one run's files, never a mix."""
    targets = [Path(directory) / name for name in contents]
    staged: list[str] = []
    path = Path(directory)
    try:
        for path, data in zip(targets, contents.values()):
            staged.append(_stage(path, data))
        with _interrupts_deferred():
            for temporary, path in zip(staged, targets):
                os.replace(temporary, path)
            for stale in _stale_files(Path(directory), replaces, set(targets)):
                stale.unlink(missing_ok=True)
    except BaseException as error:
        for temporary in staged:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write {path} ({error.strerror or error}); previous files were left as they were") from None
        raise
    _sync_directory(Path(directory))
    return targets


def write_reports(result: CheckResult, directory: str | Path, lang: str = "en") -> list[Path]:
    return write_files(check_files(result, lang), Path(directory), replaces=RUN_FILES)


def check_files(result: CheckResult, lang: str = "en") -> dict[str, bytes]:
    """Every file of a check by name (relative to its folder), rendered: what write_reports writes."""
    contents = {name: render(result).encode("utf-8") for name, render in WRITERS.items()}
    contents.update(render_reports(result, lang))
    if layers_files.has_layers(result):
        contents.update({"layers.csv": layers_files.render_csv(result).encode("utf-8"),
                         "layers.json": layers_files.render_json(result).encode("utf-8")})
    if result.tensors:
        contents.update(_tensor_files(result.tensors))
    if result.captured_output:
        contents[CAPTURED_OUTPUT_FILE] = result.captured_output.encode("utf-8")
    return contents


def _stage(path: Path, data: bytes) -> str:
    """`data` whole and synced in a temporary file beside `path`; its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide reports from other users
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C or SIGTERM that comes while the body runs is noted, and acted on once the body is done.
    (Python runs signal handlers in the main thread only, and only handlers installed from Python can be
    swapped.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    deferrable = [number for number, handler in previous.items() if callable(handler)]
    caught: list[int] = []
    for number in deferrable:  # not ours to defer: SIG_IGN, SIG_DFL or a C handler
        signal.signal(number, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for number in deferrable:
            signal.signal(number, previous[number])
    for number in caught[:1]:
        if previous[number] is signal.default_int_handler:
            raise KeyboardInterrupt(WRITTEN_BEFORE_INTERRUPT)
        previous[number](number, None)


def _stale_files(directory: Path, patterns: tuple[str, ...], written: set[Path]) -> list[Path]:
    return [path for pattern in patterns for path in directory.glob(pattern) if path not in written and path.is_file()]


def _sync_directory(directory: Path) -> None:
    """Make the renames durable (POSIX; elsewhere there is nothing to open)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tensor_files(tensors: dict) -> dict[str, bytes]:
    from safetensors.torch import save

    return {f"tensors/{group}.safetensors": save({k: v.contiguous() for k, v in named.items()}) for group, named in tensors.items()}
