"""Which models a sweep checks (`--models`), and the folder each one's check writes to."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..errors import ConfigError

TIMM_PREFIX = "timm:"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def select_models(spec: str, limit: int | None = None) -> tuple[str, ...]:
    """The models `spec` names, in order, each once, at most `limit` of them: `timm:PATTERN[,PATTERN...]`
    (timm's own list_models filters), a file with one model per line (`#` starts a comment), or a comma
    list. An empty selection is a ConfigError."""
    spec = spec.strip()
    if spec.startswith(TIMM_PREFIX):
        import timm

        patterns = [p.strip() for p in spec[len(TIMM_PREFIX):].split(",") if p.strip()]
        names = timm.list_models(patterns) if patterns else []
        where = f"timm's registry has no model matching {spec[len(TIMM_PREFIX):]!r}"
    elif Path(spec).is_file():
        try:
            text = Path(spec).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read the models file {spec} ({getattr(error, 'strerror', None) or error})") from None
        names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        where = f"the models file {spec} names no model (only blank lines and # comments)"
    elif spec.endswith(".txt"):
        raise ConfigError(f"the models file {spec} does not exist; give a file with one model per line, a comma "
                          "list or timm:PATTERN", cli_hint="--models SPEC")
    else:
        names = [name.strip() for name in spec.split(",")]
        where = "--models names no model"
    selected = tuple(dict.fromkeys(name for name in names if name))[:limit]
    if not selected:
        raise ConfigError(f"nothing to sweep: {where}", cli_hint="--models FILE|NAME,NAME|timm:PATTERN")
    return selected


def run_folder(model: str) -> str:
    """The folder name of a model's check under runs/: the name itself when it is a plain file name, else
    its unsafe characters replaced and a short hash of the name added (two names never share a folder)."""
    if _PLAIN_NAME.fullmatch(model) and model not in (".", ".."):
        return model
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._")[:80]
    return f"{readable or 'model'}-{hashlib.sha256(model.encode('utf-8')).hexdigest()[:8]}"
