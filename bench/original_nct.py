"""The original neural canonical transformation, re-implemented as the benchmarks' reference.

The algorithm of Li, Dong, Zhang and Wang, "Neural canonical transformation with symplectic
flows" (arXiv:1910.00024), in the setting of its alanine-dipeptide example, written from the
paper and the description of its public code (github li012589/neuralCT), so that
``bench.bench_training`` can time it beside ``nct_md`` in the same process:

- a point transformation ``Q = f(q)`` of the 30 heavy-atom position coordinates by a RealNVP
  flow of 8 affine couplings with alternating masks (a random half, then its complement); each
  coupling's scale and shift networks see the whole masked vector, 30 -> 128 -> 128 -> 30 with
  Softplus activations, and the scale network ends with ``scale * tanh`` (a learnable scale per
  coordinate, starting at zero);
- the momenta lifted by a vector-Jacobian product, ``P = (df/dq)^{-T} p``: as in the original,
  the inverse flow is applied to ``Q`` and ``P = (d f^{-1}(Q) / dQ)^T p`` is taken by autograd
  with ``create_graph=True``, so that training back-propagates through the lift (a double
  backward);
- a latent of independent harmonic oscillators with learned frequencies ``w``,
  ``K(P, Q) = sum_k (P_k^2 + w_k^2 Q_k^2) / 2`` (the original writes it as a learned diagonal
  scaling of ``Q`` followed by a unit Gaussian: the same density);
- the maximum-likelihood loss ``-mean ln rho(P, Q)`` (the map is symplectic, so no Jacobian
  term), Adam (learning rate 1e-3, weight decay 1e-3 as in the original), batch 200, float32.

Positions are in nm and momenta in amu nm/ps in the benchmark (the original used Angstrom; the
cost does not depend on the unit); energies are in units of kT (the original's ``K = 1``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor


class ScaledTanh(nn.Module):
    """``scale * tanh(x)`` with a learnable ``scale`` per coordinate ``(n,)``, starting at zero."""

    def __init__(self, n: int):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(n))

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, n)`` -> ``(batch, n)``."""
        return self.scale * torch.tanh(x)


def conditioner(n: int, hidden: int, depth: int, scale: bool) -> nn.Sequential:
    """A scale (``scale=True``, ending in :class:`ScaledTanh`) or shift network
    ``n -> hidden (x depth) -> n`` with Softplus activations, PyTorch's default initialisation."""
    layers: list[nn.Module] = []
    width = n
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.Softplus()]
        width = hidden
    layers.append(nn.Linear(width, n))
    if scale:
        layers.append(ScaledTanh(n))
    return nn.Sequential(*layers)


def alternating_masks(n: int, n_couplings: int, generator: torch.Generator | None = None
                      ) -> Tensor:
    """Float masks ``(n_couplings, n)``: 1 marks the coordinates a coupling conditions on; even
    couplings take a random half, odd ones the complement of the one before."""
    masks = torch.zeros(n_couplings, n)
    for i in range(n_couplings):
        if i % 2 == 0:
            masks[i, torch.randperm(n, generator=generator)[: n // 2]] = 1.0
        else:
            masks[i] = 1.0 - masks[i - 1]
    return masks


class RealNVP(nn.Module):
    """The original point transformation: affine couplings on full-width masked vectors.

    Going to the data, coupling ``i`` maps ``y -> m y + (1 - m) (y exp(s(m y)) + t(m y))``
    (``m`` its mask, ``s`` and ``t`` masked to ``1 - m``); :meth:`to_latent` undoes the couplings
    in reverse order, ``z -> m z + (1 - m) (z - t(m z)) exp(-s(m z))``.

    Parameters
    ----------
    n : int
        Number of position coordinates (30 for the heavy atoms of alanine dipeptide).
    n_couplings, hidden, depth : int
        Couplings (8), network width (128) and hidden layers (2).
    generator : torch.Generator, optional
        Source of the random masks.
    """

    def __init__(self, n: int, n_couplings: int = 8, hidden: int = 128, depth: int = 2,
                 generator: torch.Generator | None = None):
        super().__init__()
        masks = alternating_masks(n, n_couplings, generator)
        self.register_buffer("masks", masks)
        self.register_buffer("complements", 1.0 - masks)
        self.scale_nets = nn.ModuleList(conditioner(n, hidden, depth, True)
                                        for _ in range(n_couplings))
        self.shift_nets = nn.ModuleList(conditioner(n, hidden, depth, False)
                                        for _ in range(n_couplings))

    def _scale_shift(self, i: int, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Coupling ``i`` on ``y`` ``(batch, n)``: the kept part ``m y`` and the masked ``s, t``."""
        kept = y * self.masks[i]
        return (kept, self.scale_nets[i](kept) * self.complements[i],
                self.shift_nets[i](kept) * self.complements[i])

    def to_latent(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """``Q = f(q)`` ``(batch, n)`` and ``ln |det dQ/dq|`` ``(batch,)`` (the original's
        ``forward``)."""
        log_det = q.new_zeros(len(q))
        for i in reversed(range(len(self.scale_nets))):
            kept, s, t = self._scale_shift(i, q)
            q = kept + self.complements[i] * (q - t) * torch.exp(-s)
            log_det = log_det - s.sum(dim=1)
        return q, log_det

    def to_data(self, Q: Tensor) -> tuple[Tensor, Tensor]:
        """``q = f^{-1}(Q)`` ``(batch, n)`` and ``ln |det dq/dQ|`` ``(batch,)`` (the original's
        ``inverse``)."""
        log_det = Q.new_zeros(len(Q))
        for i in range(len(self.scale_nets)):
            kept, s, t = self._scale_shift(i, Q)
            Q = kept + self.complements[i] * (Q * torch.exp(s) + t)
            log_det = log_det + s.sum(dim=1)
        return Q, log_det


class OriginalNCT(nn.Module):
    """Phase-space point transformation by :class:`RealNVP` with the momentum lift by autograd,
    and the harmonic latent.

    Parameters
    ----------
    n : int
        Number of position coordinates (half the phase-space dimension).
    n_couplings, hidden, depth : int
        The :class:`RealNVP` size (8, 128, 2 in the original alanine-dipeptide run).
    generator : torch.Generator, optional
        Source of the masks and of the starting frequencies (``ln w ~ N(0, 0.1^2)``, as the
        original's diagonal scaling starts).
    """

    def __init__(self, n: int = 30, n_couplings: int = 8, hidden: int = 128, depth: int = 2,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.flow = RealNVP(n, n_couplings, hidden, depth, generator)
        self.log_frequencies = nn.Parameter(0.1 * torch.randn(n, generator=generator))

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        """``(p, q)`` ``(batch, n)`` each -> ``(P, Q)``: ``Q = f(q)``, ``P = (df/dq)^{-T} p``.

        ``P`` is the vector-Jacobian product of the inverse flow at ``Q``, built with
        ``create_graph=True`` so that a loss of ``P`` back-propagates through it.
        """
        Q, _ = self.flow.to_latent(q)
        if not Q.requires_grad:  # nothing upstream needs a gradient: the lift still needs one
            Q = Q.requires_grad_()
        q_again, _ = self.flow.to_data(Q)
        (P,) = torch.autograd.grad((p * q_again).sum(), Q, create_graph=True)
        return P, Q

    def positions(self, q: Tensor) -> Tensor:
        """Positions-only forward (CV extraction): ``Q = f(q)`` ``(batch, n)`` from ``q``
        ``(batch, n)``, no momentum work. The slowest oscillators' ``Q_k`` are the CVs."""
        return self.flow.to_latent(q)[0]

    def log_prob(self, p: Tensor, q: Tensor) -> Tensor:
        """``ln rho(P, Q)`` ``(batch,)`` at ``kT = 1``: unit Jacobian, so the latent density."""
        P, Q = self(p, q)
        w = self.log_frequencies.exp()
        energy = 0.5 * (P.square() + (w * Q).square()).sum(dim=1)
        log_partition = (math.log(2 * math.pi) - self.log_frequencies).sum()
        return -energy - log_partition

    def negative_log_likelihood(self, p: Tensor, q: Tensor) -> Tensor:
        """The maximum-likelihood loss ``-mean ln rho`` over a batch ``(batch, n)``; a scalar."""
        return -self.log_prob(p, q).mean()


def optimiser(model: OriginalNCT) -> torch.optim.Adam:
    """The original's optimiser: Adam, learning rate 1e-3, weight decay 1e-3."""
    return torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)


def training_step(model: OriginalNCT, adam: torch.optim.Optimizer, p: Tensor, q: Tensor
                  ) -> float:
    """One maximum-likelihood step on the batch ``(p, q)`` ``(batch, n)``; the loss before it."""
    adam.zero_grad()
    loss = model.negative_log_likelihood(p, q)
    loss.backward()
    adam.step()
    return float(loss.detach())
