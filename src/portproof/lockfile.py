"""One run at a time per output directory: `.portproof.lock`, held with an OS lock for the whole run.

The lock is the kernel's (`flock` on POSIX, `msvcrt.locking` on Windows), so it dies with its process: a
run that was killed leaves a file behind but never a lock, and the next run takes it over. The file records
who holds it (pid, host, start time, command), which is what a refused run prints.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError

LOCK_FILE = ".portproof.lock"


@contextmanager
def output_lock(directory: str | Path, command: str = "") -> Iterator[Path]:
    """Hold DIRECTORY/.portproof.lock for the duration; OutputError at once when another run holds it."""
    path = Path(directory) / LOCK_FILE
    descriptor = _acquire(path)
    try:
        try:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, _holder(command).encode("utf-8"))  # a fresh descriptor writes at offset 0
        except OSError as error:  # a full disk, typically: nothing of this run could be written either
            raise OutputError(f"cannot write the lock file {path} ({error.strerror or error}); choose another output directory", cli_hint="--out DIR") from None
        yield path
    finally:
        if sys.platform != "win32":
            path.unlink(missing_ok=True)  # still locked here, so nobody else holds this file
        os.close(descriptor)  # releases the lock


def _acquire(path: Path, attempts: int = 10) -> int:
    for _ in range(attempts):
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputError(f"cannot create the lock file {path} ({error.strerror or error}); choose another output directory", cli_hint="--out DIR") from None
        if not _try_lock(descriptor):
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise OutputError(
                f"another portproof run ({holder}) is writing to {path.parent}; wait for it to end or choose another output "
                f"directory (the lock is released when that process ends, even if it is killed)", cli_hint="--out DIR"
            )
        # The previous holder may have removed the file between our open and our lock: then we hold a lock
        # on a file nobody else can see, and must start again on the file that is there now.
        try:
            if os.fstat(descriptor).st_ino == os.stat(path).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)
    raise OutputError(f"cannot take the lock {path}: other runs keep replacing it; choose another output directory",
                      cli_hint="--out DIR")


def _try_lock(descriptor: int) -> bool:
    """True when this process now holds the lock, False when another does. A file system that has no locks
    at all (some network mounts) cannot guard the directory; the run goes on as it would without this."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: no locking here
        return True


def _holder(command: str) -> str:
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"pid {os.getpid()} on {socket.gethostname()}, started {started}" + (f": {command}" if command else "") + "\n"


def _read_holder(descriptor: int) -> str:
    try:
        line = os.read(descriptor, 4096).decode("utf-8", "replace").strip().splitlines()
    except OSError:
        line = []
    return line[0] if line else "pid unknown"
