"""Training objectives: maximum likelihood on samples, variational free energy from H.

Because every layer is symplectic (unit Jacobian), the model density of a phase-space point is
the latent density of its image: ``ln p(x) = ln rho(T(x))``. A configuration-separable flow
also has a configuration density, ``ln p(q) = ln rho(Q(q)) + ln |det dQ/dq|`` (its momentum
integral), and the ``configuration_*`` objectives use it alone. All energies are in units of
the model's ``kT`` argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from nct_md.flows.base import SymplecticLayer
from nct_md.latent import HarmonicLatent

Tensor = torch.Tensor
Hamiltonian = Callable[[Tensor, Tensor], Tensor]
Potential = Callable[[Tensor], Tensor]


class ConfigurationDensity(nn.Module):
    """``ln p(q)`` ``(batch,)`` of configurations ``(batch, n)`` under a separable flow."""

    def __init__(self, flow: SymplecticLayer, latent: HarmonicLatent):
        super().__init__()
        self.flow, self.latent = flow, latent

    def forward(self, q: Tensor, kT: float = 1.0) -> Tensor:
        Q, log_det = self.flow.positions_log_det(q)
        return self.latent.position_log_prob(Q, kT) + log_det


def negative_log_likelihood(flow: SymplecticLayer, latent: HarmonicLatent, p: Tensor, q: Tensor,
                            kT: float = 1.0) -> Tensor:
    """Mean ``-ln p(p, q)`` over a batch of phase-space samples ``(batch, n)``; a scalar."""
    P, Q = flow(p, q)
    return -latent.log_prob(P, Q, kT).mean()


def configuration_negative_log_likelihood(flow: SymplecticLayer, latent: HarmonicLatent,
                                          q: Tensor, kT: float = 1.0) -> Tensor:
    """Mean ``-ln p(q)`` over configurations ``(batch, n)`` (separable flows); a scalar."""
    return -ConfigurationDensity(flow, latent)(q, kT).mean()


@dataclass(frozen=True)
class FreeEnergyEstimate:
    """Free-energy estimates in units of kT from one batch of model samples.

    ``variational`` is ``E[ln rho + H/kT]``, an upper bound on ``-ln Z``; ``stderr`` its
    standard error; ``reweighted`` the importance-sampling estimate ``-ln E[exp(-(ln rho +
    H/kT))]``, which is tighter; ``ess`` the Kish effective sample size fraction.
    """

    variational: float
    stderr: float
    reweighted: float
    ess: float


def free_energy_estimate(reduced_work: Tensor) -> FreeEnergyEstimate:
    """Summarise per-sample ``ln rho + H/kT`` values of shape ``(batch,)``."""
    work = reduced_work.detach().double()
    n = work.numel()
    log_w = -work
    log_mean_w = torch.logsumexp(log_w, 0) - math.log(n)
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)) / n
    return FreeEnergyEstimate(
        variational=float(work.mean()),
        stderr=float(work.std() / math.sqrt(n)) if n > 1 else float("nan"),
        reweighted=float(-log_mean_w),
        ess=float(ess),
    )


def _frozen(module: nn.Module) -> Callable:
    """Call ``module`` with its parameters detached (gradients flow to the inputs only)."""
    params = {name: value.detach() for name, value in module.named_parameters()}
    return lambda *args: functional_call(module, params, args)


def variational_free_energy(flow: SymplecticLayer, latent: HarmonicLatent,
                            hamiltonian: Hamiltonian, n_samples: int, kT: float = 1.0,
                            generator: torch.Generator | None = None
                            ) -> tuple[Tensor, FreeEnergyEstimate]:
    """Loss ``E_z[ln rho(z) + H(T^{-1}(z)) / kT]`` with ``z`` drawn from the latent.

    Samples are reparameterised (``x = T^{-1}(z(eps))``) and the model density at ``x`` is
    evaluated with detached parameters ("sticking the landing", Roeder et al. 2017): the value
    is unchanged and the gradient keeps only the path term, whose per-sample value is exactly
    zero when the model matches ``exp(-H/kT)``. So the gradient noise vanishes at the optimum
    and frequencies converge to the exact ones instead of a noise floor.

    Returns the differentiable loss (scalar) and the :class:`FreeEnergyEstimate` of this batch.
    ``hamiltonian(p, q)`` takes and returns tensors ``(batch, n) -> (batch,)`` in the units of
    ``kT``; if it has a ``log_volume(q)`` method the target is ``exp(-H / kT) * volume(q)``.
    """
    P, Q = latent.sample(n_samples, kT, generator)
    p, q = flow.inverse(P, Q)
    P_again, Q_again = _frozen(flow)(p, q)
    work = _frozen(latent)(P_again, Q_again, kT) + hamiltonian(p, q) / kT
    log_volume = getattr(hamiltonian, "log_volume", None)
    if log_volume is not None:
        work = work - log_volume(q)
    return work.mean(), free_energy_estimate(work)


def configuration_free_energy(flow: SymplecticLayer, latent: HarmonicLatent,
                              potential: Potential, n_samples: int, kT: float = 1.0,
                              generator: torch.Generator | None = None
                              ) -> tuple[Tensor, FreeEnergyEstimate]:
    """Loss ``E_q[ln p(q) + U(q) / kT]`` with ``q = Q^{-1}(Q)``, ``Q`` from the latent positions.

    The configuration part of :func:`variational_free_energy` for a configuration-separable
    flow (momenta integrate out exactly), with the same sticking-the-landing gradient.
    ``potential(q)`` is ``U / kT_model`` ``(batch,)``; if it has a ``log_volume(q)`` method
    (e.g. the Eckart volume of molecules), the target density is ``exp(-U / kT) * volume``.
    """
    Q = latent.sample_positions(n_samples, kT, generator)
    q, _ = flow.inverse_positions(Q)
    work = _frozen(ConfigurationDensity(flow, latent))(q, kT) + potential(q) / kT
    log_volume = getattr(potential, "log_volume", None)
    if log_volume is not None:
        work = work - log_volume(q)
    return work.mean(), free_energy_estimate(work)
