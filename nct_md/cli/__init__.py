"""The ``nct-md`` command: a thin layer over the Python API.

Each sub-command lives in its own module of this package and exposes ``add_parser(subparsers)``,
which registers the sub-command and sets ``func`` (called with the parsed arguments): it parses
arguments and calls one library function, imported inside ``func`` so that ``nct-md --help``
imports neither torch nor OpenMM. Option names are the library's parameter names; a sub-command
may set ``flags`` (:func:`~nct_md.cli.plumbing.param_flags`) so that an error naming a
parameter names its flag.

``main`` turns a user's mistake (:class:`~nct_md.errors.NCTInputError`, or an operating-system
error such as a missing or unwritable file) into one line on stderr and exit code 2, and Ctrl-C
or SIGTERM into one line and exit code 130; outputs are written atomically, so nothing
half-written is left behind.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nct_md import __version__
from nct_md.cli.plumbing import flag_named, one_line, sigterm_as_interrupt
from nct_md.errors import NCTInputError, NCTInterrupted

#: Sub-command modules, in the order ``nct-md --help`` lists them.
COMMANDS = ("simulate", "train", "cvs", "report", "interpolate", "export", "metad", "explore",
            "sample", "harmonic_chain", "demo")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``nct-md`` parser with every sub-command registered."""
    parser = _Parser(prog="nct-md", description="Neural canonical transformations for MD.")
    parser.add_argument("--version", action="version", version=f"nct-md {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"nct_md.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 bad input, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():
            args.func(args)
    except (NCTInputError, OSError) as exc:
        text = one_line(exc)
        if isinstance(exc, NCTInputError):
            text = flag_named(text, getattr(args, "flags", {}))
        print(f"nct-md {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = one_line(exc) if isinstance(exc, NCTInterrupted) else "interrupted"
        print(f"nct-md {args.command}: {what}", file=sys.stderr)
        return 130
    return 0
