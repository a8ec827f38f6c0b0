"""Report writers: each renders a CheckResult to text and computes nothing. `write_reports` puts every
file in place atomically (temporary file, then rename), after everything has rendered."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import OutputError
from ..result import CheckResult
from . import html, layers_files, log, markdown, markdown_zh, summary_json

WRITERS = {"summary.json": summary_json.render, "accuracy_compare.log": log.render, "report.md": markdown.render}
# report.md and report.html in the language of --lang; the other files are for scripts and stay English.
MARKDOWN = {"en": markdown.render, "zh": markdown_zh.render}


def check_writable(directory: str | Path) -> Path:
    """Create the directory if needed and prove a file can be written there, before any work is done."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".portproof-probe-"):
            pass
    except OSError as error:
        raise OutputError(f"cannot write to output directory {path} ({error.strerror or error}); choose another with --out") from None
    return path


def render_reports(result: CheckResult, lang: str = "en", source: str = "this run") -> dict[str, bytes]:
    """report.md and report.html, for people, in `lang`; `source` says in report.html what they were made from."""
    return {"report.md": MARKDOWN[lang](result).encode("utf-8"),
            "report.html": html.render(result, lang, source).encode("utf-8")}


def write_files(contents: dict[str, bytes], directory: str | Path) -> list[Path]:
    """Each file atomically, once every one has rendered."""
    written = []
    for name, data in contents.items():
        atomic_write(Path(directory) / name, data)
        written.append(Path(directory) / name)
    return written


def write_reports(result: CheckResult, directory: str | Path, lang: str = "en") -> list[Path]:
    directory = Path(directory)
    contents = {name: render(result).encode("utf-8") for name, render in WRITERS.items()}
    contents.update(render_reports(result, lang))
    if layers_files.has_layers(result):
        contents.update({"layers.csv": layers_files.render_csv(result).encode("utf-8"),
                         "layers.json": layers_files.render_json(result).encode("utf-8")})
    if result.tensors:
        contents.update(_tensor_files(result.tensors))
    written = []
    for name, data in contents.items():
        atomic_write(directory / name, data)
        written.append(directory / name)
    return written


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide reports from other users
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write {path} ({error.strerror or error}); previous files were left as they were") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tensor_files(tensors: dict) -> dict[str, bytes]:
    from safetensors.torch import save

    return {f"tensors/{group}.safetensors": save({k: v.contiguous() for k, v in named.items()}) for group, named in tensors.items()}
