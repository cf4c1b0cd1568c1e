"""Well-tempered metadynamics with OpenMM (``openmm.app.Metadynamics``): along NCT CVs, or along
any CVs given as ``openmm.app.BiasVariable`` objects.

Public API
----------
run_metadynamics(model, pdb, out_dir, ...) -> dict
    Simulate a PDB (vacuum or OBC implicit solvent) with a bias on the model's slowest CVs
    (:func:`default_bias` grid and widths unless given) through :func:`run_well_tempered`.
run_well_tempered(variables, pdb, out_dir, temperature, ...) -> dict
    The same run for given bias variables (any CVs: an NCT model's, another learned module's
    through :func:`nct_md.export.openmm_force.bias_variables`, torsions of a
    ``CustomTorsionForce``) and write, in ``out_dir``: ``trajectory.h5`` (mdtraj HDF5, positions
    nm, time ps), ``colvar.csv`` (time, every CV, the bias energy, ``rbias`` (the bias less
    the Tiwary-Parrinello offset c(t), :mod:`nct_md.md.reweight`), the kinetic temperature,
    and Phi/Psi where the topology has them), ``bias/`` (OpenMM's periodically saved bias
    grids), ``free_energy.npy`` (the final free energy estimate on the grid, kJ/mol) and
    ``metad.json`` (settings, grid axes, summary).
default_bias(model, n_biased) -> (min_values, max_values, widths)
    Grid ranges and Gaussian widths (ps) derived from the latent frequencies.
bias_interval_for(bias_interval, pace, steps_per_frame) -> int
    The MD steps between evaluations of the bias: checked, or the default.
phi_sign_changes(phi) -> int
    Number of sign changes of a Phi time series (the slow transition of alanine dipeptide).

Multiple time steps
-------------------
The bias force holds the CVs, which cost several times a step of the physics (a learned CV is
evaluated from Python, with its gradient), so the bias is evaluated only every ``bias_interval``
MD steps, as an impulse (r-RESPA; Ferrarotti, Bottaro, Perez-Villa & Bussi, J. Chem. Theory
Comput. 11, 139 (2015), "Accurate multiple time step in biased molecular simulations"), by
``openmm.MTSLangevinIntegrator``: the physics every step, the bias kick ``bias_interval``
times as strong once per ``bias_interval`` steps. The cost per step falls from physics + CV to
physics + CV / ``bias_interval``; the price is the impulse's error, which grows with the
outer step ``bias_interval * dt`` against the fastest motion the bias force moves (it must stay
well below half the period of a bond vibration the CVs' gradients touch, ~10 fs for heavy-atom
bonds). On alanine dipeptide (2 fs steps) a static bias rising s kJ/mol per CV standard deviation
ran stably up to s ~ 45 every step, ~ 30 every 2 or 4 steps and ~ 20 every 5 steps (10
fs, near half the C=O period); metadynamics grids of these runs reach ~ 10-20 where the system
goes. ``bias_interval=1`` is plain ``LangevinMiddleIntegrator`` dynamics.

The kinetic energy OpenMM reports for the impulse integrator reads low with constrained bonds,
so ``temperature_k`` of runs with ``bias_interval > 1`` reads about 4 % under the thermostat
while the configurations are sampled as by plain Langevin dynamics: on alanine dipeptide
(H-bonds constrained, 2 fs, 300 K, no bias) 288.0 +- 2.1 K against 299.4 +- 1.9 K, at mean
potential energies of -74.2 +- 0.5 and -74.0 +- 0.4 kJ/mol (``python -m bench.mts_temperature``,
``bench/mts_temperature.json``).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import mdtraj as md
import numpy as np
import openmm
from openmm import app, unit
from tqdm.auto import tqdm

from nct_md.atomic import atomic_path
from nct_md.cv.reference import committed_transitions, phi_psi
from nct_md.errors import NCTInputError, check_integer, check_number
from nct_md.export.openmm_force import bias_variables
from nct_md.export.plumed import default_widths
from nct_md.export.torchscript import cv_module
from nct_md.md.langevin import (
    check_platform,
    choose_platform,
    frame_steps,
    langevin_integrator,
    mts_langevin_integrator,
    platform_properties,
    time_step,
)
from nct_md.md.reweight import bias_offset
from nct_md.md.simulate import read_structure
from nct_md.md.system import build_system, check_choices
from nct_md.md.thermo import check_temperature, degrees_of_freedom, kinetic_temperature
from nct_md.model import NCTModel

#: Grid half-range of each biased CV in units of its latent standard deviation ``1 / w``.
GRID_HALF_RANGE = 6.0
#: Largest default number of MD steps between evaluations of the bias (:func:`bias_interval_for`)
DEFAULT_BIAS_INTERVAL = 5
#: Largest mean kinetic temperature of a run above the thermostat's, as a fraction of it,
#: before :func:`run_well_tempered` warns that the bias heats the system
HEATING_LIMIT = 0.1
#: Output files of a run, in ``out_dir`` (besides the folder ``bias/``).
OUTPUTS = ("trajectory.h5", "colvar.csv", "free_energy.npy", "metad.json")


def default_bias(model: NCTModel, n_biased: int
                 ) -> tuple[list[float], list[float], list[float]]:
    """Grid ``(min_values, max_values, widths)`` in ps for the model's first ``n_biased`` CVs.

    CV ``k`` has standard deviation ``1 / w_k`` under the latent density (model units, kT = 1;
    :meth:`~nct_md.model.NCTModel.cv_frequencies`); the grid spans ``+-6 / w_k`` and the
    Gaussians are :func:`default_widths` wide.
    """
    w = model.cv_frequencies(n_biased)
    half = [GRID_HALF_RANGE / float(x) for x in w]
    return [-h for h in half], half, default_widths(w)


def phi_sign_changes(phi: np.ndarray) -> int:
    """Sign changes of Phi (radians) between consecutive frames, shape ``(n_frames,)``."""
    signs = np.sign(np.asarray(phi))
    return int(np.count_nonzero(signs[1:] * signs[:-1] < 0))


def check_bias_settings(ns: float, save_every_ps: float, pace: int, n_biased: int,
                    bias_factor: float, height: float) -> None:
    """Refuse bad run lengths (ns, ps), bias settings (pace in steps, bias factor, height in
    kJ/mol) and numbers of biased variables; the rest is checked by :mod:`nct_md.md`."""
    for name, value in (("ns", ns), ("save_every_ps", save_every_ps), ("height", height)):
        check_number(name, value)
    if not bias_factor > 1:
        raise NCTInputError(f"--bias-factor must be > 1, got {bias_factor}")
    if pace < 1:
        raise NCTInputError(f"--pace must be a positive number of steps, got {pace}")
    if not 1 <= n_biased <= 3:
        raise NCTInputError(f"bias 1, 2 or 3 variables, got {n_biased}")


def bias_interval_for(bias_interval: int | None, pace: int, steps_per_frame: int) -> int:
    """MD steps between evaluations of the bias force (see "Multiple time steps" above).

    ``bias_interval`` must divide ``pace`` (steps between Gaussians) and ``steps_per_frame``
    (steps between saved frames), so that Gaussians and frames fall on evaluated steps; None
    gives the largest interval up to :data:`DEFAULT_BIAS_INTERVAL` that divides both (5 with the
    default pace of 250 steps and 1 ps frames of 2 fs steps; 1 with ``pace=1``).
    """
    if bias_interval is None:
        return max(n for n in range(1, DEFAULT_BIAS_INTERVAL + 1)
                   if pace % n == 0 and steps_per_frame % n == 0)
    check_integer("bias_interval", bias_interval)
    if pace % bias_interval or steps_per_frame % bias_interval:
        raise NCTInputError(f"--bias-interval {bias_interval} must divide --pace ({pace} steps) "
                            f"and the {steps_per_frame} steps between frames (--save-every-ps)")
    return bias_interval


def _torsion_columns(traj: md.Trajectory) -> tuple[list[str], list[np.ndarray], dict]:
    """COLVAR columns ``phi_rad``, ``psi_rad`` (:func:`nct_md.cv.reference.phi_psi`) and their
    summary, or nothing when the topology has no residue with both torsions."""
    try:
        phi, psi = phi_psi(traj)
    except NCTInputError:
        return [], [], {}
    summary = {"phi_sign_changes": phi_sign_changes(phi),
               "phi_committed_transitions": committed_transitions(phi),
               "phi_positive_fraction": float(np.mean(phi > 0))}
    return ["phi_rad", "psi_rad"], [phi, psi], summary


def run_metadynamics(model: NCTModel, pdb: str | Path, out_dir: str | Path, ns: float = 1.0,
                     n_biased: int = 2, temperature: float | None = None,
                     bias_factor: float = 10.0, height: float = 2.0, pace: int = 250,
                     widths: list[float] | None = None, forcefield: str = "amber99sbildn",
                     solvent: str = "obc", constraints: str = "hbonds",
                     timestep_fs: float | None = None, save_every_ps: float = 1.0,
                     seed: int = 0, platform: str | None = "Reference",
                     bias_interval: int | None = None, progress: bool = True) -> dict:
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
    forcefield, solvent, constraints, timestep_fs, save_every_ps, seed, platform,
    bias_interval, progress :
        As in :func:`run_well_tempered`.

    Returns
    -------
    dict
        :func:`run_well_tempered`'s summary.
    """
    temperature = float(model.info.temperature if temperature is None else temperature)
    if not 1 <= n_biased <= min(3, model.preprocessing.n_dof):
        raise NCTInputError(f"--n-biased must be 1, 2 or 3, got {n_biased}")
    structure = read_structure(pdb, "PDB")
    model.select_atoms(md.Topology.from_openmm(structure.topology))  # raises if no match
    lows, highs, default_w = default_bias(model, n_biased)
    widths = default_w if widths is None else [float(w) for w in widths]
    if len(widths) != n_biased or min(widths) <= 0:
        raise NCTInputError(f"give {n_biased} positive --widths, got {widths}")
    variables = bias_variables(cv_module(model, n_cvs=n_biased), lows, highs, widths)
    return run_well_tempered(variables, pdb, out_dir, temperature, ns=ns,
                             bias_factor=bias_factor, height=height, pace=pace,
                             forcefield=forcefield, solvent=solvent, constraints=constraints,
                             timestep_fs=timestep_fs, save_every_ps=save_every_ps, seed=seed,
                             platform=platform, bias_interval=bias_interval,
                             progress=progress)


def _output_paths(out_dir: Path) -> tuple[dict[str, Path], Path]:
    """The output files and the bias folder of ``out_dir``, refused when any exists (OpenMM
    reads every bias file in the folder as another walker's: start from an empty one)."""
    outputs = {name: out_dir / name for name in OUTPUTS}
    bias_dir = out_dir / "bias"
    for path in (*outputs.values(), bias_dir):
        if path.exists():
            raise NCTInputError(f"output '{path}' exists; choose another folder")
    return outputs, bias_dir


def run_well_tempered(variables: Sequence[app.BiasVariable], pdb: str | Path,
                      out_dir: str | Path, temperature: float, ns: float = 1.0,
                      bias_factor: float = 10.0, height: float = 2.0, pace: int = 250,
                      forcefield: str = "amber99sbildn", solvent: str = "obc",
                      constraints: str = "hbonds", timestep_fs: float | None = None,
                      save_every_ps: float = 1.0, seed: int = 0,
                      platform: str | None = "Reference", bias_interval: int | None = None,
                      progress: bool = True) -> dict:
    """Well-tempered metadynamics of a PDB along given bias variables.

    Parameters
    ----------
    variables : list of openmm.app.BiasVariable
        1 to 3 variables whose forces act on the PDB's particles (grid ranges, widths and
        periodicity in the CVs' own units); variable ``j`` is column ``cv{j+1}`` of
        ``colvar.csv``. Their forces are added to a fresh System: use them for one run.
    pdb : path
        Structure with all hydrogens that ``forcefield`` parameterises.
    out_dir : path
        Output folder (created; existing outputs in it are not overwritten).
    temperature : float
        K.
    ns : float
        Simulated time in ns (no separate equilibration: the structure is minimised first).
    bias_factor, height, pace :
        Well-tempering factor (> 1), initial Gaussian height (kJ/mol), steps between
        Gaussians.
    forcefield, solvent, constraints, timestep_fs, save_every_ps, seed :
        As in ``nct-md simulate``, with the same checks, System and integrator
        (:mod:`nct_md.md.system`, :mod:`nct_md.md.langevin`): time step by default 2 fs with
        HBonds constraints, 1 fs without; ``LangevinMiddleIntegrator`` with friction 1/ps. The
        solvent is obc or vacuum (no periodic box).
    platform : str, optional
        OpenMM platform; None picks the fastest, measured as ``nct-md simulate`` does.
    bias_interval : int, optional
        MD steps between evaluations of the bias force and its CVs (multiple time steps, see
        the module notes: Ferrarotti et al. 2015): the physics is integrated every step, the
        bias applied as an impulse every ``bias_interval`` steps by
        ``openmm.MTSLangevinIntegrator``. Faster by up to that factor on the CVs' cost, at the
        price of the impulse's error; 1 runs the plain ``LangevinMiddleIntegrator`` of earlier
        versions (same numbers for the same seed). It must divide ``pace`` and the steps per
        frame; default :func:`bias_interval_for` (5 with the default settings). ``pace``,
        frame spacing and bias saving still count MD steps of ``timestep_fs``.
    progress : bool
        tqdm progress bar.

    Returns
    -------
    dict
        Settings (the grid as ``widths_ps``, ``grid_min_ps``, ``grid_max_ps``, named after
        the NCT CVs' unit but in the CVs' own units) plus ``n_frames``, ``ns_per_day``,
        ``wall_s``, ``phi_sign_changes`` (when the topology has a Phi torsion),
        ``mean_temperature_k`` (mean kinetic temperature of the saved frames, K) and
        ``outputs`` (paths written); the same dict is written to ``metad.json``. A mean
        temperature more than :data:`HEATING_LIMIT` above ``temperature`` means the bias
        force pumps energy in (too steep for ``bias_interval``): a warning says so.
    """
    temperature = float(temperature)
    check_temperature(temperature)
    check_choices(forcefield, solvent, constraints, periodic=False)
    timestep_fs = time_step(constraints, timestep_fs)
    check_bias_settings(ns, save_every_ps, pace, len(variables), bias_factor, height)
    check_platform(platform)
    steps_per_frame = frame_steps(save_every_ps, timestep_fs)
    bias_interval = bias_interval_for(bias_interval, pace, steps_per_frame)
    structure = read_structure(pdb, "PDB")
    out_dir = Path(out_dir)
    outputs, bias_dir = _output_paths(out_dir)
    system = build_system(structure, forcefield, solvent, constraints)
    if platform is None:
        xyz_nm = np.asarray(structure.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        platform, _ = choose_platform(system, xyz_nm, temperature)
    bias_dir.mkdir(parents=True)
    n_frames = max(1, round(ns * 1000.0 / save_every_ps))
    save_every = pace * max(1, (steps_per_frame * n_frames) // (20 * pace))
    # OpenMM counts integrator steps, each bias_interval MD steps long
    meta = app.Metadynamics(system, list(variables), temperature * unit.kelvin, bias_factor,
                            height * unit.kilojoule_per_mole, pace // bias_interval,
                            save_every // bias_interval, str(bias_dir))
    bias_group = system.getForce(system.getNumForces() - 1).getForceGroup()
    if bias_interval == 1:
        integrator = langevin_integrator(temperature, timestep_fs, seed)
    else:
        fast_groups = {force.getForceGroup() for force in system.getForces()} - {bias_group}
        integrator = mts_langevin_integrator(temperature, timestep_fs, seed, bias_group,
                                             fast_groups, bias_interval)
    simulation = app.Simulation(structure.topology, system, integrator,
                                openmm.Platform.getPlatformByName(platform),
                                platform_properties(platform))
    simulation.context.setPositions(structure.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)

    xyz, rows = [], []
    n_dof = degrees_of_freedom(system)
    periodic = [v.periodic for v in variables]
    start = time.perf_counter()
    for k in tqdm(range(n_frames), disable=not progress, desc="metad", unit="frame"):
        meta.step(simulation, steps_per_frame // bias_interval)
        state = simulation.context.getState(getPositions=True, getEnergy=True,
                                            groups={bias_group})
        xyz.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        bias = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        grid = -(bias_factor - 1.0) / bias_factor * meta.getFreeEnergy().value_in_unit(
            unit.kilojoule_per_mole)
        rows.append([(k + 1) * save_every_ps, *meta.getCollectiveVariables(simulation), bias,
                     bias - bias_offset(grid, temperature, bias_factor, periodic),
                     kinetic_temperature(state.getKineticEnergy().value_in_unit(
                         unit.kilojoule_per_mole), n_dof)])
    wall = time.perf_counter() - start

    traj = md.Trajectory(np.asarray(xyz, dtype=np.float32),
                         md.Topology.from_openmm(structure.topology),
                         time=np.asarray([r[0] for r in rows]))
    columns = ["time_ps", *[f"cv{j + 1}" for j in range(len(variables))], "bias_kjmol",
               "rbias_kjmol", "temperature_k"]
    torsion_names, torsions, summary = _torsion_columns(traj)
    columns += torsion_names
    table = np.column_stack([np.asarray(rows), *torsions])

    with atomic_path(outputs["trajectory.h5"], overwrite=False) as tmp:
        traj.save_hdf5(str(tmp))
    with atomic_path(outputs["colvar.csv"], overwrite=False) as tmp:
        np.savetxt(tmp, table, delimiter=",", header=",".join(columns), comments="", fmt="%.8g")
    with atomic_path(outputs["free_energy.npy"], overwrite=False) as tmp:
        np.save(tmp, meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole))
    settings = {
        "ns": float(ns), "n_biased": len(variables), "temperature": temperature,
        "bias_factor": float(bias_factor), "height_kjmol": float(height), "pace_steps": pace,
        "widths_ps": [v.biasWidth for v in variables],
        "grid_min_ps": [v.minValue for v in variables],
        "grid_max_ps": [v.maxValue for v in variables],
        "grid_points": [v.gridWidth for v in variables], "forcefield": forcefield,
        "solvent": solvent, "constraints": constraints, "timestep_fs": float(timestep_fs),
        "save_every_ps": float(save_every_ps), "seed": seed, "platform": platform,
        "bias_interval": bias_interval,
        "free_energy_axes": "axis i (reversed CV order, OpenMM's layout) spans grid_min..grid_max",
    }
    if any(periodic):
        settings["periodic"] = periodic
    result = {**settings, **summary, "n_frames": n_frames,
              "mean_temperature_k": float(table[:, columns.index("temperature_k")].mean()),
              "wall_s": wall,
              "ns_per_day": ns * 86400.0 / wall,
              "outputs": {**{k: str(v) for k, v in outputs.items()}, "bias": str(bias_dir)}}
    with atomic_path(outputs["metad.json"], overwrite=False) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    if result["mean_temperature_k"] > (1.0 + HEATING_LIMIT) * temperature:
        warnings.warn(f"the biased run averaged {result['mean_temperature_k']:.0f} K against "
                      f"{temperature:.0f} K: the bias heats the system; use --bias-interval 1 "
                      "or wider Gaussians", RuntimeWarning, stacklevel=2)
    return result
