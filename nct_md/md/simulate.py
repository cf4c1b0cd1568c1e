"""Langevin MD with OpenMM, written as mdtraj HDF5 with positions and velocities.

Public API
----------
simulate(pdb, out, ...)
    Run a simulation of any PDB the force field can parameterise (vacuum, OBC implicit solvent,
    or TIP3P water in a periodic box) and write ``out`` atomically; returns a summary dict.
wrap_atoms(positions, box)
    Every atom into the primary unit cell, as GROMACS ``-pbc atom`` writes them.

The names of force fields, solvents, constraints, ensembles and positions are those of
:mod:`nct_md.md.choices`; the System is built by :mod:`nct_md.md.system`; the integrator, the
platform (the fastest, measured, by default) and the checks of run settings are those of
:mod:`nct_md.md.langevin`, which metadynamics shares.

The integrator is ``LangevinMiddleIntegrator`` (friction 1/ps). Its velocities are leapfrog
half-step velocities, ``v(t - dt/2)``, which OpenMM documents as sampling the thermal ensemble
more accurately than on-step velocities. Settings are stored as JSON in the HDF5 root attribute
``nct_md_simulation`` (read back with :func:`nct_md.md.io.read_provenance`).

Explicit water: the solute is solvated (:func:`nct_md.md.system.solvate`), minimised, and
equilibrated at 1 bar (``MonteCarloBarostat``); production runs at the equilibrated volume (NVT)
or keeps the barostat (NPT). The file holds every atom (solute, water, ions; select the solute
later, e.g. ``not water and not element Na Cl``) and the unit cell of every frame.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import openmm
import tables
from openmm import app, unit
from tqdm.auto import tqdm

from nct_md.atomic import atomic_path
from nct_md.errors import NCTInputError, check_number
from nct_md.md.choices import ENSEMBLES, PERIODIC_SOLVENTS, POSITIONS
from nct_md.md.io import PROVENANCE_ATTR
from nct_md.md.langevin import (
    FRICTION_PER_PS,
    check_platform,
    choose_platform,
    frame_steps,
    langevin_integrator,
    platform_properties,
    time_step,
)
from nct_md.md.system import build_system, check_choices, forcefield_files, solvate
from nct_md.md.thermo import check_temperature, degrees_of_freedom, kinetic_temperature

__all__ = ["read_structure", "simulate", "wrap_atoms"]

PRESSURE_BAR = 1.0
#: steps between Monte Carlo volume moves of the barostat
BAROSTAT_EVERY = 25
#: frames buffered in memory between writes
_WRITE_EVERY = 200
_BLOWN_UP = ("the simulation blew up (NaN coordinates); use a smaller --timestep-fs or "
             "--constraints hbonds")


def read_structure(path: str | Path, what: str) -> app.PDBFile | app.PDBxFile:
    """Read a PDB or PDBx/mmCIF file with OpenMM; ``what`` names it in error messages."""
    path = Path(path)
    if not path.is_file():
        raise NCTInputError(f"{what} file '{path}' not found; check the path")
    suffix = path.suffix.lower()
    if suffix not in (".pdb", ".cif", ".pdbx"):
        raise NCTInputError(f"{what} '{path}' must be a .pdb or .cif file, got '{suffix}'")
    try:
        return app.PDBFile(str(path)) if suffix == ".pdb" else app.PDBxFile(str(path))
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise NCTInputError(f"cannot read {what} '{path}': {exc}; check the file") from exc


def _check_box_options(solvent: str, padding_nm: float, ensemble: str, positions: str) -> None:
    """Refuse a bad padding, ensemble or positions mode, or one that needs a periodic box."""
    if not np.isfinite(padding_nm) or padding_nm <= 0:
        raise NCTInputError(f"--padding-nm must be positive, got {padding_nm}")
    if ensemble not in ENSEMBLES:
        raise NCTInputError(f"unknown ensemble '{ensemble}'; use nvt or npt")
    if positions not in POSITIONS:
        raise NCTInputError(f"unknown positions mode '{positions}'; use whole or wrapped")
    periodic = ", ".join(PERIODIC_SOLVENTS)
    if solvent not in PERIODIC_SOLVENTS and ensemble == "npt":
        raise NCTInputError(f"--ensemble npt needs a periodic box but --solvent {solvent} has "
                            f"none; use --solvent {periodic} or --ensemble nvt")
    if solvent not in PERIODIC_SOLVENTS and positions == "wrapped":
        raise NCTInputError(f"--positions wrapped needs a periodic box but --solvent {solvent} "
                            f"has none; use --solvent {periodic} or --positions whole")


def _validate(forcefield: str, solvent: str, temperature: float, ns: float, save_every_ps: float,
              constraints: str, timestep_fs: float | None, platform: str | None,
              equilibrate_ps: float) -> tuple[float, int, int]:
    """Check the settings; return (time step fs, steps per frame, number of frames)."""
    check_choices(forcefield, solvent, constraints)
    check_temperature(temperature)
    check_number("ns", ns)
    check_number("save_every_ps", save_every_ps)
    if not np.isfinite(equilibrate_ps) or equilibrate_ps < 0:
        raise NCTInputError(f"--equilibrate-ps must be zero or positive, got {equilibrate_ps}")
    step = time_step(constraints, timestep_fs)
    steps_per_frame = frame_steps(save_every_ps, step)
    n_frames = round(ns * 1000.0 / save_every_ps)
    if n_frames < 1:
        raise NCTInputError(f"--ns {ns} gives no frame at --save-every-ps {save_every_ps}")
    check_platform(platform)
    return step, steps_per_frame, n_frames


def wrap_atoms(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Each atom translated by box vectors into the primary cell ``{f @ box : 0 <= f < 1}``.

    ``positions`` ``(N, 3)`` nm, ``box`` rows are the box vectors ``(3, 3)`` nm; returns
    ``(N, 3)`` nm. Molecules crossing a face come out broken, as GROMACS ``-pbc atom``.
    """
    fractional = positions @ np.linalg.inv(box)
    return (fractional - np.floor(fractional)) @ box


def _step(integrator: openmm.Integrator, n_steps: int) -> None:
    """Integrate, turning OpenMM failures into one-line :class:`NCTInputError` messages."""
    try:
        integrator.step(n_steps)
    except openmm.OpenMMException as exc:
        if "periodic box size has decreased" in str(exc):
            raise NCTInputError("the barostat shrank the box below twice the cutoff; use a "
                                "larger --padding-nm") from exc
        raise NCTInputError(_BLOWN_UP) from exc


def _append_frame(frames: dict[str, list], state: openmm.State, time_ps: float, n_dof: int,
                  positions: str) -> None:
    """Add one frame of ``state`` to the buffers (unit cell too when ``frames`` has one)."""
    xyz = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    if "cell_lengths" in frames:
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        xyz = wrap_atoms(xyz, box) if positions == "wrapped" else xyz
        *lengths, alpha, beta, gamma = md.utils.box_vectors_to_lengths_and_angles(*box)
        frames["cell_lengths"].append(lengths)
        frames["cell_angles"].append([alpha, beta, gamma])
    kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    frames["coordinates"].append(xyz)
    frames["velocities"].append(
        state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond))
    frames["time"].append(time_ps)
    frames["kineticEnergy"].append(kinetic)
    frames["potentialEnergy"].append(
        state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    frames["temperature"].append(kinetic_temperature(kinetic, n_dof))


def _write_frames(handle: md.formats.HDF5TrajectoryFile, frames: dict[str, list]) -> None:
    """Append the buffered frames to the file and empty the buffers."""
    if not frames["coordinates"]:
        return
    if not (np.isfinite(frames["coordinates"]).all() and np.isfinite(frames["velocities"]).all()):
        raise NCTInputError(_BLOWN_UP)
    handle.write(**{key: np.asarray(value, dtype=np.float32) for key, value in frames.items()})
    for value in frames.values():
        value.clear()


def simulate(pdb: str | Path, out: str | Path, forcefield: str = "amber99sbildn",
             solvent: str = "obc", temperature: float = 300.0, ns: float = 1.0,
             save_every_ps: float = 1.0, seed: int | None = None, constraints: str = "hbonds",
             timestep_fs: float | None = None, platform: str | None = None,
             start: str | Path | None = None, equilibrate_ps: float = 10.0,
             padding_nm: float = 1.0, ensemble: str = "nvt", positions: str = "whole",
             overwrite: bool = False, progress: bool = True) -> dict:
    """Run Langevin dynamics and write an mdtraj HDF5 trajectory with velocities.

    Parameters
    ----------
    pdb : path
        Structure with all hydrogens (.pdb or .cif) that ``forcefield`` can parameterise; its
        topology (plus water and ions with an explicit solvent) goes into the output.
    out : path
        Output ``.h5`` file (mdtraj HDF5: positions nm, velocities nm/ps, time ps, energies
        kJ/mol, unit cell nm and degrees with an explicit solvent). Written to a temporary file
        beside it and renamed when complete, so an interrupted run leaves no partial output;
        parent folders are created.
    forcefield : str
        A key of :data:`nct_md.md.choices.FORCEFIELDS`.
    solvent : {"obc", "vacuum", "tip3p"}
        OBC generalized-Born implicit solvent or vacuum (no cutoff either way), or TIP3P water
        with neutralising Na+/Cl- in a cubic periodic box (PME, cutoff
        :func:`nct_md.md.system.pme_cutoff`: 1 nm or less in small boxes, rigid water).
    temperature : float
        Bath temperature in K.
    ns : float
        Production length in ns (after minimisation and equilibration).
    save_every_ps : float
        Frame spacing in ps.
    seed : int, optional
        Seed for the initial velocities, the Langevin noise and the barostat; drawn at random
        (and reported) if None. Runs are reproducible only on the same platform and hardware.
    constraints : {"hbonds", "none"}
        Constrain bonds to hydrogen or nothing (water is rigid either way).
    timestep_fs : float, optional
        Integration step; default 2 fs with HBonds constraints, 1 fs without.
    platform : str, optional
        OpenMM platform name; default: the fastest, measured by :func:`choose_platform`.
    start : path, optional
        PDB with starting positions for the same atoms (e.g. a frame from another basin).
    equilibrate_ps : float
        Unsaved equilibration after minimisation, in ps; at 1 bar (NPT) with explicit water.
    padding_nm : float
        Explicit water: smallest solute-image distance in nm that sets the box size.
    ensemble : {"nvt", "npt"}
        Production at the equilibrated volume or at 1 bar (explicit water only).
    positions : {"whole", "wrapped"}
        Explicit water: molecules kept whole (each translated as a unit so that its centre is
        in the box) or every atom wrapped into the primary cell (GROMACS ``-pbc atom``).
    overwrite : bool
        Replace an existing ``out``.
    progress : bool
        Show a progress bar with ns/day on stderr.

    Returns
    -------
    dict
        Settings plus ``n_frames``, ``n_atoms``, ``platform``, ``platform_steps_per_s``,
        ``ns_per_day`` and ``wall_s``.
    """
    out = Path(out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise NCTInputError(f"--out must be an mdtraj HDF5 file ending in .h5, got '{out.name}'")
    if out.exists() and not overwrite:
        raise NCTInputError(f"output '{out}' exists; pass --overwrite or choose another --out")
    step_fs, steps_per_frame, n_frames = _validate(
        forcefield, solvent, temperature, ns, save_every_ps, constraints, timestep_fs, platform,
        equilibrate_ps)
    _check_box_options(solvent, padding_nm, ensemble, positions)
    structure = read_structure(pdb, "PDB")
    xyz = np.asarray(structure.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    if start is not None:
        xyz = np.asarray(read_structure(start, "start structure").getPositions(asNumpy=True)
                         .value_in_unit(unit.nanometer))
        if len(xyz) != structure.topology.getNumAtoms():
            raise NCTInputError(
                f"start structure '{start}' has {len(xyz)} atoms but the PDB has "
                f"{structure.topology.getNumAtoms()}; use a frame of the same molecule"
            )
    if not np.isfinite(xyz).all():
        raise NCTInputError("the structure has NaN or infinite coordinates; fix the PDB")
    periodic = solvent in PERIODIC_SOLVENTS
    if periodic:
        structure = solvate(structure.topology, xyz, forcefield, solvent, padding_nm)
        xyz = np.asarray(structure.getPositions().value_in_unit(unit.nanometer))
    system = build_system(structure, forcefield, solvent, constraints)
    seed = secrets.randbelow(2**31 - 1) + 1 if seed is None else int(seed)
    speeds = {}
    if platform is None:
        platform, speeds = choose_platform(system, xyz, temperature)

    if periodic:  # NPT equilibration; the barostat stays for NPT production
        barostat = openmm.MonteCarloBarostat(PRESSURE_BAR * unit.bar, temperature * unit.kelvin,
                                             BAROSTAT_EVERY)
        barostat.setRandomNumberSeed(seed)
        barostat_index = system.addForce(barostat)
    integrator = langevin_integrator(temperature, step_fs, seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform),
                             platform_properties(platform))
    context.setPositions(xyz * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    _step(integrator, round(equilibrate_ps * 1000.0 / step_fs))
    if periodic and ensemble == "nvt":
        system.removeForce(barostat_index)
        context.reinitialize(preserveState=True)

    n_dof = degrees_of_freedom(system)
    settings = {
        "pdb": str(pdb), "start": None if start is None else str(start),
        "forcefield": forcefield, "forcefield_files": forcefield_files(forcefield, solvent),
        "solvent": solvent, "temperature": float(temperature), "ns": float(ns),
        "save_every_ps": float(save_every_ps), "seed": seed, "constraints": constraints,
        "n_constraints": system.getNumConstraints(), "timestep_fs": step_fs,
        "friction_per_ps": FRICTION_PER_PS, "equilibrate_ps": float(equilibrate_ps),
        "integrator": "LangevinMiddleIntegrator (velocities at half steps)",
        "openmm_version": openmm.__version__, "platform": platform,
        "ensemble": ensemble, "positions": positions,
        **_box_settings(structure.topology, system, context, padding_nm if periodic else None),
    }
    frames = {key: [] for key in ("coordinates", "velocities", "time", "kineticEnergy",
                                  "potentialEnergy", "temperature")
              + (("cell_lengths", "cell_angles") if periodic else ())}
    start_wall = time.perf_counter()
    with atomic_path(out) as tmp:
        with md.formats.HDF5TrajectoryFile(str(tmp), "w", force_overwrite=True) as handle:
            handle.topology = md.Topology.from_openmm(structure.topology)
            handle.title = f"nct-md simulate {Path(pdb).name} {temperature} K {solvent}"
            handle.application = "nct-md"
            handle.program = "OpenMM"
            handle.programVersion = openmm.__version__
            handle.method = "LangevinMiddleIntegrator"
            with tqdm(total=n_frames, unit="frame", disable=not progress, desc="simulate") as bar:
                for k in range(n_frames):
                    _step(integrator, steps_per_frame)
                    state = context.getState(getPositions=True, getVelocities=True,
                                             getEnergy=True,
                                             enforcePeriodicBox=periodic and positions == "whole")
                    _append_frame(frames, state, (k + 1) * save_every_ps, n_dof, positions)
                    if len(frames["coordinates"]) >= _WRITE_EVERY:
                        _write_frames(handle, frames)
                    elapsed = time.perf_counter() - start_wall
                    bar.set_postfix(ns_per_day=f"{(k + 1) * save_every_ps / elapsed * 86.4:.0f}",
                                    refresh=False)
                    bar.update()
            _write_frames(handle, frames)
        wall = time.perf_counter() - start_wall
        _store_provenance(tmp, settings)
    return {**settings, "out": str(out), "n_frames": n_frames,
            "n_atoms": system.getNumParticles(), "platform_steps_per_s": speeds,
            "ns_per_day": ns * 86400.0 / wall, "wall_s": wall}


def _box_settings(topology: app.Topology, system: openmm.System, context: openmm.Context,
                  padding_nm: float | None) -> dict:
    """Provenance of the periodic box (``padding_nm`` None: no box, ``None`` values): padding
    nm, pressure bar and steps between the barostat's volume moves (equilibration, and NPT
    production), nonbonded method and cutoff nm, box vectors (rows, ``(3, 3)`` nm) after
    solvation and at the start of production, and the number of water molecules and ions."""
    residues = [residue.name for residue in topology.residues()]
    settings = {"padding_nm": padding_nm, "pressure_bar": None, "barostat_every_steps": None,
                "nonbonded_method": "NoCutoff", "cutoff_nm": None, "box_solvated_nm": None,
                "box_nm": None,
                "n_waters": residues.count("HOH"),
                "n_ions": residues.count("NA") + residues.count("CL")}
    if padding_nm is None:
        return settings
    nonbonded = next(force for force in system.getForces()
                     if isinstance(force, openmm.NonbondedForce))
    box = context.getState().getPeriodicBoxVectors(asNumpy=True)
    return {**settings, "padding_nm": float(padding_nm), "pressure_bar": PRESSURE_BAR,
            "barostat_every_steps": BAROSTAT_EVERY, "nonbonded_method": "PME",
            "cutoff_nm": nonbonded.getCutoffDistance().value_in_unit(unit.nanometer),
            "box_solvated_nm": np.asarray(topology.getPeriodicBoxVectors()
                                          .value_in_unit(unit.nanometer)).tolist(),
            "box_nm": box.value_in_unit(unit.nanometer).tolist()}


def _store_provenance(path: Path, settings: dict) -> None:
    """Write ``settings`` as JSON into the HDF5 root attribute read by ``io.read_provenance``."""
    with tables.open_file(str(path), "a") as handle:
        handle.root._v_attrs[PROVENANCE_ATTR] = json.dumps(settings)
