"""``nct-md cvs``: write the slowest latent coordinates of trajectories as CVs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cvs", help="compute slow CVs of trajectories with a trained model",
        description="Stream trajectories through a model and write its slowest latent "
                    "positions (slowest first). Output by extension: .csv (columns traj = "
                    "index of the trajectory file from 0, time_ps, cv1..cvK), .npy (exactly the "
                    "(n_frames, K) CVs), .npz (arrays cvs, time_ps, traj), or .dat/.colvar "
                    "(PLUMED COLVAR, FIELDS time cv1..cvK, one file OUT-STEM.trajN.dat per "
                    "trajectory when several are given). Molecules broken across periodic "
                    "boxes are made whole first.")
    parser.add_argument("model", type=Path, help="model file from `nct-md train`")
    parser.add_argument("traj", nargs="+", type=Path, help="trajectory files")
    parser.add_argument("--top", type=Path, default=None, help="topology file")
    parser.add_argument("--n-cvs", type=int, default=2, help="number of CVs (default 2)")
    parser.add_argument("--dt", type=float, default=None, metavar="PS",
                        help="frame spacing in ps, for files without frame times (XYZ, mdcrd, "
                             "PDB, DCD without a time step); overrides stored times")
    parser.add_argument("--chunk", type=int, default=10_000,
                        help="frames held in memory at once (default 10000)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the flow first (about 1.5x faster on CPU after "
                             "5-15 s of compiling: for millions of frames)")
    parser.add_argument("--ood", action="store_true",
                        help="add the columns ood_score (-ln p(q) under the model, nats) and ood "
                             "(1 when above the training data's 99.9th percentile: a frame the "
                             "model never learned, whose CVs are extrapolated); .csv, .npz, "
                             ".dat/.colvar only")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--out", type=Path, required=True,
                        help=".csv, .npy, .npz, .dat or .colvar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from nct_md.cv.extract import extract_cvs

    written, ood = extract_cvs(args.model, args.traj, args.out, args.top, args.n_cvs,
                               args.chunk, args.dt, args.overwrite, args.compile, ood=args.ood)
    print(f"wrote {args.n_cvs} CVs to {', '.join(map(str, written))}")
    if ood is not None:
        print(f"{int(ood.flag.sum())} of {len(ood.flag)} frames out of distribution "
              f"(ood_score above the model's threshold, {ood.threshold:.4g})")
