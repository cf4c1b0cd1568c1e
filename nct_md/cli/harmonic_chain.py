"""``nct-md harmonic-chain``: learn a harmonic chain's normal modes from its Hamiltonian."""

from __future__ import annotations

import argparse
from pathlib import Path

from nct_md.cli.plumbing import param_flags


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "harmonic-chain", help="learn a fixed-end harmonic chain; compare with analytic modes",
        description="Train a neural canonical transformation on H = 1/2 sum [p_i^2 + "
                    "(q_i - q_{i-1})^2] (fixed ends, kT = 1) by variational free energy and "
                    "write learned vs analytic frequencies and free energies as JSON.")
    parser.add_argument("--n", type=int, required=True, help="number of oscillators (>= 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimiser steps (default 250 n, at least 2000)")
    parser.add_argument("--couplings", type=int, default=0,
                        help="nonlinear affine-coupling layers before the linear one (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--out", type=Path, required=True, help="output JSON file")
    parser.set_defaults(func=run, flags=param_flags(parser))


def run(args: argparse.Namespace) -> None:
    from nct_md.systems.harmonic_chain import harmonic_chain_to_file, summary_text

    result = harmonic_chain_to_file(args.n, args.out, seed=args.seed, steps=args.steps,
                                    n_couplings=args.couplings, overwrite=args.overwrite)
    print(summary_text(result))
    print(f"wrote {args.out}")
