"""Imported by the sides' fork server only (worker.PRELOAD): when its last client has gone it exits at once,
instead of spending a second of CPU tearing down torch, timm and onnxruntime while the next command runs.
(The sides forked from it end with os._exit too.)"""

import atexit
import os

atexit.register(os._exit, 0)
