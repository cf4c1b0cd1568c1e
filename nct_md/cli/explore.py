"""``nct-md explore``: the learn -> bias -> relearn loop (plain MD, then NCT + metadynamics)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nct_md.cli.plumbing import param_flags
from nct_md.md.choices import FORCEFIELDS, SOLVENTS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``explore`` sub-command."""
    parser = subparsers.add_parser(
        "explore", help="find new states: learn CVs, bias them, relearn",
        description="Iteration 0: plain MD from the PDB (or --start trajectories). Each later "
        "iteration: fit an NCT model to all frames so far with their weights, run "
        "well-tempered metadynamics on its N_BIASED slowest CVs for NS_PER_ITERATION ns and "
        "add the frames with their final-bias weights. Writes OUT/iter-NN/ (model.pt, metad/, "
        "cvs.csv) and one line of OUT/explore.json per iteration: ns simulated, new states "
        "(out-of-distribution frames, k-means states), first visits, backbone basins and the "
        "reweighted Phi > 0 vs Phi < 0 free-energy difference (kT). --resume continues a "
        "killed run from its last completed iteration.")
    parser.add_argument("--pdb", required=True, type=Path, help="structure with all hydrogens")
    parser.add_argument("--forcefield", default="amber99sbildn", choices=sorted(FORCEFIELDS),
                        help="force field (default amber99sbildn)")
    parser.add_argument("--solvent", default="obc", choices=SOLVENTS,
                        help="OBC implicit solvent or vacuum (default obc)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--start", nargs="+", type=Path, metavar="TRAJ",
                        help="trajectories of the PDB's atoms used instead of plain MD")
    parser.add_argument("--iterations", type=int, default=3,
                        help="learn -> bias rounds after the plain MD (default 3)")
    parser.add_argument("--ns-per-iteration", type=float, default=0.5,
                        help="biased ns per round (default 0.5)")
    parser.add_argument("--plain-ns", type=float, default=2.0,
                        help="plain MD in ns without --start (default 2)")
    parser.add_argument("--n-biased", type=int, default=2,
                        help="slowest CVs biased, 1-3 (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--platform", default=None,
                        help="OpenMM platform (default: the fastest, measured)")
    parser.add_argument("--resume", action="store_true",
                        help="continue OUT from its last completed iteration")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.set_defaults(func=run, flags=param_flags(parser) | {"out_dir": "--out"})


def run(args: argparse.Namespace) -> None:
    """Run the loop and print the last iteration's record as one JSON line."""
    from nct_md.explore import explore

    records = explore(
        args.pdb, args.out, forcefield=args.forcefield, solvent=args.solvent,
        temperature=args.temperature, start=args.start, iterations=args.iterations,
        ns_per_iteration=args.ns_per_iteration, plain_ns=args.plain_ns,
        n_biased=args.n_biased, seed=args.seed, resume=args.resume, platform=args.platform,
        progress=not args.quiet)
    last = records[-1]
    print(json.dumps({k: last[k] for k in ("iteration", "ns", "ood") if k in last}
                     | {"out": str(args.out)}))
