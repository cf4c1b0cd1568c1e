"""Langevin MD with OpenMM, written as mdtraj HDF5 with positions and velocities.

Public API
----------
simulate(pdb, out, ...)
    Run a simulation of any PDB the force field can parameterise (vacuum or OBC implicit
    solvent) and write ``out`` atomically; returns a summary dict.
choose_platform(system, positions, ...)
    Time a short run on every available OpenMM platform and return the fastest.
FORCEFIELDS
    Force-field names and their (protein, OBC implicit solvent) OpenMM XML files.

The integrator is ``LangevinMiddleIntegrator`` (friction 1/ps). Its velocities are leapfrog
half-step velocities, ``v(t - dt/2)``, which OpenMM documents as sampling the thermal ensemble
more accurately than on-step velocities. Settings are stored as JSON in the HDF5 root attribute
``nct_md_simulation`` (read back with :func:`nct_md.md.io.read_provenance`).
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
from nct_md.errors import NCTInputError
from nct_md.md.io import PROVENANCE_ATTR
from nct_md.md.phase import KB, check_temperature

#: name -> (force-field XML, matching OBC implicit-solvent XML)
FORCEFIELDS = {
    "amber99sbildn": ("amber99sbildn.xml", "amber99_obc.xml"),
    "amber99sb": ("amber99sb.xml", "amber99_obc.xml"),
    "amber96": ("amber96.xml", "amber96_obc.xml"),
    "amber03": ("amber03.xml", "amber03_obc.xml"),
    "amber10": ("amber10.xml", "amber10_obc.xml"),
    "amber14": ("amber14-all.xml", "implicit/obc2.xml"),
}
SOLVENTS = ("obc", "vacuum")
CONSTRAINTS = {"hbonds": app.HBonds, "none": None}
#: default time step in fs for each constraint choice
DEFAULT_TIMESTEP_FS = {"hbonds": 2.0, "none": 1.0}
FRICTION_PER_PS = 1.0
#: platforms tried by the automatic choice, and the largest system Reference is timed on
_CANDIDATES = ("Reference", "CPU", "CUDA", "OpenCL", "HIP")
_REFERENCE_MAX_ATOMS = 5000
#: frames buffered in memory between writes
_WRITE_EVERY = 200
_BLOWN_UP = ("the simulation blew up (NaN coordinates); use a smaller --timestep-fs or "
             "--constraints hbonds")


def available_platforms() -> list[str]:
    """Names of the OpenMM platforms this installation provides."""
    return [openmm.Platform.getPlatform(i).getName()
            for i in range(openmm.Platform.getNumPlatforms())]


def _platform_properties(name: str) -> dict:
    return {"Threads": "1"} if name == "CPU" else {}


def choose_platform(system: openmm.System, positions: np.ndarray, temperature: float,
                    trial_s: float = 0.3) -> tuple[str, dict[str, float]]:
    """Fastest platform for this system, measured by timing a short run on each.

    Parameters
    ----------
    system : openmm.System
    positions : ndarray, shape ``(N, 3)``, nm
    temperature : float, K
    trial_s : float
        Seconds of stepping timed per platform (after a warm-up).

    Returns
    -------
    (str, dict)
        The fastest platform's name and the measured steps per second of every platform that
        ran. The CPU platform is timed with one thread (faster than two for small molecules).
    """
    speeds = {}
    for name in _CANDIDATES:
        if name not in available_platforms():
            continue
        if name == "Reference" and system.getNumParticles() > _REFERENCE_MAX_ATOMS:
            continue
        # a tiny step keeps an unminimised structure stable; the cost per step is the same
        integrator = openmm.LangevinMiddleIntegrator(temperature, FRICTION_PER_PS, 1e-4)
        try:
            context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(name),
                                     _platform_properties(name))
            context.setPositions(positions)
            integrator.step(10)
            steps, start = 0, time.perf_counter()
            while time.perf_counter() - start < trial_s:
                integrator.step(20)
                steps += 20
            context.getState(getEnergy=True)
            speeds[name] = steps / (time.perf_counter() - start)
        except openmm.OpenMMException:
            continue
        finally:
            del integrator
    if not speeds:
        raise NCTInputError("no OpenMM platform could run this system; check the OpenMM install")
    return max(speeds, key=speeds.get), speeds


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


def _validate(forcefield: str, solvent: str, temperature: float, ns: float, save_every_ps: float,
              constraints: str, timestep_fs: float | None, platform: str | None,
              equilibrate_ps: float) -> tuple[float, int, int]:
    """Check the settings; return (time step fs, steps per frame, number of frames)."""
    if forcefield not in FORCEFIELDS:
        raise NCTInputError(
            f"unknown force field '{forcefield}'; use one of {', '.join(FORCEFIELDS)}"
        )
    if solvent not in SOLVENTS:
        raise NCTInputError(f"unknown solvent '{solvent}'; use obc or vacuum")
    if constraints not in CONSTRAINTS:
        raise NCTInputError(f"unknown constraints '{constraints}'; use hbonds or none")
    check_temperature(temperature)
    for name, value in (("ns", ns), ("save-every-ps", save_every_ps)):
        if not np.isfinite(value) or value <= 0:
            raise NCTInputError(f"--{name} must be positive, got {value}")
    if not np.isfinite(equilibrate_ps) or equilibrate_ps < 0:
        raise NCTInputError(f"--equilibrate-ps must be zero or positive, got {equilibrate_ps}")
    step = DEFAULT_TIMESTEP_FS[constraints] if timestep_fs is None else float(timestep_fs)
    if not np.isfinite(step) or step <= 0 or step > 5:
        raise NCTInputError(f"--timestep-fs must be in (0, 5] fs, got {timestep_fs}")
    steps_per_frame = save_every_ps * 1000.0 / step
    if abs(steps_per_frame - round(steps_per_frame)) > 1e-6 or round(steps_per_frame) < 1:
        raise NCTInputError(
            f"--save-every-ps {save_every_ps} is not a whole number of {step} fs steps; "
            "choose a multiple of the time step"
        )
    n_frames = round(ns * 1000.0 / save_every_ps)
    if n_frames < 1:
        raise NCTInputError(f"--ns {ns} gives no frame at --save-every-ps {save_every_ps}")
    if platform is not None and platform not in available_platforms():
        raise NCTInputError(
            f"OpenMM platform '{platform}' is not available; use one of "
            f"{', '.join(available_platforms())} or leave it out to pick the fastest"
        )
    return step, round(steps_per_frame), n_frames


def build_system(structure: app.PDBFile, forcefield: str, solvent: str,
                 constraints: str) -> openmm.System:
    """An OpenMM System of ``structure.topology``: force field (a key of :data:`FORCEFIELDS`),
    ``solvent`` "obc" (implicit) or "vacuum", ``constraints`` "hbonds" or "none"; no cutoff."""
    files = FORCEFIELDS[forcefield]
    ff = app.ForceField(*(files if solvent == "obc" else files[:1]))
    try:
        return ff.createSystem(structure.topology, nonbondedMethod=app.NoCutoff,
                               constraints=CONSTRAINTS[constraints])
    except ValueError as exc:
        raise NCTInputError(
            f"{forcefield} cannot parameterise the PDB ({str(exc).splitlines()[0]}); add missing "
            "hydrogens and caps (e.g. with pdbfixer) or choose another --forcefield"
        ) from exc


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
             overwrite: bool = False, progress: bool = True) -> dict:
    """Run Langevin dynamics and write an mdtraj HDF5 trajectory with velocities.

    Parameters
    ----------
    pdb : path
        Structure with all hydrogens (.pdb or .cif) that ``forcefield`` can parameterise; its
        topology goes into the output.
    out : path
        Output ``.h5`` file (mdtraj HDF5: positions nm, velocities nm/ps, time ps, energies
        kJ/mol). Written to a temporary file beside it and renamed when complete, so an
        interrupted run leaves no partial output; parent folders are created.
    forcefield : str
        A key of :data:`FORCEFIELDS`.
    solvent : {"obc", "vacuum"}
        OBC generalized-Born implicit solvent or vacuum (no cutoff either way).
    temperature : float
        Bath temperature in K.
    ns : float
        Production length in ns (after minimisation and equilibration).
    save_every_ps : float
        Frame spacing in ps.
    seed : int, optional
        Seed for the initial velocities and the Langevin noise; drawn at random (and reported)
        if None. Runs are reproducible only on the same platform and hardware.
    constraints : {"hbonds", "none"}
        Constrain bonds to hydrogen or nothing.
    timestep_fs : float, optional
        Integration step; default 2 fs with HBonds constraints, 1 fs without.
    platform : str, optional
        OpenMM platform name; default: the fastest, measured by :func:`choose_platform`.
    start : path, optional
        PDB with starting positions for the same atoms (e.g. a frame from another basin).
    equilibrate_ps : float
        Unsaved equilibration after minimisation, in ps.
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
    structure = read_structure(pdb, "PDB")
    positions = np.asarray(structure.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    if start is not None:
        start_positions = read_structure(start, "start structure")
        positions = np.asarray(
            start_positions.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        if len(positions) != structure.topology.getNumAtoms():
            raise NCTInputError(
                f"start structure '{start}' has {len(positions)} atoms but the PDB has "
                f"{structure.topology.getNumAtoms()}; use a frame of the same molecule"
            )
    if not np.isfinite(positions).all():
        raise NCTInputError("the structure has NaN or infinite coordinates; fix the PDB")
    system = build_system(structure, forcefield, solvent, constraints)
    seed = secrets.randbelow(2**31 - 1) + 1 if seed is None else int(seed)
    speeds = {}
    if platform is None:
        platform, speeds = choose_platform(system, positions, temperature)

    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin,
                                                 FRICTION_PER_PS / unit.picosecond,
                                                 step_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform),
                             _platform_properties(platform))
    context.setPositions(positions * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    integrator.step(round(equilibrate_ps * 1000.0 / step_fs))

    n_dof = 3 * system.getNumParticles() - system.getNumConstraints() - 3
    settings = {
        "pdb": str(pdb), "start": None if start is None else str(start),
        "forcefield": forcefield, "forcefield_files": list(FORCEFIELDS[forcefield][:2]
                                                         if solvent == "obc"
                                                         else FORCEFIELDS[forcefield][:1]),
        "solvent": solvent, "temperature": float(temperature), "ns": float(ns),
        "save_every_ps": float(save_every_ps), "seed": seed, "constraints": constraints,
        "n_constraints": system.getNumConstraints(), "timestep_fs": step_fs,
        "friction_per_ps": FRICTION_PER_PS, "equilibrate_ps": float(equilibrate_ps),
        "integrator": "LangevinMiddleIntegrator (velocities at half steps)",
        "openmm_version": openmm.__version__, "platform": platform,
    }
    frames = {key: [] for key in ("coordinates", "velocities", "time", "kineticEnergy",
                                  "potentialEnergy", "temperature")}
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
                    try:
                        integrator.step(steps_per_frame)
                    except openmm.OpenMMException as exc:
                        raise NCTInputError(_BLOWN_UP) from exc
                    state = context.getState(getPositions=True, getVelocities=True,
                                             getEnergy=True)
                    kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
                    frames["coordinates"].append(
                        state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
                    frames["velocities"].append(state.getVelocities(asNumpy=True).value_in_unit(
                        unit.nanometer / unit.picosecond))
                    frames["time"].append((k + 1) * save_every_ps)
                    frames["kineticEnergy"].append(kinetic)
                    frames["potentialEnergy"].append(
                        state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
                    frames["temperature"].append(2.0 * kinetic / (n_dof * KB))
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


def _store_provenance(path: Path, settings: dict) -> None:
    """Write ``settings`` as JSON into the HDF5 root attribute read by ``io.read_provenance``."""
    with tables.open_file(str(path), "a") as handle:
        handle.root._v_attrs[PROVENANCE_ATTR] = json.dumps(settings)
