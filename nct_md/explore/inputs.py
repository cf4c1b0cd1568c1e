"""Checks of an exploration's inputs, all made before anything is simulated or written.

:func:`check_inputs` refuses bad settings with one NCTInputError line: iteration counts and run
lengths, the force field (it must parameterise the PDB), the settings passed on to training,
metadynamics and MD, and start trajectories whose atoms are not the PDB's.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import mdtraj as md

from nct_md.errors import NCTInputError, check_integer, check_number
from nct_md.estimator import NCT
from nct_md.export.metad import check_bias_settings, run_metadynamics
from nct_md.md.formats import HDF5
from nct_md.md.io import extension
from nct_md.md.langevin import check_platform, frame_steps, time_step
from nct_md.md.simulate import read_structure
from nct_md.md.system import build_system, check_choices
from nct_md.md.thermo import check_temperature

#: keys of ``train`` that go to :func:`nct_md.train.files.train_files` (the rest go to NCT)
TRAIN_FILE_KEYS = ("select", "stride")
#: keys of ``metad`` (:func:`nct_md.export.metad.run_metadynamics` bias settings)
METAD_KEYS = ("bias_factor", "height", "pace", "widths")
#: keys of ``simulation`` (shared by plain MD and metadynamics)
SIMULATION_KEYS = ("constraints", "timestep_fs", "save_every_ps")


def _check_keys(name: str, settings: dict, allowed: Sequence[str]) -> None:
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise NCTInputError(f"{name} has unknown keys {unknown}; use {', '.join(allowed)}")


def check_train(train: dict, iterations: int) -> None:
    """Refuse training settings that :class:`~nct_md.estimator.NCT` would refuse, now or once
    the data carry weights (from iteration 2 on)."""
    nct = {k: v for k, v in train.items() if k not in TRAIN_FILE_KEYS}
    _check_keys("train", nct, [p for p in inspect.signature(NCT).parameters
                               if p not in ("checkpoint", "restart", "progress")])
    NCT(**nct)
    if iterations > 1 and nct.get("kinetic_weight") and not nct.get("biased_kinetics"):
        raise NCTInputError("kinetic_weight > 0 needs unbiased trajectories, and from iteration "
                            "2 on the data hold weighted metadynamics frames; leave it unset "
                            "(automatic), 0, or add biased_kinetics=True")
    if "stride" in train:
        check_integer("stride", train["stride"])


def check_metad(metad: dict, n_biased: int, ns: float, save_every_ps: float) -> None:
    """Refuse bias settings as :func:`~nct_md.export.metad.run_metadynamics` would (its
    defaults for those not given), and given widths (ps) that are not ``n_biased`` positive
    numbers."""
    _check_keys("metad", metad, METAD_KEYS)
    bias = {name: p.default for name, p in inspect.signature(run_metadynamics).parameters.items()
            if name in METAD_KEYS} | metad
    check_bias_settings(ns, save_every_ps, bias["pace"], n_biased, bias["bias_factor"],
                        bias["height"])
    widths = metad.get("widths")
    if widths is not None and (len(widths) != n_biased or min(widths) <= 0):
        raise NCTInputError(f"give {n_biased} positive widths, got {widths}")


def check_simulation(simulation: dict) -> None:
    """Refuse MD settings: constraints name, time step (fs), frame spacing (ps)."""
    _check_keys("simulation", simulation, SIMULATION_KEYS)
    step = time_step(simulation.get("constraints", "hbonds"), simulation.get("timestep_fs"))
    save_every_ps = simulation.get("save_every_ps", 1.0)
    check_number("save_every_ps", save_every_ps)
    frame_steps(save_every_ps, step)


def load_start(path: Path, pdb: Path) -> md.Trajectory:
    """A start trajectory (mdtraj HDF5 with its topology, other formats with the PDB's),
    refused unless its atoms are the PDB's, in the same order."""
    path = Path(path)
    if not path.is_file():
        raise NCTInputError(f"start trajectory '{path}' not found; check the path")
    reference = md.load_topology(str(pdb))
    fix = f"give trajectories of the molecule of {pdb}, atoms in its order, or its --pdb"
    try:
        traj = (md.load(str(path)) if extension(path) in HDF5
                else md.load(str(path), top=reference))
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise NCTInputError(f"cannot read start trajectory {path} with the atoms of {pdb} "
                            f"({' '.join(str(exc).split())}); {fix}") from None
    atoms = [(a.name, a.element.symbol if a.element else None) for a in traj.topology.atoms]
    wanted = [(a.name, a.element.symbol if a.element else None) for a in reference.atoms]
    if atoms != wanted:
        found = (f"{len(atoms)} atoms, the PDB {len(wanted)}" if len(atoms) != len(wanted)
                 else "atom names or elements differ")
        raise NCTInputError(f"start trajectory {path} does not match {pdb} ({found}); {fix}")
    return traj


def check_inputs(pdb: Path, forcefield: str, solvent: str, temperature: float,
                 iterations: int, ns_per_iteration: float, plain_ns: float, n_biased: int,
                 n_states: int, start: Sequence[Path] | None, train: dict, metad: dict,
                 simulation: dict, platform: str | None) -> None:
    """Refuse bad inputs of :func:`nct_md.explore.explore` (see there) before any work."""
    check_integer("iterations", iterations)
    check_number("ns_per_iteration", ns_per_iteration)
    if start is None:
        check_number("plain_ns", plain_ns)
    elif not start:
        raise NCTInputError("start is an empty list; give trajectory files, or None to run "
                            "plain MD from the PDB")
    check_integer("n_biased", n_biased)
    check_integer("n_states", n_states)
    check_temperature(temperature)
    check_platform(platform)
    check_simulation(simulation)
    constraints = simulation.get("constraints", "hbonds")
    check_choices(forcefield, solvent, constraints, periodic=False)
    check_metad(metad, n_biased, ns_per_iteration, simulation.get("save_every_ps", 1.0))
    check_train(train, iterations)
    build_system(read_structure(pdb, "PDB"), forcefield, solvent, constraints)
    for path in start or []:
        load_start(path, pdb)
