"""``nct-md cvs``: write the slowest latent coordinates of trajectories as CVs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cvs", help="compute slow CVs of trajectories with a trained model",
        description="Stream trajectories through a model and write its slowest latent "
                    "positions (slowest first) with the frame time in ps. Output by extension: "
                    ".csv, .npy, or .dat/.colvar (PLUMED COLVAR).")
    parser.add_argument("model", type=Path, help="model file from `nct-md train`")
    parser.add_argument("traj", nargs="+", type=Path, help="trajectory files")
    parser.add_argument("--top", type=Path, default=None, help="topology file")
    parser.add_argument("--n-cvs", type=int, default=2, help="number of CVs (default 2)")
    parser.add_argument("--chunk", type=int, default=10_000,
                        help="frames held in memory at once (default 10000)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the flow first (about 1.5x faster on CPU after "
                             "5-15 s of compiling: for millions of frames)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--out", type=Path, required=True, help=".csv, .npy, .dat or .colvar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from nct_md.cv.extract import iter_cvs, output_format, write_cvs
    from nct_md.errors import NCTInputError
    from nct_md.model import NCTModel

    output_format(args.out)
    if args.out.exists() and not args.overwrite:
        raise NCTInputError(f"{args.out} exists; choose another --out or pass --overwrite")
    model = NCTModel.load(args.model)
    if args.compile:
        model.compile_flow()
    index, times, cvs = [], [], []
    for k, t, c in iter_cvs(model, args.traj, args.top, args.n_cvs, chunk=args.chunk):
        index.append(np.full(len(t), k))
        times.append(t)
        cvs.append(c)
    write_cvs(args.out, np.concatenate(index), np.concatenate(times), np.concatenate(cvs),
              overwrite=args.overwrite)
    print(f"wrote {sum(len(t) for t in times)} frames x {args.n_cvs} CVs to {args.out}")
