"""The bootstrap of the sides' fork server (worker.py): the one module it preloads. It imports, once, what
every side needs (torch through sides.py, timm, onnxruntime, each registered backend's module), each
import allowed to fail (a broken plugin is reported by its side, never fatal to the server), and makes the
server exit at once when its last client has gone, instead of spending a second of CPU tearing torch down
while the next command runs. Outside the fork server, importing it does nothing."""

import atexit
import contextlib
import importlib
import os
from importlib.metadata import entry_points

SERVER_MARK = "PORTPROOF_FORK_SERVER"  # set in the environment the fork server is started with


def _preload() -> None:
    backends = [point.value.partition(":")[0] for point in entry_points(group="portproof.backends")]
    for module in dict.fromkeys(("portproof.sides", "timm", "onnxruntime", *backends)):
        with contextlib.suppress(Exception):
            importlib.import_module(module)


if os.environ.get(SERVER_MARK) == str(os.getppid()):  # started by worker.start() of our parent
    atexit.register(os._exit, 0)
    _preload()
