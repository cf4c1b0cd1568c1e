"""Exceptions that the CLI turns into one line on stderr (exit 2, or 130 when interrupted), and
the checks of numeric parameters that raise them (messages name the parameter)."""

import math
import numbers


class NCTInputError(ValueError):
    """Bad user input: the message names the problem and the fix."""


class NCTInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM during long work; the message says what was kept and where.

    Raised by long-running library code (training, sampling, simulation) after it has saved
    what can be resumed; the CLI prints the message on one line and exits with code 130.
    """


class OutputExistsError(NCTInputError, FileExistsError):
    """An output file exists and may not be replaced (no ``--overwrite``)."""


def check_integer(name: str, value: object, minimum: int = 1) -> None:
    """Raise NCTInputError naming ``name`` unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise NCTInputError(f"{name} must be {what}, got {value}")


def check_number(name: str, value: object, zero: bool = False) -> None:
    """Raise NCTInputError naming ``name`` unless ``value`` is a finite number > 0 (>= 0)."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not real or not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        shown = f"{value:g}" if real else repr(value)
        raise NCTInputError(f"{name} must be a {'non-negative' if zero else 'positive'} number, "
                            f"got {shown}")
