"""``nct-md interpolate``: a latent-space path between two frames, as PDB, HTML and plots."""

from __future__ import annotations

import argparse
import json

from nct_md.cli.plumbing import options, param_flags


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``interpolate`` sub-command."""
    parser = subparsers.add_parser(
        "interpolate",
        help="decode a straight latent path between two frames (PDB, offline HTML, plots)",
        description="Encode two frames of a trajectory with a trained model, move the K slowest "
        "latent coordinates from the first to the second in a straight line (the other modes "
        "stay at the first frame's values, or at their mean with --others mean), decode, and "
        "write the frames as a multi-model PDB superposed on the model's reference. "
        "Optionally write a self-contained HTML animation that works offline and Ramachandran "
        "/ Phi-Psi plots (PNG and SVG).",
    )
    parser.add_argument("model_path", metavar="model", help="model file written by `nct-md train`")
    parser.add_argument("--traj", required=True, help="trajectory holding both frames")
    parser.add_argument("--top", default=None,
                        help="topology (default: from the trajectory file, e.g. .h5)")
    parser.add_argument("--from-frame", type=int, required=True, metavar="I",
                        help="index of the first frame (negative counts from the end)")
    parser.add_argument("--to-frame", type=int, required=True, metavar="J",
                        help="index of the last frame")
    parser.add_argument("--frames", dest="n_frames", type=int, default=20, metavar="N",
                        help="frames of the path, ends included (default: 20)")
    parser.add_argument("--modes", type=int, default=2, metavar="K",
                        help="slowest latent modes moved (default: 2)")
    parser.add_argument("--others", choices=("a", "mean"), default="a",
                        help="other modes at the first frame's values (a) or at their mean "
                        "(default: a)")
    parser.add_argument("--out", required=True, help="output multi-model PDB")
    parser.add_argument("--html", default=None, metavar="OUT.html",
                        help="also write an offline HTML animation")
    parser.add_argument("--plots", default=None, metavar="DIR",
                        help="also write ramachandran.{png,svg} and angles.{png,svg} to DIR "
                        "(peptides only)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=run, flags=param_flags(parser))


def run(args: argparse.Namespace) -> None:
    """Write the path and print a one-line JSON summary on stdout."""
    from nct_md.viz.interpolate_files import interpolate_to_files

    print(json.dumps(interpolate_to_files(**options(args))))
