"""``nct-md metad``: well-tempered metadynamics along a model's slowest CVs (OpenMM)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nct_md.cli.plumbing import param_flags
from nct_md.md.choices import CONSTRAINTS, FORCEFIELDS, SOLVENTS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``metad`` sub-command."""
    parser = subparsers.add_parser(
        "metad", help="well-tempered metadynamics biased along the slowest NCT CVs (OpenMM)",
        description="Run OpenMM Langevin dynamics of a PDB with a well-tempered metadynamics "
        "bias (openmm.app.Metadynamics) on the model's slowest CVs, computed by PythonForce "
        "collective variables, evaluated every --bias-interval steps. Writes OUT/trajectory.h5, "
        "OUT/colvar.csv (time, CVs, bias, rbias, kinetic temperature, Phi/Psi), OUT/bias/ "
        "(bias grids), OUT/free_energy.npy and OUT/metad.json.")
    parser.add_argument("model", type=Path, help="model file written by nct-md train")
    parser.add_argument("--pdb", required=True, help="structure matching the model's topology")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--ns", type=float, default=1.0, help="length in ns (default 1)")
    parser.add_argument("--n-biased", type=int, default=2,
                        help="number of slowest CVs biased, 1-3 (default 2)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="K (default: the model's)")
    parser.add_argument("--bias-factor", type=float, default=10.0,
                        help="well-tempering bias factor (default 10)")
    parser.add_argument("--height", type=float, default=2.0,
                        help="initial Gaussian height in kJ/mol (default 2)")
    parser.add_argument("--pace", type=int, default=250,
                        help="steps between Gaussians (default 250)")
    parser.add_argument("--widths", type=float, nargs="+", default=None,
                        help="Gaussian widths in ps, one per biased CV (default 0.3 / w)")
    parser.add_argument("--forcefield", default="amber99sbildn", choices=sorted(FORCEFIELDS),
                        help="force field (default amber99sbildn)")
    parser.add_argument("--solvent", default="obc", choices=SOLVENTS,
                        help="OBC implicit solvent or vacuum (default obc)")
    parser.add_argument("--constraints", default="hbonds", choices=CONSTRAINTS,
                        help="constrain bonds to hydrogen or nothing (default hbonds)")
    parser.add_argument("--timestep-fs", type=float, default=None,
                        help="time step in fs (default 2 with hbonds, 1 without constraints)")
    parser.add_argument("--save-every-ps", type=float, default=1.0,
                        help="frame spacing in ps (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--platform", default="Reference",
                        help="OpenMM platform (default Reference, the fastest for small "
                             "molecules)")
    parser.add_argument("--bias-interval", type=int, default=None,
                        help="MD steps between evaluations of the bias and its CVs, applied as "
                             "an impulse (multiple time steps, Ferrarotti et al. 2015): faster "
                             "by up to that factor on the CVs' cost, less accurate as the "
                             "interval nears half a bond period; must divide --pace and the "
                             "steps per frame; 1 = every step (default: the largest of 5, 4, "
                             "... that divides both, 5 with the defaults)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, flags=param_flags(parser))


def run(args: argparse.Namespace) -> None:
    """Run and print a one-line JSON summary."""
    from nct_md.export.metad import run_metadynamics
    from nct_md.model import NCTModel

    result = run_metadynamics(
        NCTModel.load(args.model), args.pdb, args.out, ns=args.ns, n_biased=args.n_biased,
        temperature=args.temperature, bias_factor=args.bias_factor, height=args.height,
        pace=args.pace, widths=args.widths, forcefield=args.forcefield, solvent=args.solvent,
        constraints=args.constraints, timestep_fs=args.timestep_fs,
        save_every_ps=args.save_every_ps, seed=args.seed, platform=args.platform,
        bias_interval=args.bias_interval, progress=not args.quiet)
    keys = ("n_frames", "ns_per_day", "wall_s", "phi_sign_changes", "phi_positive_fraction")
    print(json.dumps({k: result[k] for k in keys if k in result} | {"out": str(args.out)}))
