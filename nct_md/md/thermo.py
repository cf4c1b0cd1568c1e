"""Thermal energy, atom masses and Maxwell-Boltzmann momenta (OpenMM's units).

KB, kt(temperature), check_temperature(temperature)
    Boltzmann constant in kJ/(mol K), kT in kJ/mol, and the check every temperature (K) passes.
degrees_of_freedom(system), kinetic_temperature(kinetic, n_dof)
    Degrees of freedom of an OpenMM System and the instantaneous temperature (K) of a kinetic
    energy (kJ/mol) spread over them.
atom_masses(topology)
    Masses in amu of a topology's atoms.
dof_masses(masses), maxwell_boltzmann(n_frames, masses, temperature, basis, generator)
    Per-degree-of-freedom masses and Maxwell-Boltzmann momenta, optionally restricted to an
    orthonormal mass-weighted subspace (the internal one of an Eckart frame).
"""

from __future__ import annotations

import mdtraj as md
import numpy as np
import openmm
import torch

from nct_md.errors import NCTInputError

#: Boltzmann constant in kJ/(mol K).
KB = 0.0083144626


def kt(temperature: float) -> float:
    """Thermal energy kT in kJ/mol at ``temperature`` in K (raises on non-positive values)."""
    check_temperature(temperature)
    return KB * float(temperature)


def check_temperature(temperature: float) -> None:
    """Raise NCTInputError unless ``temperature`` (K) is a finite positive number."""
    if temperature is None or not np.isfinite(temperature) or temperature <= 0:
        raise NCTInputError(
            f"temperature must be a positive number of kelvin, got {temperature}; e.g. 300"
        )


def degrees_of_freedom(system: openmm.System) -> int:
    """Particles with mass x 3, less one per constraint and 3 for a ``CMMotionRemover``."""
    moving = sum(system.getParticleMass(i).value_in_unit(openmm.unit.dalton) > 0
                 for i in range(system.getNumParticles()))
    removes_com = any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces())
    return 3 * moving - system.getNumConstraints() - (3 if removes_com else 0)


def kinetic_temperature(kinetic: float, n_dof: int) -> float:
    """Instantaneous temperature in K of a kinetic energy ``kinetic`` (kJ/mol) over ``n_dof``
    degrees of freedom: ``2 K / (n_dof kB)``."""
    return 2.0 * kinetic / (n_dof * KB)


def atom_masses(topology: md.Topology) -> np.ndarray:
    """Masses in amu of the topology's atoms, shape ``(N,)``; raises on massless atoms."""
    masses = np.array([atom.element.mass if atom.element is not None else 0.0
                       for atom in topology.atoms], dtype=np.float64)
    if np.any(masses <= 0):
        bad = [str(atom) for atom, m in zip(topology.atoms, masses, strict=True) if m <= 0][:3]
        raise NCTInputError(
            f"atoms without mass in the selection ({', '.join(bad)}); exclude virtual sites, "
            "e.g. select='heavy'"
        )
    return masses


def dof_masses(masses: np.ndarray) -> np.ndarray:
    """Per-degree-of-freedom masses, shape ``(3N,)`` amu, atom-major."""
    return np.repeat(np.asarray(masses, dtype=np.float64), 3)


def maxwell_boltzmann(n_frames: int, masses: np.ndarray, temperature: float,
                      basis: np.ndarray | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Momenta drawn from the Maxwell-Boltzmann distribution.

    Parameters
    ----------
    n_frames : int
    masses : ndarray, shape ``(N,)``, amu
    temperature : float, K
    basis : ndarray, shape ``(3N, d)``, optional
        Orthonormal mass-weighted subspace to draw in (e.g. the internal basis of an Eckart
        frame); the mean kinetic energy is then ``d kT / 2``. None draws in all ``3N``
        directions.
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor, shape ``(n_frames, 3N)``, float64, amu nm/ps
    """
    scale = np.sqrt(kt(temperature))
    n_dof = 3 * len(masses)
    dim = n_dof if basis is None else basis.shape[1]
    noise = torch.randn(int(n_frames), dim, generator=generator, dtype=torch.float64)
    weighted = noise if basis is None else noise @ torch.from_numpy(basis).T
    return weighted * (scale * torch.from_numpy(np.sqrt(dof_masses(masses))))
