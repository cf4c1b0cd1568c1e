"""The ``nct-md`` command: a thin layer over the Python API.

Each sub-command lives in its own module of this package and exposes ``add_parser(subparsers)``,
which registers the sub-command and sets ``func`` (called with the parsed arguments).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nct_md import __version__
from nct_md.errors import NCTInputError

#: Sub-command modules, in the order ``nct-md --help`` lists them.
COMMANDS = ("simulate", "train", "cvs", "report", "interpolate", "export", "metad", "sample",
            "harmonic_chain", "demo")


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
    """Run the CLI; returns the exit code (0 success, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (NCTInputError, FileNotFoundError, FileExistsError) as exc:
        print(f"nct-md {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
