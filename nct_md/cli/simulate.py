"""``nct-md simulate``: Langevin MD of a PDB with OpenMM, saved with velocities."""

from __future__ import annotations

import argparse
import json

from nct_md.cli.plumbing import options, param_flags
from nct_md.md import choices


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``simulate`` sub-command."""
    parser = subparsers.add_parser(
        "simulate",
        help="run OpenMM Langevin MD and write positions and velocities (mdtraj HDF5)",
        description="Run Langevin dynamics (LangevinMiddleIntegrator, friction 1/ps) of a PDB "
        "in vacuum, OBC implicit solvent or TIP3P water (periodic box, PME, all atoms and the "
        "unit cell saved) and write an mdtraj HDF5 trajectory with positions (nm), velocities "
        "(nm/ps) and energies. The structure is minimised and equilibrated (at 1 bar with "
        "water) before frames are saved.",
    )
    parser.add_argument("--pdb", required=True, help="structure with all hydrogens (.pdb/.cif)")
    parser.add_argument("--out", required=True, help="output trajectory, .h5")
    parser.add_argument("--forcefield", default="amber99sbildn",
                        choices=sorted(choices.FORCEFIELDS),
                        help="force field (default: amber99sbildn)")
    parser.add_argument("--solvent", default="obc", choices=choices.ALL_SOLVENTS,
                        help="OBC implicit solvent, vacuum or TIP3P water (default: obc)")
    parser.add_argument("--padding-nm", type=float, default=1.0,
                        help="tip3p: smallest solute-image distance, sets the box (default: 1)")
    parser.add_argument("--ensemble", default="nvt", choices=choices.ENSEMBLES,
                        help="tip3p production at fixed volume or 1 bar (default: nvt)")
    parser.add_argument("--positions", default="whole", choices=choices.POSITIONS,
                        help="tip3p: whole molecules or atoms wrapped (default: whole)")
    parser.add_argument("--temperature", type=float, default=300.0,
                        help="temperature in K (default: 300)")
    parser.add_argument("--ns", type=float, default=1.0,
                        help="production length in ns (default: 1)")
    parser.add_argument("--save-every-ps", type=float, default=1.0,
                        help="frame spacing in ps (default: 1)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (default: random, reported at the end)")
    parser.add_argument("--constraints", default="hbonds", choices=choices.CONSTRAINTS,
                        help="constrain bonds to hydrogen or nothing (default: hbonds)")
    steps = ", ".join(f"{v:g} with {k}" for k, v in choices.DEFAULT_TIMESTEP_FS.items())
    parser.add_argument("--timestep-fs", type=float, default=None,
                        help=f"time step in fs (default: {steps})")
    parser.add_argument("--platform", default=None,
                        help="OpenMM platform (default: the fastest, measured at start)")
    parser.add_argument("--start", default=None, metavar="FRAME_PDB",
                        help="starting positions for the same atoms (default: the --pdb ones)")
    parser.add_argument("--equilibrate-ps", type=float, default=10.0,
                        help="unsaved equilibration in ps after minimisation, NPT with "
                        "tip3p (default: 10)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, flags=param_flags(parser))


def run(args: argparse.Namespace) -> None:
    """Run the simulation and print a one-line JSON summary on stdout."""
    from nct_md.md.simulate import simulate

    settings = options(args)
    progress = not settings.pop("quiet")
    summary = simulate(**settings, progress=progress)
    keys = ("out", "n_frames", "n_atoms", "temperature", "solvent", "ensemble", "cutoff_nm",
            "constraints", "timestep_fs", "platform", "seed", "ns_per_day", "wall_s")
    print(json.dumps({key: summary[key] for key in keys}))
