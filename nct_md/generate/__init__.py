"""Boltzmann generation with OpenMM Hamiltonians: energy bridge, training, sampling, reweighting.

- :class:`OpenMMEnergy` (:mod:`~nct_md.generate.openmm_energy`): ``U(q)/kT`` of an OpenMM
  System as a torch autograd function, evaluated by worker processes.
- :class:`PhaseSpaceHamiltonian` (:mod:`~nct_md.generate.hamiltonian`): ``H = sum p^2/2m + U(q)``
  in a model's units, for models over every atom.
- :func:`train_generator`, :func:`fine_tune_model`, :func:`estimate_free_energy`
  (:mod:`~nct_md.generate.boltzmann`): variational free energy, optionally mixed with maximum
  likelihood and with temperature annealing.
- :func:`draw_samples`, :func:`summarize` (:mod:`~nct_md.generate.sample`,
  :mod:`~nct_md.generate.diagnostics`): samples, log importance weights, and their checks.

Attributes are imported lazily so that OpenMM worker processes (which import
:mod:`nct_md.generate._worker`) do not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "EnergyDiagnostics": "openmm_energy",
    "OpenMMEnergy": "openmm_energy",
    "system_from_pdb": "openmm_energy",
    "system_from_topology": "openmm_energy",
    "system_from_xml": "openmm_energy",
    "PhaseSpaceHamiltonian": "hamiltonian",
    "estimate_free_energy": "boltzmann",
    "fine_tune_model": "boltzmann",
    "train_generator": "boltzmann",
    "draw_samples": "sample",
    "summarize": "diagnostics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nct_md.generate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"nct_md.generate.{_EXPORTS[name]}"), name)
