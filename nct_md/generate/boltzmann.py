"""Boltzmann-generator training from a Hamiltonian: variational free energy, mixed with likelihood.

The loss of one step is

``kl_weight * E_z[ln rho(z) + H(T^-1 z) / kT_s] + ml_weight * E_data[-ln p(x)]``

with ``z`` drawn from the latent at ``kT_s`` (model units, 1 = the model's temperature). With
``objective="configuration"`` (configuration-separable flows) both terms use the configuration
density alone, ``E_q[ln p(q) + U(q) / kT_s] - E_data[ln p(q)]``: the momenta of the target are
Maxwell-Boltzmann exactly, so nothing is lost, the Jacobians of the momentum lift are never
formed (several times faster per step), and the flow's capacity goes to the configurations. With
annealing ``kT_s`` falls geometrically from ``anneal_from`` to 1 over ``anneal_steps`` steps and
stays at 1. Every step logs the variational free energy (kT), its standard error, the
reweighted estimate and the Kish ESS fraction of the batch (in ``history``, and at INFO level
every ``log_every`` steps).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nct_md.errors import NCTInputError
from nct_md.generate.hamiltonian import (
    CONSTRAINTS_HANDLING,
    ConfigurationPotential,
    PhaseSpaceHamiltonian,
)
from nct_md.generate.openmm_energy import OpenMMEnergy
from nct_md.md.data import PhaseSpaceData
from nct_md.model import NCTModel
from nct_md.model_info import HamiltonianInfo
from nct_md.train import (
    Trainer,
    configuration_free_energy,
    configuration_negative_log_likelihood,
    negative_log_likelihood,
    variational_free_energy,
)
from nct_md.train.losses import (
    OBJECTIVES,
    FreeEnergyEstimate,
    free_energy_estimate,
    log_weights,
    sample_configurations,
    sample_phase_space,
    target_log_volume,
)

Tensor = torch.Tensor
Hamiltonian = Callable[..., Tensor]
log = logging.getLogger(__name__)


@dataclass
class GeneratorResult:
    """History of a :func:`train_generator` run and the final free energy (kT, model units)."""

    history: list[dict[str, float]]
    free_energy: FreeEnergyEstimate


def annealed_kT(step: int, anneal_from: float, anneal_steps: int) -> float:
    """Latent temperature (model units) at ``step``: geometric from ``anneal_from`` to 1."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return 1.0
    return float(anneal_from ** (1.0 - step / anneal_steps))


@torch.no_grad()
def estimate_free_energy(flow: nn.Module, latent: nn.Module, hamiltonian: Hamiltonian,
                         n_samples: int, batch_size: int = 1024,
                         generator: torch.Generator | None = None,
                         objective: str = "phase_space") -> FreeEnergyEstimate:
    """Free energy (kT) from ``n_samples`` model samples at the model's temperature.

    With ``objective="configuration"`` ``hamiltonian`` is the potential ``U(q) / kT`` and the
    estimate is the configuration free energy (the phase-space one minus the kinetic part).
    """
    works = []
    for start in range(0, n_samples, batch_size):
        size = min(batch_size, n_samples - start)
        if objective == "configuration":
            q, log_prob = sample_configurations(flow, latent, size, 1.0, generator)
            energy = hamiltonian(q)
        else:
            p, q, log_prob = sample_phase_space(flow, latent, size, 1.0, generator)
            energy = hamiltonian(p, q)
        works.append(-log_weights(log_prob, energy, target_log_volume(hamiltonian, q)))
    return free_energy_estimate(torch.cat(works))


def train_generator(module: nn.Module, hamiltonian: Hamiltonian, steps: int,
                    batch_size: int = 256, lr: float = 1e-3, kl_weight: float = 1.0,
                    ml_weight: float = 0.0, data: tuple[Tensor, Tensor] | None = None,
                    ml_batch_size: int = 256, anneal_from: float = 1.0, anneal_steps: int = 0,
                    weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                    grad_clip: float | None = 10.0, recenter_every: int | None = None,
                    n_eval: int = 4096, seed: int = 0, log_every: int = 50,
                    progress: bool = False, objective: str = "phase_space") -> GeneratorResult:
    """Minimise the (mixed) variational loss of ``module.flow`` and ``module.latent``.

    Parameters
    ----------
    module : nn.Module
        Has attributes ``flow`` (a symplectic flow) and ``latent`` (a harmonic latent), e.g. an
        :class:`~nct_md.model.NCTModel` or :class:`~nct_md.systems.harmonic_chain.NCTPair`.
    hamiltonian : callable
        ``H(p, q) / kT`` ``(B,)`` of flow-input coordinates ``(B, n)`` (model units); for
        ``objective="configuration"`` the potential ``U(q) / kT`` (optionally with a
        ``log_volume(q)`` method, see :func:`~nct_md.train.configuration_free_energy`).
    steps, batch_size : int
        Optimiser steps; latent samples per step.
    lr : float
        Peak learning rate (cosine schedule).
    kl_weight, ml_weight : float
        Weights of the variational and the maximum-likelihood terms (both >= 0, not both 0).
    data : (p, q) tensors ``(n_frames, n)``, optional
        Phase-space samples in flow-input coordinates; needed when ``ml_weight > 0``.
    anneal_from, anneal_steps : float, int
        Temperature annealing of the variational term (see the module docstring).
    recenter_every : int, optional
        Call ``flow.recenter()`` every this many steps.
    n_eval : int
        Samples for the final free-energy estimate (0 skips it).
    seed : int
    log_every : int
        Steps between INFO log lines of the free-energy estimate.
    objective : {"phase_space", "configuration"}
        Train the phase-space density, or the configuration density of a separable flow.

    Returns
    -------
    GeneratorResult
    """
    if kl_weight < 0 or ml_weight < 0 or kl_weight + ml_weight == 0:
        raise NCTInputError("kl_weight and ml_weight must be >= 0 and not both 0")
    if ml_weight > 0 and data is None:
        raise NCTInputError("ml_weight > 0 needs MD data for the likelihood term")
    if anneal_from <= 0:
        raise NCTInputError(f"anneal_from must be positive, got {anneal_from}")
    if objective not in OBJECTIVES:
        raise NCTInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    flow, latent = module.flow, module.latent
    if objective == "configuration" and not flow.configuration_separable:
        raise NCTInputError("objective 'configuration' needs a configuration-separable flow "
                            "(point transformations only); use objective 'phase_space'")
    configuration = objective == "configuration"
    generator = torch.Generator().manual_seed(seed)

    def loss(step: int) -> tuple[Tensor, dict[str, float]]:
        total = torch.zeros((), dtype=latent.log_frequencies.dtype)
        metrics: dict[str, float] = {}
        if kl_weight > 0:
            kT = annealed_kT(step, anneal_from, anneal_steps)
            free_energy = configuration_free_energy if configuration else variational_free_energy
            value, est = free_energy(flow, latent, hamiltonian, batch_size, kT, generator)
            total = total + kl_weight * value
            metrics.update(kT=kT, free_energy=est.variational, free_energy_stderr=est.stderr,
                           free_energy_reweighted=est.reweighted, ess=est.ess)
        if ml_weight > 0:
            idx = torch.randint(len(data[0]), (ml_batch_size,), generator=generator)
            nll = (configuration_negative_log_likelihood(flow, latent, data[1][idx])
                   if configuration else
                   negative_log_likelihood(flow, latent, data[0][idx], data[1][idx]))
            total = total + ml_weight * nll
            metrics["nll"] = float(nll.detach())
        if log_every and step % log_every == 0 and "free_energy" in metrics:
            log.info("step %d kT %.3f free energy %.4f +- %.4f (reweighted %.4f, ESS %.3f)",
                     step, metrics["kT"], metrics["free_energy"], metrics["free_energy_stderr"],
                     metrics["free_energy_reweighted"], metrics["ess"])
        return total, metrics

    def after_step(step: int) -> None:
        if recenter_every and step % recenter_every == 0:
            flow.recenter()

    groups = [{"params": [p for n, p in module.named_parameters()
                          if n.startswith("flow.") and p.requires_grad]},
              {"params": list(latent.parameters()), "weight_decay": 0.0}]
    trainer = Trainer(module, loss, steps=steps, lr=lr, param_groups=groups,
                      weight_decay=weight_decay, betas=betas, grad_clip=grad_clip, seed=seed,
                      generator=generator, progress=progress, after_step=after_step)
    history = trainer.fit()
    estimate = (estimate_free_energy(flow, latent, hamiltonian, n_eval, generator=generator,
                                     objective=objective)
                if n_eval else FreeEnergyEstimate(math.nan, math.nan, math.nan, math.nan))
    log.info("final free energy %.4f +- %.4f kT (reweighted %.4f, ESS %.3f)",
             estimate.variational, estimate.stderr, estimate.reweighted, estimate.ess)
    return GeneratorResult(history, estimate)


def fine_tune_model(model: NCTModel, energy: OpenMMEnergy, steps: int,
                    data: PhaseSpaceData | None = None, **kwargs) -> GeneratorResult:
    """Train an all-atom :class:`NCTModel` against ``energy`` (mixed with likelihood on ``data``).

    ``kwargs`` go to :func:`train_generator` (``objective="configuration"`` trains against
    :class:`~nct_md.generate.hamiltonian.ConfigurationPotential`). The model's ``info`` records
    the Hamiltonian, the objective, the constraint handling, the loss weights and the final free
    energy (configuration free energy for the configuration objective).
    """
    objective = kwargs.get("objective", "phase_space")
    hamiltonian = (ConfigurationPotential(model, energy) if objective == "configuration"
                   else PhaseSpaceHamiltonian(model, energy))
    pairs = None
    if data is not None:
        if data.info.n_constrained_in_selection:
            raise NCTInputError("the MD data have constrained bonds; the all-atom likelihood "
                                "term needs unconstrained data")
        dtype = model.latent.log_frequencies.dtype
        with torch.no_grad():
            pairs = model.preprocessing(data.p.to(dtype), data.q.to(dtype))
    result = train_generator(model, hamiltonian, steps, data=pairs, **kwargs)
    model.info.constraints_handling = CONSTRAINTS_HANDLING
    model.info.ood = None  # the density changed: the training data's OOD threshold no longer holds
    model.info.cv_axes = None  # and the kinetic CV axes were fitted to the old flow
    model.info.hamiltonian = HamiltonianInfo(
        form="sum p^2/2m + U(q), U from OpenMM", platform=energy.platform,
        temperature=energy.temperature, n_constraints=energy.n_constraints,
        clip_above_kT=energy.clip_above,
        objective=objective,
        kl_weight=kwargs.get("kl_weight", 1.0), ml_weight=kwargs.get("ml_weight", 0.0),
        steps=steps,
        free_energy_kT=result.free_energy.variational,
        free_energy_stderr_kT=result.free_energy.stderr,
        free_energy_reweighted_kT=result.free_energy.reweighted,
        ess_fraction=result.free_energy.ess,
    )
    return result
