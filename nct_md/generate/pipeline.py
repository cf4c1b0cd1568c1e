"""``nct-md sample`` as one function: draw, weigh, write frames, weights and a summary.

:func:`sample_to_files` checks its outputs before any work, draws configurations from an
all-atom model, evaluates their OpenMM energies, and writes the frames (nm, the model's
reference frame), their log importance weights towards the Boltzmann distribution, and a summary
folder (``summary.json``, energy histograms and, with reference MD, Phi/Psi profiles).
:func:`summary_text` is the headline table printed on stdout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nct_md.atomic import atomic_path, check_output
from nct_md.cv.reference import phi_psi
from nct_md.errors import NCTInputError
from nct_md.generate import diagnostics, plots
from nct_md.generate.openmm_energy import OpenMMEnergy, system_from_topology, system_from_xml
from nct_md.generate.sample import draw_samples
from nct_md.md import io
from nct_md.model import NCTModel

PathLike = str | os.PathLike
#: trajectory formats the samples can be written in
FORMATS = (".dcd", ".pdb", ".h5")
_WEIGHT_FORMATS = (".npy", ".txt")


def _check(n: int, out: Path, weights: Path, workers: int, batch_size: int,
           reference_stride: int, reference: Sequence[PathLike], overwrite: bool) -> None:
    """Refuse bad settings, bad output names or existing outputs before any work."""
    if n < 1:
        raise NCTInputError(f"n must be positive, got {n}")
    if out.suffix.lower() not in FORMATS:
        raise NCTInputError(f"out must end in {', '.join(FORMATS)}, got '{out.name}'")
    if weights.suffix not in _WEIGHT_FORMATS:
        raise NCTInputError(f"weights must end in .npy or .txt, got '{weights.name}'")
    if workers < 0:
        raise NCTInputError(f"workers must be >= 0, got {workers}")
    for name, value in (("batch_size", batch_size), ("reference_stride", reference_stride)):
        if value < 1:
            raise NCTInputError(f"{name} must be >= 1, got {value}")
    for path in (out, weights):
        check_output(path, overwrite, create_parent=True)
    for path in reference:
        if not Path(path).is_file():
            raise NCTInputError(f"reference trajectory '{path}' not found")


def _load_generator(model_path: PathLike) -> NCTModel:
    """The model of ``model_path``; refused unless it covers hydrogens (an all-atom model)."""
    model = NCTModel.load(model_path)
    if not any(a.element is not None and a.element.symbol == "H" for a in model.topology.atoms):
        raise NCTInputError(
            f"{model_path} covers only heavy atoms (selection "
            f"'{model.info.data.selection or '?'}'); sampling needs an "
            "all-atom generator: train with --select all --objective configuration "
            "--internal-coordinates on unconstrained data")
    return model


def sample_to_files(model_path: PathLike, n: int, out: PathLike, weights: PathLike | None = None,
                    reference: Sequence[PathLike] | None = None,
                    summary_dir: PathLike | None = None, system: PathLike | None = None,
                    forcefield: str = "amber99sbildn", solvent: str = "obc", workers: int = 2,
                    batch_size: int = 1024, reference_stride: int = 1, seed: int = 0,
                    overwrite: bool = False, verbose: bool = True) -> dict:
    """Draw ``n`` configurations of an all-atom model and write them with their weights.

    Parameters
    ----------
    model_path : path
        Model file trained over every atom (``nct-md train --select all``), unconstrained data.
    n : int
        Number of samples.
    out : path
        Samples, ``.dcd``, ``.pdb`` or ``.h5``: frames in nm, whole molecules, the model's
        reference frame.
    weights : path, optional
        Log importance weights ``(n,)`` towards ``exp(-H / kT)`` (up to a constant; ``-inf``
        where the energy is not finite), ``.npy`` or ``.txt``; default ``OUT.logw.npy``.
    reference : sequence of paths, optional
        MD trajectories of the same molecule: their energies and Phi/Psi are compared.
    summary_dir : path, optional
        Folder for ``summary.json`` and the plots; default ``OUT_summary`` beside ``out``.
    system : path, optional
        Serialized OpenMM System XML; default built from the model's topology with
        ``forcefield`` and ``solvent`` (unconstrained).
    forcefield, solvent : str
        Names of :mod:`nct_md.md.choices` (``solvent`` "obc" or "vacuum").
    workers : int
        OpenMM worker processes (0: in this process).
    batch_size, reference_stride, seed : int
        Samples per batch, every k-th reference frame, random seed.
    overwrite : bool
        Replace existing outputs.
    verbose : bool
        Show a progress bar for long runs and print :func:`summary_text` and the paths written.

    Returns
    -------
    dict
        The summary (also in ``summary_dir/summary.json``): see
        :func:`nct_md.generate.diagnostics.summarize`, plus the paths of model, samples and
        weights, and the mean MD energy (kJ/mol) with ``reference``.
    """
    out = Path(out)
    weights = Path(weights) if weights is not None else out.with_suffix(".logw.npy")
    summary_dir = Path(summary_dir or out.with_name(out.stem + "_summary"))
    reference = list(reference or [])
    _check(n, out, weights, workers, batch_size, reference_stride, reference, overwrite)
    model = _load_generator(model_path)
    reference_top = io.load_topology(None, reference) if reference else None
    reference_atoms = model.select_atoms(reference_top) if reference else None
    openmm_system = (system_from_xml(system) if system is not None
                     else system_from_topology(model.topology, forcefield, solvent))
    with OpenMMEnergy(openmm_system, model.info.temperature, n_workers=workers) as energy:
        samples = draw_samples(model, energy, n, batch_size, seed,
                               progress=verbose and n > 10 * batch_size)
        md_traj, md_energies = None, None
        if reference:
            trajs = [chunk.traj for chunk in io.load(reference, reference_top,
                                                     select=reference_atoms,
                                                     stride=reference_stride)]
            md_traj = trajs[0].join(trajs[1:]) if len(trajs) > 1 else trajs[0]
            md_energies = energy.evaluate(md_traj.xyz)[0]
    traj = model.to_trajectory(samples.q)
    with atomic_path(out, overwrite=overwrite) as tmp:
        traj.save(str(tmp), force_overwrite=True)
    with atomic_path(weights, overwrite=overwrite) as tmp:
        if weights.suffix == ".npy":
            np.save(tmp, samples.log_weights)
        else:
            np.savetxt(tmp, samples.log_weights, header="log importance weight")
    summary = diagnostics.summarize(traj, samples.energies, samples.log_weights, md_traj)
    summary.update(model=str(model_path), samples=str(out), weights=str(weights))
    w = diagnostics.normalized_weights(samples.log_weights)
    plots.plot_energy_histograms(summary_dir / "energy_histograms.png", samples.energies, w,
                                 md_energies)
    if md_traj is not None:
        summary["md_energy_kJ_mol"] = {"mean": float(np.nanmean(md_energies))}
        phi, psi = np.degrees(phi_psi(traj))
        phi_md, psi_md = np.degrees(phi_psi(md_traj))
        plots.plot_phi_psi_profiles(summary_dir / "phi_psi_profiles.png", phi, psi, w,
                                    phi_md, psi_md)
    with atomic_path(summary_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    if verbose:
        print(summary_text(summary))
        print(f"wrote {out}, {weights} and {summary_dir}/")
    return summary


def summary_text(summary: dict) -> str:
    """The headline numbers of a :func:`sample_to_files` summary, as lines of text."""
    lines = [f"samples: {summary['n_samples']}; finite energy "
             f"{summary['finite_energy_fraction']:.2%}; L-chirality "
             f"{summary['l_chirality_fraction']:.2%}; both {summary['finite_and_l_fraction']:.2%}",
             f"Kish ESS {summary['kish_ess']:.1f} ({summary['kish_ess_fraction']:.2e} of N)"]
    kl = summary.get("ramachandran_kl_nats")
    if kl:
        floor = summary["ramachandran_kl_floor_nats"]
        lines += [f"Ramachandran KL(MD || reweighted) full {kl['full']:.3f} nats; within basins "
                  f"{kl['within_basins']:.3f} (Phi<0 {kl['phi_negative']:.3f}, "
                  f"Phi>0 {kl['phi_positive']:.3f})",
                  f"  as many exact, unweighted samples per basin would give "
                  f"{floor['within_basins']:.3f} within basins (Phi<0 "
                  f"{floor['phi_negative']:.3f}, Phi>0 {floor['phi_positive']:.3f})"]
    return "\n".join(lines)
