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
        "CustomCVForce and app.Metadynamics; needs numpy, torch and openmm only).")
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
    # n_cvs errors come from save_torchscript and keep its parameter name
    parser.set_defaults(func=run, flags=param_flags(parser, "n_biased", "out"))


def run(args: argparse.Namespace) -> None:
    from nct_md.export.files import export_model

    export_model(**options(args))
