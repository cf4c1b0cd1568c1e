"""Exceptions that the CLI turns into one line on stderr (exit 2, or 130 when interrupted)."""


class NCTInputError(ValueError):
    """Bad user input: the message names the problem and the fix."""


class NCTInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM during long work; the message says what was kept and where.

    Raised by long-running library code (training, sampling, simulation) after it has saved
    what can be resumed; the CLI prints the message on one line and exits with code 130.
    """


class OutputExistsError(NCTInputError, FileExistsError):
    """An output file exists and may not be replaced (no ``--overwrite``)."""
