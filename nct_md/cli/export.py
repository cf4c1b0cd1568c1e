"""``nct-md export``: slow CVs as TorchScript (PLUMED PYTORCH_MODEL) or OpenMM forces."""

from __future__ import annotations

import argparse
from pathlib import Path

from nct_md.cli.plumbing import options, param_flags


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export", help="export the slow CVs as TorchScript (PLUMED) or OpenMM forces",
        description="Export the slowest latent positions of a configuration-separable model as "
        "a self-contained TorchScript module: positions of the model's atoms in nm, shape "
        "(1, 3N) float32 (x1,y1,z1,x2,...), to (1, k) CVs. torchscript: --out is the .pt file. "
        "plumed: --out is a folder that receives nct_cvs.pt and a ready plumed.dat "
        "(WHOLEMOLECULES, POSITION, PYTORCH_MODEL, OPES_METAD or METAD on CV1/CV2). openmm: "
        "--out is a folder that receives nct_cvs.pt and nct_openmm.py (PythonForce CVs for "
        "CustomCVForce and app.Metadynamics; needs numpy, torch and openmm only). With "
        "--surrogate, the CV file holds instead a compact network (superposition, then a small "
        "tanh network) distilled from the CVs on values and gradients of --surrogate-data "
        "frames and noisy copies of them, in the same convention; every third trajectory (the "
        "second of two) is held out and the surrogate's fidelity on it (per-CV R^2, gradient "
        "cosine) is printed and stored in the file's metadata.")
    parser.add_argument("model_path", metavar="model", type=Path,
                        help="model file written by nct-md train")
    parser.add_argument("--format", required=True, choices=("torchscript", "plumed", "openmm"),
                        help="what to write")
    parser.add_argument("--out", required=True, type=Path, help="output file or folder")
    parser.add_argument("--n-cvs", type=int, default=2, help="number of slowest CVs (default 2)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                        help="precision of the network (default float32; the superposition "
                             "always runs in float64)")
    parser.add_argument("--bias", default="opes", choices=("opes", "metad"),
                        help="plumed: active bias in plumed.dat (the other is commented out)")
    parser.add_argument("--n-biased", type=int, default=None,
                        help="plumed: number of CVs biased (default min(2, n-cvs))")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    surrogate = parser.add_argument_group("surrogate (opt-in approximation of the CVs)")
    surrogate.add_argument("--surrogate", action="store_true",
                           help="write a distilled surrogate instead of the exact CVs")
    surrogate.add_argument("--surrogate-data", nargs="+", type=Path, default=(), metavar="TRAJ",
                           help="trajectory files to distil on (at least 2)")
    surrogate.add_argument("--top", type=Path, default=None,
                           help="topology of the trajectories (default: the first file's)")
    surrogate.add_argument("--stride", type=int, default=1,
                           help="keep every stride-th frame (default 1)")
    surrogate.add_argument("--surrogate-hidden", type=int, nargs="+", metavar="WIDTH",
                           help="hidden layer widths (default 128 128)")
    surrogate.add_argument("--surrogate-epochs", type=int, help="training epochs (default 500)")
    surrogate.add_argument("--surrogate-noise", type=float, metavar="NM",
                           help="standard deviation of the noise of the perturbed frames, nm "
                                "(default 0.005)")
    # n_cvs errors come from save_torchscript and keep its parameter name
    flags = param_flags(parser, "n_biased", "out", "surrogate_data", "stride") | {
        "hidden": "--surrogate-hidden", "epochs": "--surrogate-epochs",
        "noise_nm": "--surrogate-noise"}
    parser.set_defaults(func=run, flags=flags)


def run(args: argparse.Namespace) -> None:
    from nct_md.export.files import export_model
    from nct_md.export.surrogate import DistilSettings

    kwargs = options(args)
    given = {"hidden": kwargs.pop("surrogate_hidden"), "epochs": kwargs.pop("surrogate_epochs"),
             "noise_nm": kwargs.pop("surrogate_noise")}
    settings = DistilSettings(**{key: value for key, value in given.items() if value is not None})
    export_model(**kwargs | {"surrogate": settings if kwargs["surrogate"] else None})
