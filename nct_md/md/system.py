"""OpenMM Systems for ``nct-md simulate``: force fields, solvent models and solvation.

This is the one place that knows how the System is built (used by :mod:`nct_md.md.simulate`,
the metadynamics export and the OpenMM energies of :mod:`nct_md.generate`); the names of force
fields, solvents and their XML files are the plain data of :mod:`nct_md.md.choices`.

Public API
----------
TIP3P_FILES
    The TIP3P water (and ion) XML file that goes with each force field.
OPENMM_CONSTRAINTS
    Each name of :data:`nct_md.md.choices.CONSTRAINTS` as OpenMM's constraint object.
check_choices(forcefield, solvent, constraints, periodic=True)
    Refuse unknown names with one line naming the choices (periodic=False: no explicit water).
forcefield_files(forcefield, solvent)
    The XML files of a force field and solvent model.
solvate(topology, positions, forcefield, solvent, padding_nm)
    Explicit water and neutralising ions around a solute, in a cubic periodic box.
build_system(structure, forcefield, solvent, constraints)
    The System: no cutoff for vacuum and OBC, PME for explicit water.
pme_cutoff(box)
    The direct-space cutoff used with PME in a given box.
"""

from __future__ import annotations

import math

import numpy as np
import openmm
from openmm import app, unit

from nct_md.errors import NCTInputError
from nct_md.md.choices import (
    ALL_SOLVENTS,
    CONSTRAINTS,
    FORCEFIELDS,
    PERIODIC_SOLVENTS,
    SOLVENTS,
)

#: name -> TIP3P water and ion XML matching the force field
TIP3P_FILES = {name: "amber14/tip3p.xml" if name == "amber14" else "tip3p.xml"
               for name in FORCEFIELDS}
#: constraint name -> OpenMM constraint object
OPENMM_CONSTRAINTS = {"hbonds": app.HBonds, "none": None}
#: PME direct-space cutoff, nm: at most MAX_CUTOFF_NM and at most _CUTOFF_PER_WIDTH of the
#: shortest box width, so the box may shrink by 20 % in length under the barostat before OpenMM
#: stops (addSolvent packs small boxes loosely: a 1.4 nm box shrinks by 10 %, a 2 nm box by 4 %);
#: boxes that would need less than MIN_CUTOFF_NM are refused
MAX_CUTOFF_NM = 1.0
MIN_CUTOFF_NM = 0.6
_CUTOFF_PER_WIDTH = 0.4


def check_choices(forcefield: str, solvent: str, constraints: str,
                  periodic: bool = True) -> None:
    """Raise :class:`NCTInputError` for an unknown force field, solvent or constraints name.

    ``periodic=False`` also refuses the explicit-water solvents, for Systems of isolated
    molecules (metadynamics, the energies of :mod:`nct_md.generate`): only :data:`SOLVENTS`.
    """
    if forcefield not in FORCEFIELDS:
        raise NCTInputError(
            f"unknown force field '{forcefield}'; use one of {', '.join(FORCEFIELDS)}"
        )
    if solvent not in ALL_SOLVENTS:
        solvents = ALL_SOLVENTS if periodic else SOLVENTS
        raise NCTInputError(f"unknown solvent '{solvent}'; use one of {', '.join(solvents)}")
    if not periodic and solvent not in SOLVENTS:
        raise NCTInputError(f"solvent '{solvent}' needs a periodic box, which this calculation "
                            f"does not use; use one of {', '.join(SOLVENTS)}")
    if constraints not in CONSTRAINTS:
        raise NCTInputError(f"unknown constraints '{constraints}'; use hbonds or none")


def forcefield_files(forcefield: str, solvent: str) -> list[str]:
    """OpenMM XML files of ``forcefield`` with ``solvent`` (checked names)."""
    protein, obc = FORCEFIELDS[forcefield]
    if solvent == "obc":
        return [protein, obc]
    return [protein] if solvent == "vacuum" else [protein, TIP3P_FILES[forcefield]]


def _parameterise_error(forcefield: str, exc: ValueError) -> NCTInputError:
    return NCTInputError(
        f"{forcefield} cannot parameterise the PDB ({str(exc).splitlines()[0]}); add missing "
        "hydrogens and caps (e.g. with pdbfixer) or choose another --forcefield"
    )


def solvate(topology: app.Topology, positions: np.ndarray, forcefield: str, solvent: str,
            padding_nm: float) -> app.Modeller:
    """Water of model ``solvent`` (a key of :data:`PERIODIC_SOLVENTS`) around the solute.

    Parameters
    ----------
    topology : openmm.app.Topology
        The solute (with all hydrogens).
    positions : ndarray, shape ``(N, 3)``, nm
    forcefield, solvent : str
        Keys of :data:`FORCEFIELDS` and :data:`PERIODIC_SOLVENTS`.
    padding_nm : float
        Smallest distance between the solute and its periodic images, nm: the cubic box is the
        solute's bounding-sphere diameter plus ``padding_nm`` wide, at least ``2 * padding_nm``
        (``app.Modeller.addSolvent``).

    Returns
    -------
    openmm.app.Modeller
        ``topology`` (solute, then water, then Na+/Cl- ions that neutralise the total charge, as
        OpenMM adds by default) with its periodic box, and ``positions`` (nm).
    """
    modeller = app.Modeller(topology, positions * unit.nanometer)
    ff = app.ForceField(*forcefield_files(forcefield, solvent))
    try:
        modeller.addSolvent(ff, model=PERIODIC_SOLVENTS[solvent],
                            padding=padding_nm * unit.nanometer)
    except ValueError as exc:
        raise _parameterise_error(forcefield, exc) from exc
    return modeller


def pme_cutoff(box: np.ndarray) -> float:
    """PME cutoff in nm for box vectors ``box`` (rows, shape ``(3, 3)``, nm, OpenMM's reduced
    form): ``min(1.0, 0.4 * shortest width)`` rounded down to 0.001 nm; refuses below 0.6 nm."""
    width = float(np.min(np.diag(box)))
    cutoff = min(MAX_CUTOFF_NM, math.floor(_CUTOFF_PER_WIDTH * width * 1000.0) / 1000.0)
    if cutoff < MIN_CUTOFF_NM:
        raise NCTInputError(
            f"the periodic box ({width:.2f} nm wide) is too small for a {MIN_CUTOFF_NM} nm "
            "cutoff; use a larger --padding-nm"
        )
    return cutoff


def build_system(structure: app.PDBFile | app.Modeller, forcefield: str, solvent: str,
                 constraints: str) -> openmm.System:
    """An OpenMM System of ``structure.topology`` (checked names, see :func:`check_choices`).

    ``solvent`` "obc" (implicit) or "vacuum": no cutoff. An explicit water model (a key of
    :data:`PERIODIC_SOLVENTS`): the topology must be solvated (:func:`solvate`, it carries the
    periodic box); PME with the cutoff of :func:`pme_cutoff`, rigid water. ``constraints``
    "hbonds" or "none" applies to the solute.
    """
    topology = structure.topology
    kwargs = {"nonbondedMethod": app.NoCutoff}
    if solvent in PERIODIC_SOLVENTS:
        box = topology.getPeriodicBoxVectors()
        if box is None:
            raise NCTInputError(f"solvent {solvent} needs a solvated topology with a periodic "
                                "box; solvate it first (nct_md.md.system.solvate)")
        cutoff = pme_cutoff(np.asarray(box.value_in_unit(unit.nanometer)))
        kwargs = {"nonbondedMethod": app.PME, "nonbondedCutoff": cutoff * unit.nanometer,
                  "rigidWater": True}
    ff = app.ForceField(*forcefield_files(forcefield, solvent))
    try:
        return ff.createSystem(topology, constraints=OPENMM_CONSTRAINTS[constraints], **kwargs)
    except ValueError as exc:
        raise _parameterise_error(forcefield, exc) from exc
