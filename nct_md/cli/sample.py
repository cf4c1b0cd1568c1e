"""``nct-md sample``: generate whole-molecule configurations and their importance weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from nct_md.cli.plumbing import options, param_flags
from nct_md.md.choices import FORCEFIELDS, SOLVENTS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample", help="generate configurations from an all-atom model, with weights",
        description="Draw N configurations from MODEL (trained over every atom, unconstrained), "
                    "evaluate their OpenMM energies, and write the frames, the log importance "
                    "weights towards the Boltzmann distribution, and a summary (Kish ESS, "
                    "finite-energy and L-chirality fractions, energy histograms and Phi/Psi "
                    "profiles vs MD, Ramachandran KL vs MD).")
    parser.add_argument("model_path", metavar="model", type=Path,
                        help="model file (from nct-md train)")
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--out", type=Path, required=True,
                        help="samples: .dcd, .pdb or .h5 (frames in nm, reference frame)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="log importance weights (.npy or .txt); default OUT.logw.npy")
    parser.add_argument("--reference", type=Path, nargs="+", default=None,
                        help="MD trajectories of the same molecule for the comparisons")
    parser.add_argument("--summary-dir", type=Path, default=None,
                        help="folder for summary.json and plots; default OUT_summary")
    parser.add_argument("--system", type=Path, default=None,
                        help="serialized OpenMM System XML (default: built from the model's "
                             "topology with --forcefield and --solvent, unconstrained)")
    parser.add_argument("--forcefield", default="amber99sbildn", choices=sorted(FORCEFIELDS),
                        help="default amber99sbildn")
    parser.add_argument("--solvent", default="obc", choices=SOLVENTS,
                        help="obc (default) or vacuum")
    parser.add_argument("--workers", type=int, default=2, help="OpenMM worker processes")
    parser.add_argument("--batch-size", type=int, default=1024, help="samples per batch")
    parser.add_argument("--reference-stride", type=int, default=1,
                        help="use every k-th reference frame (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=run, flags=param_flags(parser))


def run(args: argparse.Namespace) -> None:
    from nct_md.generate.pipeline import sample_to_files

    sample_to_files(**options(args))
