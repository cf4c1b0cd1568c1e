"""The all-atom phase-space Hamiltonian ``H = sum p^2 / 2m + U(q)`` in a model's units.

A model's coordinates ``(x_p, x_q)`` (see :class:`nct_md.model.Preprocessing`) decode to
Cartesian momenta (amu nm/ps) and positions (nm) of every atom in the reference frame; ``U`` is
evaluated on those positions by :class:`~nct_md.generate.openmm_energy.OpenMMEnergy` and the
sum is divided by ``kT``, so ``H`` is in units of ``kT`` as the latent is. The map between model
and Cartesian internal coordinates is linear with a constant Jacobian, so free energies in model
units differ from Cartesian ones by a constant only.

:class:`ConfigurationPotential` is the configuration part, ``U(q) / kT`` with the Eckart volume
``ln |det B(q)|`` of the model's rigid-body-free coordinates
(:func:`~nct_md.md.frame.eckart_log_volume`): the Boltzmann density of those coordinates is
``exp(-U / kT) |det B|``. The kinetic part integrates out exactly (Maxwell-Boltzmann momenta).

Constraints: the Hamiltonian has none. Every one of the ``3N - 6`` internal directions carries
kinetic and potential energy, so a model must be trained on unconstrained data (the estimator
refuses constrained selections) and evaluated against an unconstrained System; a System with
constraints is refused here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nct_md.errors import NCTInputError
from nct_md.generate.openmm_energy import OpenMMEnergy
from nct_md.md.frame import eckart_log_volume
from nct_md.model import NCTModel

Tensor = torch.Tensor

#: what the metadata of a model trained against this Hamiltonian says about constraints
CONSTRAINTS_HANDLING = (
    "unconstrained: trained on data simulated without constraints and against an "
    "unconstrained System; all 3N-6 internal directions carry p^2/2m and U(q)")


class PhaseSpaceHamiltonian(nn.Module):
    """``H(x_p, x_q) / kT`` for a model over every atom of the energy's System.

    Parameters
    ----------
    model : NCTModel
        Its atoms must be all of the System's particles, in order, with the same masses, and
        its temperature the energy's.
    energy : OpenMMEnergy
        Unconstrained System.
    """

    def __init__(self, model: NCTModel, energy: OpenMMEnergy):
        super().__init__()
        check_compatible(model, energy)
        self.preprocessing = model.preprocessing
        self.energy = energy

    def kinetic(self, p: Tensor) -> Tensor:
        """``sum p^2 / 2m / kT`` ``(B,)`` of Cartesian momenta ``(B, 3N)`` amu nm/ps."""
        m = self.preprocessing.sqrt_m.to(p.dtype).square()
        return (p.square() / (2 * m)).sum(1) / self.energy.kT

    def forward(self, x_p: Tensor, x_q: Tensor) -> Tensor:
        """``H / kT`` ``(B,)`` of model coordinates ``(B, d)``; differentiable in both."""
        p, q = self.preprocessing.inverse(x_p, x_q)
        return self.kinetic(p) + self.energy(q)

    def log_volume(self, x_q: Tensor) -> Tensor:
        """Eckart volume ``ln |det B|`` ``(B,)``: the Boltzmann density of ``x_q`` is
        ``exp(-U/kT) |det B|`` (see :func:`~nct_md.md.frame.eckart_log_volume`)."""
        return model_log_volume(self.preprocessing, x_q)


class ConfigurationPotential(PhaseSpaceHamiltonian):
    """``U(x_q) / kT`` ``(B,)`` and the Eckart volume of model coordinates ``x_q`` ``(B, d)``.

    The configuration part of :class:`PhaseSpaceHamiltonian` (same parameters and checks).
    """

    def forward(self, x_q: Tensor) -> Tensor:  # type: ignore[override]
        """``U / kT`` ``(B,)``, differentiable."""
        return self.energy(self.preprocessing.cartesian(x_q))


def model_log_volume(preprocessing: nn.Module, x_q: Tensor) -> Tensor:
    """Eckart volume ``ln |det B|`` ``(B,)`` of a model's coordinates ``x_q`` ``(B, d)``."""
    return eckart_log_volume(preprocessing.cartesian(x_q), preprocessing.reference.to(x_q.dtype),
                             preprocessing.masses.to(x_q.dtype))


def check_compatible(model: NCTModel, energy: OpenMMEnergy) -> None:
    """Raise :class:`NCTInputError` unless ``model`` and ``energy`` describe the same atoms."""
    indices = model.info.atom_indices
    if indices != list(range(energy.n_atoms)):
        raise NCTInputError(
            f"the model covers {len(indices)} selected atoms but the System has "
            f"{energy.n_atoms}; generating configurations needs a model over every atom "
            "(train with --select all on unconstrained data)")
    masses = model.preprocessing.masses.cpu().double().numpy()
    if not np.allclose(masses, energy.masses, rtol=1e-3, atol=1e-3):
        raise NCTInputError("the System's masses differ from the model's; use the System of "
                            "the molecule the model was trained on (same hydrogen masses)")
    if energy.n_constraints:
        raise NCTInputError(
            f"the System has {energy.n_constraints} constraints; the all-atom Hamiltonian "
            "needs an unconstrained System (build it with constraints='none')")
    temperature = model.info.temperature
    if abs(temperature - energy.temperature) > 1e-6:
        raise NCTInputError(f"the model is at {temperature} K but the energy at "
                            f"{energy.temperature} K; build the energy at the model's temperature")
