"""Helpers of the ``nct-md`` commands: parameter names and flags, one-line errors, SIGTERM.

:func:`param_flags` and :func:`options` connect a command's parser to the library call it makes
(option names are the library's parameter names); :func:`flag_named` rewrites an error that
starts with a parameter name to start with its flag; :func:`one_line` puts an exception on one
line; :func:`sigterm_as_interrupt` makes SIGTERM clean up like Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator

from nct_md.errors import NCTInputError, NCTInterrupted


def param_flags(parser: argparse.ArgumentParser, *params: str) -> dict[str, str]:
    """Library parameter name -> flag of ``parser`` for ``params`` (default: every option)."""
    return {action.dest: action.option_strings[-1] for action in parser._actions
            if action.option_strings and action.dest != "help" and (not params
                                                                    or action.dest in params)}


def options(args: argparse.Namespace) -> dict:
    """The parsed options as keyword arguments of the library call."""
    return {k: v for k, v in vars(args).items() if k not in ("command", "func", "flags")}


def _raise_interrupted(signum: int, frame: object) -> None:
    raise NCTInterrupted(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into an exception while a command runs, so that it cleans up like Ctrl-C."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (OSErrors as 'reason: file')."""
    if isinstance(exc, OSError) and not isinstance(exc, NCTInputError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def flag_named(text: str, flags: dict[str, str]) -> str:
    """``text`` with a leading parameter name of ``flags`` replaced by its flag."""
    name, space, rest = text.partition(" ")
    return f"{flags[name]} {rest}" if space and name in flags else text
