"""``nct-md demo``: the main job end to end on the shipped alanine-dipeptide data.

Trains a heavy-atom model on four of the six shipped 300 K trajectories, writes the CVs of the
two held-out ones (one started in C7eq, one in C7ax) and reports them against TICA and Phi/Psi.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nct_md.cli import cvs as cvs_command
from nct_md.cli import report as report_command
from nct_md.cli import train as train_command

DATA = Path(__file__).resolve().parents[2] / "data" / "alanine-dipeptide-300K"
HELD_OUT = ("phi-neg-c7eq-2.h5", "phi-pos-c7ax-2.h5")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train -> cvs -> report on the shipped alanine-dipeptide data",
        description="Train on four shipped trajectories, then write CVs and a report for the "
                    "two held-out ones into OUT (model.pt, cvs.csv, report/).")
    parser.add_argument("--out", type=Path, default=Path("demo-output"),
                        help="output folder (default demo-output; its files are replaced)")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    parser.set_defaults(func=run)


def _call(module, argv: list[str]) -> None:
    args = argparse.ArgumentParser()
    sub = args.add_subparsers()
    module.add_parser(sub)
    parsed = args.parse_args(argv)
    parsed.func(parsed)


def run(args: argparse.Namespace) -> None:
    from nct_md.errors import NCTInputError

    files = sorted(DATA.glob("*.h5"))
    held = [f for f in files if f.name in HELD_OUT]
    train = [f for f in files if f.name not in HELD_OUT]
    if len(held) != 2 or len(train) < 2:
        raise NCTInputError(f"shipped data missing under {DATA}; restore data/ from the repo")
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.out / "model.pt"
    start = time.perf_counter()
    print(f"[1/3] nct-md train ({len(train)} trajectories, heavy atoms)")
    _call(train_command, ["train", *map(str, train), "--epochs", str(args.epochs),
                          "--couplings", "12", "--hidden", "128", "--restarts", "3",
                          "--overwrite", "--out", str(model)])
    print(f"[2/3] nct-md cvs (held out: {', '.join(HELD_OUT)})")
    _call(cvs_command, ["cvs", str(model), *map(str, held), "--n-cvs", "2", "--overwrite",
                        "--out", str(args.out / "cvs.csv")])
    print("[3/3] nct-md report")
    _call(report_command, ["report", str(model), *map(str, held), "--lag-ps", "10", "--overwrite",
                           "--out", str(args.out / "report")])
    print(f"demo finished in {time.perf_counter() - start:.0f} s; outputs in {args.out}/")
