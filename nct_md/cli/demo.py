"""``nct-md demo``: the main job end to end on the shipped alanine-dipeptide data.

Trains a heavy-atom model on four of the six shipped 300 K trajectories, writes the CVs of the
two held-out ones (one started in C7eq, one in C7ax) and reports them against TICA and Phi/Psi.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train -> cvs -> report on the shipped alanine-dipeptide data",
        description="Train on four shipped trajectories, then write CVs and a report for the "
                    "two held-out ones into OUT (model.pt, cvs.csv, report/). The data is "
                    "found in --data, else in the folder named by NCT_MD_DATA, else where a "
                    "wheel installs it (<prefix>/share/nct-md/data).")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="the shipped data folder (the repository's data/)")
    parser.add_argument("--out", type=Path, default=Path("demo-output"),
                        help="output folder (default demo-output; its files are replaced)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: that of nct-md train)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from nct_md.demo import run_demo

    run_demo(args.data, args.out, epochs=args.epochs)
