"""``nct-md export``: slow CVs as TorchScript (PLUMED PYTORCH_MODEL) or OpenMM forces."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from nct_md.atomic import atomic_path, check_output, check_output_folder
from nct_md.errors import NCTInputError

#: File names written inside the output folder for --format plumed / openmm.
CV_FILE = "nct_cvs.pt"
PLUMED_FILE = "plumed.dat"
OPENMM_HELPER = "nct_openmm.py"

OPENMM_USAGE = """\
# OpenMM: bias CV1 and CV2 by well-tempered metadynamics (needs numpy, torch, openmm >= 8.6)
from openmm import app
from nct_openmm import bias_variables
variables = bias_variables("{cv}", min_values={lows}, max_values={highs}, widths={widths})
meta = app.Metadynamics(system, variables, 300.0, biasFactor=10.0, height=2.0, frequency=250)
# ... create the Simulation from `system`, then advance with meta.step(simulation, n_steps)
"""


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
    parser.add_argument("model", type=Path, help="model file written by nct-md train")
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
    parser.set_defaults(func=run)


def _write_cvs(model, path: Path, n_cvs: int, dtype: str, overwrite: bool) -> dict:
    from nct_md.export.torchscript import parse_dtype, save_torchscript

    if path.suffix not in (".pt", ".ptc"):
        raise NCTInputError(f"the TorchScript file must end in .pt or .ptc, got '{path.name}'")
    return save_torchscript(model, path, n_cvs, parse_dtype(dtype), overwrite=overwrite)


def _check_folder(out: Path, names: tuple[str, ...], overwrite: bool) -> None:
    if out.suffix:
        raise NCTInputError(f"--out must be a folder for this format, got '{out}'")
    check_output_folder(out, list(names), overwrite)


def run(args: argparse.Namespace) -> None:
    from nct_md.export import openmm_force
    from nct_md.export.metad import default_bias
    from nct_md.export.plumed import plumed_input
    from nct_md.model import NCTModel

    model = NCTModel.load(args.model)
    model.check_separable()
    if args.format == "torchscript":
        check_output(args.out, args.overwrite)
        info = _write_cvs(model, args.out, args.n_cvs, args.dtype, args.overwrite)
        print(f"wrote {args.out}: {info['n_cvs']} CVs of {info['n_atoms']} atoms "
              f"(0-based indices {info['atom_indices']})")
        return
    if args.format == "plumed":
        _check_folder(args.out, (CV_FILE, PLUMED_FILE), args.overwrite)
        n_biased = min(2, args.n_cvs) if args.n_biased is None else args.n_biased
        if not 1 <= n_biased <= args.n_cvs:
            raise NCTInputError(f"--n-biased must be between 1 and --n-cvs ({args.n_cvs})")
        info = _write_cvs(model, args.out / CV_FILE, args.n_cvs, args.dtype, args.overwrite)
        text = plumed_input(info, CV_FILE, bias=args.bias, n_biased=n_biased,
                            topology=model.topology)
        with atomic_path(args.out / PLUMED_FILE, overwrite=args.overwrite) as tmp:
            tmp.write_text(text)
        print(f"wrote {args.out / CV_FILE} and {args.out / PLUMED_FILE}")
        return
    _check_folder(args.out, (CV_FILE, OPENMM_HELPER), args.overwrite)
    _write_cvs(model, args.out / CV_FILE, args.n_cvs, args.dtype, args.overwrite)
    with atomic_path(args.out / OPENMM_HELPER, overwrite=args.overwrite) as tmp:
        shutil.copyfile(openmm_force.__file__, tmp)
    lows, highs, widths = default_bias(model, min(2, args.n_cvs))
    print(f"wrote {args.out / CV_FILE} and {args.out / OPENMM_HELPER}\n")
    print(OPENMM_USAGE.format(cv=CV_FILE, lows=[round(v, 4) for v in lows],
                              highs=[round(v, 4) for v in highs],
                              widths=[round(v, 4) for v in widths]))
