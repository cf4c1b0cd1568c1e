"""Draw configurations from a model and weight them by the Boltzmann distribution of ``H``.

Configuration-separable models (point transformations only): positions come from the model's
configuration density ``rho(q) = rho(Q(q)) |det dQ/dq|`` and momenta from the exact Maxwell-
Boltzmann distribution, so the log importance weight towards ``exp(-H / kT)`` is the
configuration one, ``ln w = -(ln rho(q) + U(q) / kT - ln |det B(q)|)`` (``B`` the Eckart volume,
see :class:`~nct_md.generate.hamiltonian.ConfigurationPotential`): the momenta add no variance.
Other models: ``x = T^-1(z)`` with ``z`` from the latent has density ``rho(z)`` (the flow is
symplectic) and ``ln w = -(ln rho(z) + H(x) / kT - ln |det B(q)|)``. Both are
:func:`nct_md.train.losses.log_weights`. Weights are up to a constant; samples whose energy is
not finite get ``ln w = -inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from nct_md.generate.hamiltonian import PhaseSpaceHamiltonian, model_log_volume
from nct_md.generate.openmm_energy import OpenMMEnergy
from nct_md.model import NCTModel
from nct_md.train.losses import log_weights, sample_phase_space


@dataclass
class SampleSet:
    """Generated phase-space samples.

    Attributes
    ----------
    q : ndarray ``(n, 3N)`` nm, reference frame (whole molecules)
    p : ndarray ``(n, 3N)`` amu nm/ps
    energies : ndarray ``(n,)`` kJ/mol, OpenMM potential energy (NaN where it failed)
    log_weights : ndarray ``(n,)`` log importance weights (``-inf`` for non-finite energies)
    """

    q: np.ndarray
    p: np.ndarray
    energies: np.ndarray
    log_weights: np.ndarray

    def __len__(self) -> int:
        return len(self.q)


@torch.no_grad()
def draw_samples(model: NCTModel, energy: OpenMMEnergy, n: int, batch_size: int = 1024,
                 seed: int = 0, progress: bool = False) -> SampleSet:
    """``n`` samples of ``model`` at its temperature, with energies and log weights.

    ``energy`` should not clip (``clip_above=None``) so that weights are exact; ``progress``
    shows a tqdm bar (samples).
    """
    hamiltonian = PhaseSpaceHamiltonian(model, energy)
    generator = torch.Generator().manual_seed(seed)
    qs, ps, energies, log_w = [], [], [], []
    bar = tqdm(total=n, unit="sample", disable=not progress)
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        if model.configuration_separable:
            x_q, log_rho = model.sample_configurations(size, generator)
            x_p = torch.randn(x_q.shape, generator=generator, dtype=x_q.dtype)
            p, q = model.preprocessing.inverse(x_p, x_q)
            u = energy(q).double()
            reduced_energy = u
        else:
            x_p, x_q, log_rho = sample_phase_space(model.flow, model.latent, size, 1.0, generator)
            p, q = model.preprocessing.inverse(x_p, x_q)
            u = energy(q).double()
            reduced_energy = hamiltonian.kinetic(p).double() + u
        log_w.append(log_weights(log_rho.double(), reduced_energy,
                                 model_log_volume(model.preprocessing, x_q).double()).numpy())
        qs.append(q.double().numpy())
        ps.append(p.double().numpy())
        energies.append(u.numpy() * energy.kT)
        bar.update(size)
    bar.close()
    all_log_w = np.concatenate(log_w)
    all_log_w[~np.isfinite(all_log_w)] = -np.inf
    return SampleSet(np.concatenate(qs), np.concatenate(ps), np.concatenate(energies), all_log_w)
