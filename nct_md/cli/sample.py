"""``nct-md sample``: generate whole-molecule configurations and their importance weights."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nct_md.errors import NCTInputError

FORMATS = (".dcd", ".pdb", ".h5")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample", help="generate configurations from an all-atom model, with weights",
        description="Draw N configurations from MODEL (trained over every atom, unconstrained), "
                    "evaluate their OpenMM energies, and write the frames, the log importance "
                    "weights towards the Boltzmann distribution, and a summary (Kish ESS, "
                    "finite-energy and L-chirality fractions, energy histograms and Phi/Psi "
                    "profiles vs MD, Ramachandran KL vs MD).")
    parser.add_argument("model", type=Path, help="model file (from nct-md train)")
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
    parser.add_argument("--forcefield", default="amber99sbildn", help="default amber99sbildn")
    parser.add_argument("--solvent", default="obc", help="obc (default) or vacuum")
    parser.add_argument("--workers", type=int, default=2, help="OpenMM worker processes")
    parser.add_argument("--batch-size", type=int, default=1024, help="samples per batch")
    parser.add_argument("--reference-stride", type=int, default=1,
                        help="use every k-th reference frame (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.n < 1:
        raise NCTInputError(f"--n must be positive, got {args.n}")
    if args.out.suffix.lower() not in FORMATS:
        raise NCTInputError(f"--out must end in {', '.join(FORMATS)}, got '{args.out.name}'")
    weights = args.weights or args.out.with_suffix(".logw.npy")
    if weights.suffix not in (".npy", ".txt"):
        raise NCTInputError(f"--weights must end in .npy or .txt, got '{weights.name}'")
    if args.workers < 0 or args.batch_size < 1 or args.reference_stride < 1:
        raise NCTInputError("--workers must be >= 0, --batch-size and --reference-stride >= 1")
    for path in [args.out, weights] if not args.overwrite else []:
        if path.exists():
            raise NCTInputError(f"output '{path}' exists; pass --overwrite or choose another")
    for path in args.reference or []:
        if not path.is_file():
            raise NCTInputError(f"reference trajectory '{path}' not found")
    return weights, args.summary_dir or args.out.with_name(args.out.stem + "_summary")


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from nct_md.atomic import atomic_path
    from nct_md.generate import diagnostics, plots
    from nct_md.generate.openmm_energy import OpenMMEnergy, system_from_topology, system_from_xml
    from nct_md.generate.sample import draw_samples
    from nct_md.md import io
    from nct_md.model import NCTModel

    weights_path, summary_dir = _check(args)
    model = NCTModel.load(args.model)
    if not any(a.element is not None and a.element.symbol == "H" for a in model.topology.atoms):
        raise NCTInputError(
            f"{args.model} covers only heavy atoms (selection "
            f"'{model.metadata.get('data', {}).get('selection', '?')}'); sampling needs an "
            "all-atom generator: train with --select all --objective configuration "
            "--internal-coordinates on unconstrained data")
    reference_top = io.load_topology(None, args.reference) if args.reference else None
    reference_atoms = model.select_atoms(reference_top) if args.reference else None
    system = (system_from_xml(args.system) if args.system is not None
              else system_from_topology(model.topology, args.forcefield, args.solvent))
    with OpenMMEnergy(system, float(model.metadata["temperature"]),
                      n_workers=args.workers) as energy:
        samples = draw_samples(model, energy, args.n, args.batch_size, args.seed,
                               progress=args.n > 10 * args.batch_size)
        reference, md_energies = None, None
        if args.reference:
            trajs = io.load(args.reference, reference_top, select=reference_atoms,
                            stride=args.reference_stride)
            reference = trajs[0].join(trajs[1:]) if len(trajs) > 1 else trajs[0]
            md_energies = energy.evaluate(reference.xyz)[0]
    traj = model.to_trajectory(samples.q)
    with atomic_path(args.out, overwrite=args.overwrite) as tmp:
        traj.save(str(tmp), force_overwrite=True)
    with atomic_path(weights_path, overwrite=args.overwrite) as tmp:
        if weights_path.suffix == ".npy":
            np.save(tmp, samples.log_weights)
        else:
            np.savetxt(tmp, samples.log_weights, header="log importance weight")
    summary = diagnostics.summarize(traj, samples.energies, samples.log_weights, reference)
    summary.update(model=str(args.model), samples=str(args.out), weights=str(weights_path))
    weights = diagnostics.normalized_weights(samples.log_weights)
    plots.plot_energy_histograms(summary_dir / "energy_histograms.png", samples.energies,
                                 weights, md_energies)
    if reference is not None:
        summary["md_energy_kJ_mol"] = {"mean": float(np.nanmean(md_energies))}
        phi, psi = diagnostics.phi_psi(traj)
        phi_md, psi_md = diagnostics.phi_psi(reference)
        plots.plot_phi_psi_profiles(summary_dir / "phi_psi_profiles.png", phi, psi, weights,
                                    phi_md, psi_md)
    with atomic_path(summary_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    print(f"wrote {args.out}, {weights_path} and {summary_dir}/")


def print_summary(summary: dict) -> None:
    """Print the headline numbers of a sample summary."""
    n = summary["n_samples"]
    print(f"samples: {n}; finite energy {summary['finite_energy_fraction']:.2%}; "
          f"L-chirality {summary['l_chirality_fraction']:.2%}; both "
          f"{summary['finite_and_l_fraction']:.2%}")
    print(f"Kish ESS {summary['kish_ess']:.1f} ({summary['kish_ess_fraction']:.2e} of N)")
    kl = summary.get("ramachandran_kl_nats")
    if kl:
        print(f"Ramachandran KL(MD || reweighted) full {kl['full']:.3f} nats; within basins "
              f"{kl['within_basins']:.3f} (Phi<0 {kl['phi_negative']:.3f}, "
              f"Phi>0 {kl['phi_positive']:.3f})")
        floor = summary["ramachandran_kl_floor_nats"]
        print(f"  as many exact, unweighted samples per basin would give "
              f"{floor['within_basins']:.3f} within basins (Phi<0 {floor['phi_negative']:.3f}, "
              f"Phi>0 {floor['phi_positive']:.3f})")
