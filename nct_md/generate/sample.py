"""Draw configurations from a model and weight them by the Boltzmann distribution of ``H``.

Configuration-separable models (point transformations only): positions come from the model's
configuration density ``rho(q) = rho(Q(q)) |det dQ/dq|`` and momenta from the exact Maxwell-
Boltzmann distribution, so the log importance weight towards ``exp(-H / kT)`` is the
configuration one, ``ln w = -(ln rho(q) + U(q) / kT - ln |det B(q)|)`` (``B`` the Eckart volume,
see :class:`~nct_md.generate.hamiltonian.ConfigurationPotential`): the momenta add no variance.
Other models: ``x = T^-1(z)`` with ``z`` from the latent has density ``rho(z)`` (the flow is
symplectic) and ``ln w = -(ln rho(z) + H(x) / kT - ln |det B(q)|)``. Weights are up to a
constant; samples whose energy is not finite get ``ln w = -inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from nct_md.generate.hamiltonian import PhaseSpaceHamiltonian, model_log_volume
from nct_md.generate.openmm_energy import OpenMMEnergy
from nct_md.model import NCTModel


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
            work = log_rho.double() + u
        else:
            P, Q = model.latent.sample(size, 1.0, generator)
            x_p, x_q = model.flow.inverse(P, Q)
            p, q = model.preprocessing.inverse(x_p, x_q)
            u = energy(q).double()
            work = model.latent.log_prob(P, Q).double() + hamiltonian.kinetic(p).double() + u
        work = work - model_log_volume(model.preprocessing, x_q).double()
        qs.append(q.double().numpy())
        ps.append(p.double().numpy())
        energies.append(u.numpy() * energy.kT)
        log_w.append(-work.numpy())
        bar.update(size)
    bar.close()
    log_weights = np.concatenate(log_w)
    log_weights[~np.isfinite(log_weights)] = -np.inf
    return SampleSet(np.concatenate(qs), np.concatenate(ps), np.concatenate(energies),
                     log_weights)
