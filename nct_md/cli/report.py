"""``nct-md report``: score a model's CVs on held-out trajectories; report.json and plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from nct_md.cli.plumbing import param_flags


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="score CVs against TICA and Phi/Psi on held-out trajectories",
        description="Write DIR/report.json (frequencies, MI with Phi/Psi, VAMP-2 of NCT vs "
                    "TICA vs Phi/Psi, basin classification) and PNG plots, creating DIR. VAMP "
                    "models, TICA and classifiers are fitted on the model's training "
                    "trajectories (or --train) and scored on TRAJ; with --train and no files "
                    "the given trajectories are split into alternating time blocks. The "
                    "protocol used is printed and stored in report.json.")
    parser.add_argument("model", type=Path, help="model file from `nct-md train`")
    parser.add_argument("traj", nargs="+", type=Path, help="held-out trajectory files")
    parser.add_argument("--top", type=Path, default=None, help="topology file")
    parser.add_argument("--train", nargs="*", type=Path, default=None,
                        help="training trajectories (default: those recorded in the model)")
    parser.add_argument("--lag-ps", type=float, default=10.0, help="lag time in ps (default 10)")
    parser.add_argument("--dt", type=float, default=None, metavar="PS",
                        help="frame spacing in ps, for files without frame times")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace report files already in DIR")
    parser.add_argument("--out", type=Path, required=True, help="output folder DIR")
    parser.set_defaults(func=run, flags=param_flags(parser))


def run(args: argparse.Namespace) -> None:
    from nct_md.cv.report_files import summary, write_report

    report = write_report(args.model, args.traj, args.out, args.top, args.train, args.lag_ps,
                          args.dt, args.overwrite)
    print(summary(report))
    print(f"wrote {args.out / 'report.json'} and plots")
