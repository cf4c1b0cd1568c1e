"""Well-tempered metadynamics along NCT CVs with OpenMM (``openmm.app.Metadynamics``).

Public API
----------
run_metadynamics(model, pdb, out_dir, ...) -> dict
    Simulate a PDB (vacuum or OBC implicit solvent) with a bias on the model's slowest CVs and
    write, in ``out_dir``: ``trajectory.h5`` (mdtraj HDF5, positions nm, time ps),
    ``colvar.csv`` (time, every CV, the bias energy, and Phi/Psi where the topology has them),
    ``bias/`` (OpenMM's periodically saved bias grids), ``free_energy.npy`` (the final free
    energy estimate on the grid, kJ/mol) and ``metad.json`` (settings, grid axes, summary).
default_bias(model, n_biased) -> (min_values, max_values, widths)
    Grid ranges and Gaussian widths (ps) derived from the latent frequencies.
phi_sign_changes(phi) -> int
    Number of sign changes of a Phi time series (the slow transition of alanine dipeptide).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import openmm
from openmm import app, unit
from tqdm.auto import tqdm

from nct_md.atomic import atomic_path
from nct_md.errors import NCTInputError
from nct_md.export.openmm_force import bias_variables
from nct_md.export.plumed import default_widths
from nct_md.export.torchscript import cv_module
from nct_md.md.phase import check_temperature
from nct_md.md.simulate import (
    CONSTRAINTS,
    DEFAULT_TIMESTEP_FS,
    FORCEFIELDS,
    FRICTION_PER_PS,
    available_platforms,
)
from nct_md.model import NCTModel

#: Grid half-range of each biased CV in units of its latent standard deviation ``1 / w``.
GRID_HALF_RANGE = 6.0


def default_bias(model: NCTModel, n_biased: int
                 ) -> tuple[list[float], list[float], list[float]]:
    """Grid ``(min_values, max_values, widths)`` in ps for the ``n_biased`` slowest CVs.

    The latent coordinate ``Q_k`` has standard deviation ``1 / w_k`` (model units, kT = 1);
    the grid spans ``+-6 / w_k`` and the Gaussians are :func:`default_widths` wide.
    """
    w = model.frequencies[:n_biased]
    half = [GRID_HALF_RANGE / float(x) for x in w]
    return [-h for h in half], half, default_widths(w)


def phi_sign_changes(phi: np.ndarray) -> int:
    """Sign changes of Phi (radians) between consecutive frames, shape ``(n_frames,)``."""
    signs = np.sign(np.asarray(phi))
    return int(np.count_nonzero(signs[1:] * signs[:-1] < 0))


def _system(pdb: app.PDBFile, forcefield: str, solvent: str, constraints: str
            ) -> openmm.System:
    if forcefield not in FORCEFIELDS:
        raise NCTInputError(f"unknown force field '{forcefield}'; use one of "
                            f"{', '.join(FORCEFIELDS)}")
    if solvent not in ("obc", "vacuum"):
        raise NCTInputError(f"unknown solvent '{solvent}'; use obc or vacuum")
    if constraints not in CONSTRAINTS:
        raise NCTInputError(f"unknown constraints '{constraints}'; use hbonds or none")
    files = FORCEFIELDS[forcefield] if solvent == "obc" else FORCEFIELDS[forcefield][:1]
    try:
        return app.ForceField(*files).createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                                   constraints=CONSTRAINTS[constraints])
    except ValueError as exc:
        raise NCTInputError(f"{forcefield} cannot parameterise the PDB "
                            f"({str(exc).splitlines()[0]})") from None


def _read_pdb(path: str | Path, model: NCTModel) -> app.PDBFile:
    path = Path(path)
    if not path.is_file():
        raise NCTInputError(f"PDB file '{path}' not found; check the path")
    try:
        pdb = app.PDBFile(str(path))
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise NCTInputError(f"cannot read PDB '{path}': {exc}; check the file") from None
    model.select_atoms(md.Topology.from_openmm(pdb.topology))  # raises if it does not match
    return pdb


def _check_settings(ns: float, save_every_ps: float, timestep_fs: float, pace: int,
                    n_biased: int, model: NCTModel, bias_factor: float, height: float,
                    platform: str) -> int:
    """Validate; return steps per saved frame."""
    for name, value in (("ns", ns), ("save-every-ps", save_every_ps),
                        ("timestep-fs", timestep_fs), ("height", height)):
        if not np.isfinite(value) or value <= 0:
            raise NCTInputError(f"--{name} must be positive, got {value}")
    if not bias_factor > 1:
        raise NCTInputError(f"--bias-factor must be > 1, got {bias_factor}")
    if pace < 1:
        raise NCTInputError(f"--pace must be a positive number of steps, got {pace}")
    if not 1 <= n_biased <= min(3, model.preprocessing.n_dof):
        raise NCTInputError(f"--n-biased must be 1, 2 or 3, got {n_biased}")
    if platform not in available_platforms():
        raise NCTInputError(f"OpenMM platform '{platform}' is not available; use one of "
                            f"{', '.join(available_platforms())}")
    steps = save_every_ps * 1000.0 / timestep_fs
    if abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
        raise NCTInputError(f"--save-every-ps {save_every_ps} is not a whole number of "
                            f"{timestep_fs} fs steps")
    return round(steps)


def run_metadynamics(model: NCTModel, pdb: str | Path, out_dir: str | Path, ns: float = 1.0,
                     n_biased: int = 2, temperature: float | None = None,
                     bias_factor: float = 10.0, height: float = 2.0, pace: int = 250,
                     widths: list[float] | None = None, forcefield: str = "amber99sbildn",
                     solvent: str = "obc", constraints: str = "hbonds",
                     timestep_fs: float | None = None, save_every_ps: float = 1.0,
                     seed: int = 0, platform: str = "Reference", progress: bool = True) -> dict:
    """Well-tempered metadynamics biased along the ``n_biased`` slowest CVs of ``model``.

    Parameters
    ----------
    model : NCTModel
        Configuration-separable model trained on (a selection of) this PDB's atoms.
    pdb : path
        Structure with all hydrogens; its atoms must match the model's topology.
    out_dir : path
        Output folder (created; existing outputs in it are not overwritten).
    ns : float
        Simulated time in ns (no separate equilibration: the structure is minimised first).
    n_biased : int
        Number of CVs biased (1 to 3).
    temperature : float, optional
        K; default the model's.
    bias_factor, height, pace :
        Well-tempering factor (> 1), initial Gaussian height (kJ/mol), steps between
        Gaussians.
    widths : list of float, optional
        Gaussian widths (ps); default :func:`default_bias`.
    forcefield, solvent, constraints, timestep_fs, save_every_ps, seed, platform :
        As in ``nct-md simulate`` (time step by default 2 fs with HBonds constraints, 1 fs
        without); ``LangevinMiddleIntegrator`` with friction 1/ps.
    progress : bool
        tqdm progress bar.

    Returns
    -------
    dict
        Settings plus ``n_frames``, ``ns_per_day``, ``wall_s``, ``phi_sign_changes`` (when the
        topology has a Phi torsion) and ``outputs`` (paths written).
    """
    temperature = float(model.metadata["temperature"] if temperature is None else temperature)
    check_temperature(temperature)
    if timestep_fs is None:
        timestep_fs = DEFAULT_TIMESTEP_FS.get(constraints, 1.0)
    steps_per_frame = _check_settings(ns, save_every_ps, timestep_fs, pace, n_biased, model,
                                      bias_factor, height, platform)
    structure = _read_pdb(pdb, model)
    out_dir = Path(out_dir)
    outputs = {name: out_dir / name for name in ("trajectory.h5", "colvar.csv",
                                                 "free_energy.npy", "metad.json")}
    bias_dir = out_dir / "bias"
    # OpenMM reads every bias file in bias_dir as another walker's: start from an empty one
    for path in (*outputs.values(), bias_dir):
        if path.exists():
            raise NCTInputError(f"output '{path}' exists; choose another folder")
    system = _system(structure, forcefield, solvent, constraints)
    lows, highs, default_w = default_bias(model, n_biased)
    widths = default_w if widths is None else [float(w) for w in widths]
    if len(widths) != n_biased or min(widths) <= 0:
        raise NCTInputError(f"give {n_biased} positive --widths, got {widths}")
    bias_dir.mkdir(parents=True)
    cvs = cv_module(model, n_cvs=n_biased)
    variables = bias_variables(cvs, lows, highs, widths)
    n_frames = max(1, round(ns * 1000.0 / save_every_ps))
    save_every = pace * max(1, (steps_per_frame * n_frames) // (20 * pace))
    meta = app.Metadynamics(system, variables, temperature * unit.kelvin, bias_factor,
                            height * unit.kilojoule_per_mole, pace, save_every, str(bias_dir))
    bias_group = system.getForce(system.getNumForces() - 1).getForceGroup()
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin,
                                                 FRICTION_PER_PS / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    simulation = app.Simulation(structure.topology, system, integrator,
                                openmm.Platform.getPlatformByName(platform))
    simulation.context.setPositions(structure.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)

    xyz, rows = [], []
    start = time.perf_counter()
    for k in tqdm(range(n_frames), disable=not progress, desc="metad", unit="frame"):
        meta.step(simulation, steps_per_frame)
        state = simulation.context.getState(getPositions=True, getEnergy=True,
                                            groups={bias_group})
        xyz.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        rows.append([(k + 1) * save_every_ps, *meta.getCollectiveVariables(simulation),
                     state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)])
    wall = time.perf_counter() - start

    traj = md.Trajectory(np.asarray(xyz, dtype=np.float32),
                         md.Topology.from_openmm(structure.topology),
                         time=np.asarray([r[0] for r in rows]))
    columns = ["time_ps", *[f"cv{j + 1}" for j in range(len(rows[0]) - 2)], "bias_kjmol"]
    table = np.asarray(rows)
    summary: dict = {}
    for name, compute in (("phi", md.compute_phi), ("psi", md.compute_psi)):
        indices, angles = compute(traj)
        if len(indices):
            columns.append(f"{name}_rad")
            table = np.column_stack([table, angles[:, 0]])
            if name == "phi":
                summary["phi_sign_changes"] = phi_sign_changes(angles[:, 0])
                summary["phi_positive_fraction"] = float(np.mean(angles[:, 0] > 0))

    with atomic_path(outputs["trajectory.h5"], overwrite=False) as tmp:
        traj.save_hdf5(str(tmp))
    with atomic_path(outputs["colvar.csv"], overwrite=False) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=",".join(columns), comments="", fmt="%.8g")
    with atomic_path(outputs["free_energy.npy"], overwrite=False) as tmp:
        np.save(tmp, meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole))
    settings = {
        "ns": float(ns), "n_biased": n_biased, "temperature": temperature,
        "bias_factor": float(bias_factor), "height_kjmol": float(height), "pace_steps": pace,
        "widths_ps": widths, "grid_min_ps": lows, "grid_max_ps": highs,
        "grid_points": [v.gridWidth for v in variables], "forcefield": forcefield,
        "solvent": solvent, "constraints": constraints, "timestep_fs": float(timestep_fs),
        "save_every_ps": float(save_every_ps), "seed": seed, "platform": platform,
        "free_energy_axes": "axis i (reversed CV order, OpenMM's layout) spans grid_min..grid_max",
    }
    result = {**settings, **summary, "n_frames": n_frames, "wall_s": wall,
              "ns_per_day": ns * 86400.0 / wall,
              "outputs": {**{k: str(v) for k, v in outputs.items()}, "bias": str(bias_dir)}}
    with atomic_path(outputs["metad.json"], overwrite=False) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result
