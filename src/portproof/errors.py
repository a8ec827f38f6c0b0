"""The one exception tree. Each error stops the run (exit 2) and its message says what to do next.

    PortproofError
    ├── ConfigError             an option or spec that cannot be used
    ├── ModelNotFoundError      unknown model name
    ├── WeightsError            a checkpoint that cannot be found, read or loaded into the model
    ├── InputError              no usable input images
    ├── DeviceUnavailableError  a requested device or runtime is absent
    ├── OutputError             the output directory cannot be written, or another run is writing to it
    ├── ReferenceRunError       the reference raised, ran out of memory or timed out: nothing to compare with
    └── SummaryError            a saved summary.json (for `portproof report`) that cannot be read back

A mismatch between reference and target is a result (FAIL), never an exception; a target that crashes
while running is recorded as that target's ERROR and the other targets go on. `first_line` and
`describe` word any exception in one line, the same way everywhere.
"""


class PortproofError(Exception):
    """Base class: the check could not run."""


class ConfigError(PortproofError):
    pass


class ModelNotFoundError(PortproofError):
    pass


class WeightsError(PortproofError):
    pass


class InputError(PortproofError):
    pass


class DeviceUnavailableError(PortproofError):
    pass


class OutputError(PortproofError):
    pass


class ReferenceRunError(PortproofError):
    pass


class SummaryError(PortproofError):
    pass


def first_line(error: BaseException) -> str:
    """The first line of an error's message ("" when it has none): driver errors carry pages of dump."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def describe(error: BaseException) -> str:
    """`Type: first line of the message`, or the type alone: how a failure is shown in one line."""
    text = first_line(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
