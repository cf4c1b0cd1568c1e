"""``nct-md train``: fit an NCT model to MD trajectories (likelihood + kinetic objective)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from nct_md.cli.plumbing import options, param_flags
from nct_md.defaults import KINETIC_WEIGHT, MAX_HIDDEN, MIN_HIDDEN, TRAINING

#: integer and float options: (flag, default, help); defaults are the library's
INTEGERS = (("epochs", TRAINING["epochs"], "training epochs"),
            ("couplings", TRAINING["n_couplings"], "coupling layers"), ("hidden", None,
             f"conditioner width (default: 2 x degrees of freedom in {MIN_HIDDEN}-{MAX_HIDDEN})"),
            ("depth", TRAINING["depth"], "hidden layers per conditioner; fewer couplings and "
                                         "layers make an exported CV cheaper per MD step"),
            ("batch-size", TRAINING["batch_size"], "batch size"), ("patience",
             TRAINING["patience"], "stop after this many epochs without a better validation loss"),
            ("stride", 1, "use every n-th frame"), ("seed", 0, "random seed"),
            ("restarts", TRAINING["restarts"], "fit this many times (seeds SEED x RESTARTS + "
                                               "0, 1, ...) and keep one (see README)"),
            ("n-slow", TRAINING["n_slow"], "slowest latent coordinates the kinetic objective makes "
                                           "slow"))
FLOATS = (("lr", TRAINING["lr"], "peak learning rate"),
          ("kinetic-weight", None, f"weight of the kinetic objective (VAMP-2 of the N_SLOW "
                                   f"slowest latent coordinates at lag LAG_PS; 0: likelihood "
                                   f"only; default: {KINETIC_WEIGHT:g} where the frames are "
                                   f"time-ordered trajectories, else 0)"),
          ("lag-ps", TRAINING["lag_ps"], "lag time of the kinetic objective in ps"))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="learn slow CVs from trajectories",
        description="Fit a neural canonical transformation (point-transformation flow + "
                    "harmonic latent) to phase-space samples of the trajectories: maximum "
                    "likelihood, plus a kinetic objective that makes the slowest latent "
                    "coordinates slow where the frames are time-ordered trajectories. Momenta: "
                    "stored velocities, or Maxwell-Boltzmann draws each epoch. A killed run "
                    "resumes from OUT.ckpt when run again with the same data and settings "
                    "(--restart starts fresh). Under torchrun it trains data-parallel.")
    parser.add_argument("paths", metavar="traj", nargs="+", type=Path,
                        help="trajectory files (any mdtraj format)")
    parser.add_argument("--top", type=Path, help="topology file (not for h5 trajectories)")
    parser.add_argument("--select", default="heavy", help="atoms: heavy (default), backbone, all, "
                        "or an mdtraj selection")
    parser.add_argument("--temperature", type=float, help="data temperature in K (default: "
                        "read from nct-md simulate files)")
    parser.add_argument("--weights", type=Path, metavar="FILE", help="per-frame weights of "
                        "biased data, one per frame of all trajectories in order after --stride: "
                        "text (one per line; first line '# log-weights' for ln w) or .npy")
    for kind, group in ((int, INTEGERS), (float, FLOATS)):
        for flag, default, text in group:
            parser.add_argument(f"--{flag}", type=kind, default=default,
                                dest="n_couplings" if flag == "couplings" else None,
                                metavar=flag.upper().replace("-", "_"),
                                help=text if default is None else f"{text} (default {default:g})")
    parser.add_argument("--objective", choices=["phase-space", "configuration"],
                        default="phase-space", help="likelihood of phase-space points (default, "
                        "needs momenta) or of configurations alone (faster)")
    parser.add_argument("--coupling", choices=["affine", "spline"], default="affine",
                        help="affine (default; exportable CVs) or rational-quadratic splines")
    parser.add_argument("--internal-coordinates", action="store_true", help="start with bonds, "
                        "angles and torsions (generators over every atom)")
    parser.add_argument("--restart", action="store_true", help="delete OUT.ckpt and start fresh")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--out", type=Path, required=True, help="model file to write")
    parser.set_defaults(func=run, flags=param_flags(parser))


def run(args: argparse.Namespace) -> None:
    from nct_md.train.files import train_files

    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_: print(
            "nct-md train: warning: " + " ".join(str(message).split()), file=sys.stderr)
        train_files(**options(args) | {"objective": args.objective.replace("-", "_")})
