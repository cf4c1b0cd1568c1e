"""Exceptions that the CLI turns into one line on stderr and exit code 2."""


class NCTInputError(ValueError):
    """Bad user input: the message names the problem and the fix."""
