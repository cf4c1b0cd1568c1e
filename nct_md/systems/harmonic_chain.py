"""The paper's first example: a harmonic chain with fixed ends, learned from its Hamiltonian.

``H = 1/2 sum_{i=1}^{n} [p_i^2 + (q_i - q_{i-1})^2]`` with ``q_0 = q_{n+1} = 0`` (unit masses
and springs, ``kT = 1``). Normal modes ``u_k(j) = sqrt(2/(n+1)) sin(j k pi / (n+1))`` with
frequencies ``w_k = 2 sin(k pi / (2n + 2))``; ``-ln Z = sum_k ln(w_k / 2 pi)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import nn

from nct_md.atomic import atomic_path, check_output
from nct_md.errors import NCTInputError
from nct_md.flows import SymplecticFlow, point_flow
from nct_md.latent import HarmonicLatent
from nct_md.train import Trainer, variational_free_energy
from nct_md.train.losses import FreeEnergyEstimate


def stiffness_matrix(n: int) -> np.ndarray:
    """The chain's force-constant matrix ``(n, n)``: 2 on the diagonal, -1 beside it."""
    return 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)


def analytic_frequencies(n: int) -> np.ndarray:
    """``w_k = 2 sin(k pi / (2n + 2))`` for ``k = 1..n``, ascending, shape ``(n,)``."""
    return 2 * np.sin(np.arange(1, n + 1) * np.pi / (2 * n + 2))


def normal_modes(n: int) -> np.ndarray:
    """Orthonormal normal-mode vectors as columns ``(n, n)``, slowest first."""
    j = np.arange(1, n + 1)[:, None]
    k = np.arange(1, n + 1)[None, :]
    return np.sqrt(2 / (n + 1)) * np.sin(j * k * np.pi / (n + 1))


def exact_free_energy(n: int) -> float:
    """``-ln Z`` at ``kT = 1`` (classical phase-space integral without ``h``)."""
    return float(np.sum(np.log(analytic_frequencies(n) / (2 * np.pi))))


class ChainHamiltonian(nn.Module):
    """``H(p, q)`` of the chain for batches ``(batch, n) -> (batch,)``."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("stiffness", torch.as_tensor(stiffness_matrix(n)))

    def forward(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        k = self.stiffness.to(q.dtype)
        return 0.5 * (p.square().sum(1) + ((q @ k) * q).sum(1))


class NCTPair(nn.Module):
    """A flow and its latent, held together so one optimiser and checkpoint cover both."""

    def __init__(self, flow: SymplecticFlow, latent: HarmonicLatent):
        super().__init__()
        self.flow = flow
        self.latent = latent


@dataclass
class ChainResult:
    """Outcome of :func:`fit_harmonic_chain` (frequencies ascending; free energies in kT)."""

    n: int
    learned: np.ndarray
    analytic: np.ndarray
    free_energy: FreeEnergyEstimate
    free_energy_exact: float
    slow_mode_cosines: np.ndarray
    model: NCTPair

    @property
    def max_relative_error(self) -> float:
        return float(np.max(np.abs(self.learned / self.analytic - 1)))

    def to_json(self) -> dict:
        """The harmonic-chain JSON contract, plus diagnostics."""
        return {
            "n": self.n,
            "learned": self.learned.tolist(),
            "analytic": self.analytic.tolist(),
            "free_energy": self.free_energy.variational,
            "free_energy_exact": self.free_energy_exact,
            "free_energy_stderr": self.free_energy.stderr,
            "free_energy_reweighted": self.free_energy.reweighted,
            "max_relative_error": self.max_relative_error,
            "slow_mode_cosines": self.slow_mode_cosines.tolist(),
        }


def slow_mode_directions(model: NCTPair, n_modes: int) -> np.ndarray:
    """Rows of ``dQ/dq`` at ``q = 0`` for the ``n_modes`` slowest latent modes, ``(k, n)``."""
    n = model.latent.n
    dtype = model.latent.log_frequencies.dtype
    jac = torch.autograd.functional.jacobian(
        lambda q: model.flow.transform_positions(q[None])[0], torch.zeros(n, dtype=dtype))
    return jac[model.latent.slow_order()[:n_modes]].detach().numpy()


def subspace_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between the column spans of ``a`` and ``b``."""
    return np.cos(scipy.linalg.subspace_angles(a, b))


def fit_harmonic_chain(n: int, seed: int = 0, steps: int = 3000, batch: int = 256,
                       lr: float = 0.05, betas: tuple[float, float] = (0.9, 0.9),
                       n_couplings: int = 0, n_eval: int = 20000, recenter_every: int = 200,
                       progress: bool = True,
                       on_step: Callable[[int, NCTPair], None] | None = None) -> ChainResult:
    """Learn the chain from its Hamiltonian by minimising the variational free energy.

    The flow is ``n_couplings`` affine couplings followed by a linear point transformation;
    the latent frequencies start at 1. Training runs in float64 on the CPU with Adam (second
    moment decay ``betas[1] = 0.9``, which forgets the large early gradients quickly), the
    "sticking the landing" gradient (noise vanishes at the exact solution) and the linear layer
    recentered every ``recenter_every`` steps (keeps its gradient well conditioned).
    ``on_step(step, model)``, if given, is called after every optimiser step.

    Returns
    -------
    ChainResult
        Learned and analytic frequencies, free energy from ``n_eval`` samples, and the cosines
        of the principal angles between the 3 slowest learned and analytic mode subspaces.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = NCTPair(point_flow(n, n_couplings=n_couplings, generator=generator),
                    HarmonicLatent(n)).double()
    hamiltonian = ChainHamiltonian(n)

    def loss(step: int):
        value, estimate = variational_free_energy(model.flow, model.latent, hamiltonian, batch,
                                                  generator=generator)
        return value, {"free_energy": estimate.variational}

    def after_step(step: int) -> None:
        if step % recenter_every == 0:
            model.flow.recenter()
        if on_step is not None:
            on_step(step, model)

    Trainer(model, loss, steps=steps, lr=lr, betas=betas, seed=seed, generator=generator,
            progress=progress, after_step=after_step).fit()
    with torch.no_grad():
        _, estimate = variational_free_energy(model.flow, model.latent, hamiltonian, n_eval,
                                              generator=generator)
    n_slow = min(3, n)
    cosines = subspace_cosines(slow_mode_directions(model, n_slow).T, normal_modes(n)[:, :n_slow])
    return ChainResult(n=n, learned=model.latent.sorted_frequencies().numpy(),
                       analytic=analytic_frequencies(n), free_energy=estimate,
                       free_energy_exact=exact_free_energy(n), slow_mode_cosines=cosines,
                       model=model)


__all__ = ["ChainHamiltonian", "ChainResult", "analytic_frequencies", "exact_free_energy",
           "fit_harmonic_chain", "normal_modes", "stiffness_matrix"]


def default_steps(n: int) -> int:
    """Optimiser steps that reach 1% frequency accuracy (measured up to n = 32)."""
    return max(2000, 250 * n)


def harmonic_chain_to_file(n: int, out: str | os.PathLike, seed: int = 0,
                           steps: int | None = None, n_couplings: int = 0,
                           overwrite: bool = False) -> dict:
    """Fit the ``n``-oscillator chain (:func:`fit_harmonic_chain`) and write its JSON to ``out``.

    ``steps`` defaults to :func:`default_steps`; ``out`` must end in ``.json`` and is checked
    before training and written atomically. Returns the JSON content.
    """
    out = Path(out)
    if n < 2:
        raise NCTInputError(f"n must be at least 2 (got {n})")
    if out.suffix != ".json":
        raise NCTInputError(f"out must end in .json (got {out})")
    steps = default_steps(n) if steps is None else steps
    if steps < 1:
        raise NCTInputError(f"steps must be positive (got {steps})")
    check_output(out, overwrite)
    result = fit_harmonic_chain(n, seed=seed, steps=steps, n_couplings=n_couplings).to_json()
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result


def summary_text(result: dict) -> str:
    """Learned vs analytic frequencies and free energies of a chain JSON, as a table."""
    lines = [f"harmonic chain n = {result['n']}",
             f"{'k':>3} {'learned':>10} {'analytic':>10} {'rel. error':>11}"]
    for k, (w, w0) in enumerate(zip(result["learned"], result["analytic"], strict=True), 1):
        lines.append(f"{k:>3} {w:>10.5f} {w0:>10.5f} {w / w0 - 1:>+11.2e}")
    lines.append(f"free energy {result['free_energy']:.4f} +- {result['free_energy_stderr']:.4f}"
                 f" kT, exact {result['free_energy_exact']:.4f} kT")
    return "\n".join(lines)
