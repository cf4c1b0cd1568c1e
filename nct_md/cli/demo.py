"""``nct-md demo``: the main job end to end on the shipped data.

Until the alanine-dipeptide pipeline lands this runs the paper's first example, the harmonic
chain, and prints learned vs analytic frequencies.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nct_md.atomic import atomic_path
from nct_md.cli.harmonic_chain import default_steps, print_table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the main job end to end on shipped data")
    parser.add_argument("--out", type=Path, default=Path("demo-output"),
                        help="output folder (default demo-output)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from nct_md.systems.harmonic_chain import fit_harmonic_chain

    n = 16
    result = fit_harmonic_chain(n, seed=0, steps=default_steps(n)).to_json()
    out = args.out / "harmonic_chain.json"
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"wrote {out}")
