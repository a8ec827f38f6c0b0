"""The one exception tree, grouped by what the user does about it. Each error stops the run (exit 2).

    PortproofError
    ├── UsageError                  bad input: fix the command, the files it names or the calling code
    │   ├── ConfigError             an option or spec that cannot be used
    │   ├── ModelNotFoundError      unknown model name, or a factory that cannot be imported
    │   ├── WeightsError            a checkpoint that cannot be found, read or loaded into the model
    │   ├── InputError              no usable inputs
    │   └── SummaryError            a saved summary.json (for `portproof report`) that cannot be read back
    ├── PlatformError               this machine lacks what the run needs
    │   ├── DeviceUnavailableError  a requested device or runtime is absent
    │   └── OutputError             the output directory cannot be written, or another run is writing to it
    └── RunError                    a side's run failed
        ├── ReferenceRunError       the reference raised, ran out of memory or timed out: nothing to compare with
        └── LayerPassError          the module-by-module comparison could not be made

Messages say what to do next in terms a Python caller can act on (settings, paths); `cli_hint` holds the
command-line wording of the same advice, which the CLI shows instead (`for_cli`). A mismatch between
reference and target is a result (FAIL), never an exception; a target that crashes while running is
recorded as that target's ERROR and the other targets go on. `first_line` and `describe` word any
exception in one line, the same way everywhere.
"""


class PortproofError(Exception):
    """Base class: the check could not run."""

    def __init__(self, message: str = "", *, cli_hint: str | None = None):
        super().__init__(message)
        self.cli_hint = cli_hint

    def for_cli(self) -> str:
        """The message with the command-line wording of its advice, when it has one."""
        return f"{self} ({self.cli_hint})" if self.cli_hint else str(self)


class UsageError(PortproofError):
    pass


class PlatformError(PortproofError):
    pass


class RunError(PortproofError):
    pass


class ConfigError(UsageError):
    pass


class ModelNotFoundError(UsageError):
    pass


class WeightsError(UsageError):
    pass


class InputError(UsageError):
    pass


class SummaryError(UsageError):
    pass


class DeviceUnavailableError(PlatformError):
    pass


class OutputError(PlatformError):
    pass


class ReferenceRunError(RunError):
    pass


class LayerPassError(RunError):
    pass


def first_line(error: BaseException) -> str:
    """The first line of an error's message ("" when it has none): driver errors carry pages of dump."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def describe(error: BaseException) -> str:
    """`Type: first line of the message`, or the type alone: how a failure is shown in one line."""
    text = first_line(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
