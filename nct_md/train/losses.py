"""Training objectives: maximum likelihood on samples, variational free energy from H.

Because every layer is symplectic (unit Jacobian), the model density of a phase-space point is
the latent density of its image: ``ln p(x) = ln rho(T(x))``. A configuration-separable flow
also has a configuration density, ``ln p(q) = ln rho(Q(q)) + ln |det dQ/dq|`` (its momentum
integral), and the ``configuration_*`` objectives use it alone. All energies are in units of
the model's ``kT`` argument.

Model samples ``x`` weighted towards a target ``exp(-u(x)) V(x)`` (``u`` the reduced energy,
``V`` an optional volume factor such as the Eckart volume of molecules) carry the log importance
weight ``ln w = -(ln p(x) + u(x) - ln V(x))`` (:func:`log_weights`, up to a constant): sampling,
free-energy estimates and the variational losses all use it.
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
#: what a likelihood or variational objective is taken over: ``ln p(p, q)`` or ``ln p(q)``
OBJECTIVES = ("phase_space", "configuration")


class ConfigurationNLL(nn.Module):
    """``-ln p(q)`` ``(B,)`` of Cartesian positions ``q`` (nm) under an NCT model (its
    ``configuration_log_prob`` after its preprocessing), called as ``(p, q)`` like the model's
    phase-space NLL (``p`` unused): the "configuration" objective."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        return -self.model.configuration_log_prob(self.model.preprocessing.to_model(q))


def phase_space_log_prob(flow: SymplecticLayer, latent: HarmonicLatent, p: Tensor, q: Tensor,
                         kT: float = 1.0) -> Tensor:
    """``ln p(p, q) = ln rho(T(p, q))`` ``(batch,)`` of flow inputs ``(batch, n)``."""
    P, Q = flow(p, q)
    return latent.log_prob(P, Q, kT)


def configuration_log_prob(flow: SymplecticLayer, latent: HarmonicLatent, q: Tensor,
                           kT: float = 1.0) -> Tensor:
    """``ln p(q) = ln rho(Q(q)) + ln |det dQ/dq|`` ``(batch,)`` of configurations ``(batch, n)``.

    The momentum integral of the phase-space density; configuration-separable flows only.
    """
    Q, log_det = flow.positions_log_det(q)
    return latent.position_log_prob(Q, kT) + log_det


def sample_phase_space(flow: SymplecticLayer, latent: HarmonicLatent, n_samples: int,
                       kT: float = 1.0, generator: torch.Generator | None = None
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """Flow inputs ``(p, q) = T^-1(P, Q)``, each ``(n_samples, n)``, with ``(P, Q)`` from the
    latent at ``kT``, and their :func:`phase_space_log_prob` ``(n_samples,)`` (unit Jacobian)."""
    P, Q = latent.sample(n_samples, kT, generator)
    p, q = flow.inverse(P, Q)
    return p, q, latent.log_prob(P, Q, kT)


def sample_configurations(flow: SymplecticLayer, latent: HarmonicLatent, n_samples: int,
                          kT: float = 1.0, generator: torch.Generator | None = None
                          ) -> tuple[Tensor, Tensor]:
    """Configurations ``q = Q^-1(Q)`` ``(n_samples, n)``, ``Q`` from the latent positions at
    ``kT``, and their :func:`configuration_log_prob` ``(n_samples,)`` from the inverse pass."""
    Q = latent.sample_positions(n_samples, kT, generator)
    q, log_det = flow.inverse_positions(Q)
    return q, latent.position_log_prob(Q, kT) - log_det


def log_weights(log_prob: Tensor, reduced_energy: Tensor,
                log_volume: Tensor | None = None) -> Tensor:
    """Log importance weights ``ln w = -(ln p + u - ln V)`` ``(batch,)`` of model samples.

    Parameters
    ----------
    log_prob : Tensor ``(batch,)``
        Model log-density of the samples (nats).
    reduced_energy : Tensor ``(batch,)``
        Target energy in units of kT, ``u = H / kT`` (or ``U / kT`` for configurations).
    log_volume : Tensor ``(batch,)``, optional
        ``ln V``: the target density is ``exp(-u) V`` (e.g. the Eckart volume of molecules).

    Weights are relative (``ln Z`` is left out); ``-ln w`` is the reduced work whose mean is the
    variational free energy.
    """
    work = log_prob + reduced_energy
    return -(work - log_volume if log_volume is not None else work)


def target_log_volume(target: Callable, q: Tensor) -> Tensor | None:
    """``target.log_volume(q)`` ``(batch,)`` when the target (a Hamiltonian or potential) has
    one, else None (the target density is then ``exp(-u)`` alone)."""
    log_volume = getattr(target, "log_volume", None)
    return log_volume(q) if log_volume is not None else None


class ConfigurationDensity(nn.Module):
    """:func:`configuration_log_prob` ``(batch,)`` as a module (its parameters can be frozen)."""

    def __init__(self, flow: SymplecticLayer, latent: HarmonicLatent):
        super().__init__()
        self.flow, self.latent = flow, latent

    def forward(self, q: Tensor, kT: float = 1.0) -> Tensor:
        return configuration_log_prob(self.flow, self.latent, q, kT)


def negative_log_likelihood(flow: SymplecticLayer, latent: HarmonicLatent, p: Tensor, q: Tensor,
                            kT: float = 1.0) -> Tensor:
    """Mean ``-ln p(p, q)`` over a batch of phase-space samples ``(batch, n)``; a scalar."""
    return -phase_space_log_prob(flow, latent, p, q, kT).mean()


def configuration_negative_log_likelihood(flow: SymplecticLayer, latent: HarmonicLatent,
                                          q: Tensor, kT: float = 1.0) -> Tensor:
    """Mean ``-ln p(q)`` over configurations ``(batch, n)`` (separable flows); a scalar."""
    return -configuration_log_prob(flow, latent, q, kT).mean()


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
    """Summarise per-sample reduced work ``-ln w = ln rho + H/kT`` (:func:`log_weights`),
    shape ``(batch,)``."""
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
    p, q, _ = sample_phase_space(flow, latent, n_samples, kT, generator)
    P_again, Q_again = _frozen(flow)(p, q)
    work = -log_weights(_frozen(latent)(P_again, Q_again, kT), hamiltonian(p, q) / kT,
                        target_log_volume(hamiltonian, q))
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
    q, _ = sample_configurations(flow, latent, n_samples, kT, generator)
    work = -log_weights(_frozen(ConfigurationDensity(flow, latent))(q, kT), potential(q) / kT,
                        target_log_volume(potential, q))
    return work.mean(), free_energy_estimate(work)
