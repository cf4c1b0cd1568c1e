"""``nct-md interpolate``: a latent-space path between two frames, as PDB, HTML and plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nct_md.atomic import check_output, check_output_folder
from nct_md.errors import NCTInputError


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
    parser.add_argument("model", help="model file written by `nct-md train`")
    parser.add_argument("--traj", required=True, help="trajectory holding both frames")
    parser.add_argument("--top", default=None,
                        help="topology (default: from the trajectory file, e.g. .h5)")
    parser.add_argument("--from-frame", type=int, required=True, metavar="I",
                        help="index of the first frame (negative counts from the end)")
    parser.add_argument("--to-frame", type=int, required=True, metavar="J",
                        help="index of the last frame")
    parser.add_argument("--frames", type=int, default=20, metavar="N",
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
    parser.set_defaults(func=run)


PLOTS = ("ramachandran.png", "ramachandran.svg", "angles.png", "angles.svg")


def _frame_index(index: int, n_frames: int, option: str) -> int:
    """``index`` made non-negative; raises NCTInputError when outside the trajectory."""
    if not -n_frames <= index < n_frames:
        raise NCTInputError(f"{option} {index} is outside the trajectory's {n_frames} frames")
    return index % n_frames


def _check_outputs(args: argparse.Namespace) -> None:
    """Raise for a wrong suffix, an unwritable location, or an existing output without
    ``--overwrite``."""
    if Path(args.out).suffix.lower() != ".pdb":
        raise NCTInputError(f"--out must end in .pdb, got {args.out}")
    if args.html and Path(args.html).suffix.lower() not in {".html", ".htm"}:
        raise NCTInputError(f"--html must end in .html, got {args.html}")
    for path in [args.out] + ([args.html] if args.html else []):
        check_output(path, args.overwrite)
    if args.plots:
        check_output_folder(args.plots, list(PLOTS), args.overwrite)


def run(args: argparse.Namespace) -> None:
    """Write the path and print a one-line JSON summary on stdout."""
    from nct_md.atomic import atomic_path
    from nct_md.md import io
    from nct_md.model import NCTModel
    from nct_md.viz import interpolate, path_angles, phi_psi, ramachandran, save_figure, write_html
    from nct_md.viz.ngl import ngl_script

    _check_outputs(args)
    if args.html:
        ngl_script()  # fail before any work if nglview's NGL is missing
    model = NCTModel.load(args.model)
    traj = io.load(args.traj, top=args.top)[0]
    if args.plots:
        phi_psi(traj[:1])  # fail before any work if the topology is no peptide
    i = _frame_index(args.from_frame, traj.n_frames, "--from-frame")
    j = _frame_index(args.to_frame, traj.n_frames, "--to-frame")
    path = interpolate(model, traj[i], traj[j], n_frames=args.frames, modes=args.modes,
                       others=args.others)
    with atomic_path(args.out, overwrite=args.overwrite) as tmp:
        path.save_pdb(str(tmp))
    summary = {"out": str(args.out), "n_frames": path.n_frames, "n_atoms": path.n_atoms,
               "from_frame": i, "to_frame": j, "modes": args.modes, "others": args.others}
    if args.html:
        write_html(path, args.html, title=f"nct-md: frame {i} to {j}, {args.modes} slowest modes")
        summary["html"] = str(args.html)
    if args.plots:
        data = traj.atom_slice(model.select_atoms(traj.topology))
        figures = {"ramachandran": ramachandran(path, data), "angles": path_angles(path)}
        for name in PLOTS:
            save_figure(figures[name.split(".")[0]], Path(args.plots) / name)
        summary["plots"] = str(args.plots)
    print(json.dumps(summary))
