"""Research layers that mix momenta into positions: no saved model holds them.

A saved :class:`~nct_md.model.NCTModel` holds the configuration-separable stack of
:func:`~nct_md.flows.point_flow`, whose latent positions depend on positions only (the CVs). The
layers here are exactly symplectic too, but their ``Q`` depends on ``p``: they serve
phase-space experiments (the paper's general canonical transformations), not CVs, and neither
``NCTModel.save`` nor the exports accept them.

- :class:`PositionDrift`: ``Q = q + S p`` with ``S`` symmetric.
- :class:`LinearSymplectic`: a general element of Sp(2n) from exact kick, drift and point
  factors (no truncated Taylor series).
- :class:`LeapfrogFlow`: leapfrog steps of a learned separable Hamiltonian ``T(p) + V(q)``;
  each half-kick and drift is an exactly symplectic shear, the inverse runs the steps back.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nct_md.flows.base import SymplecticLayer, Tensor
from nct_md.flows.coupling import mlp
from nct_md.flows.linear import LinearPointTransform, MomentumKick, symmetric


class PositionDrift(SymplecticLayer):
    """Linear shear ``Q = q + S p``, ``P = p`` with ``S`` symmetric ``(n, n)``; starts at zero."""

    configuration_separable = False

    def __init__(self, n: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n, n))

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        return p, q + p @ symmetric(self.weight)

    def inverse(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        return P, Q - P @ symmetric(self.weight)


class LinearSymplectic(SymplecticLayer):
    """A general linear symplectic map: ``n_shears`` kick-drift pairs then a point transform.

    Mixes momenta into positions, so it is not configuration-separable. Starts as the
    identity.
    """

    configuration_separable = False

    def __init__(self, n: int, n_shears: int = 2):
        super().__init__()
        factors: list[SymplecticLayer] = []
        for _ in range(n_shears):
            factors += [MomentumKick(n), PositionDrift(n)]
        factors.append(LinearPointTransform(n))
        self.factors = nn.ModuleList(factors)

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        for factor in self.factors:
            p, q = factor(p, q)
        return p, q

    def inverse(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        for factor in reversed(self.factors):
            P, Q = factor.inverse(P, Q)
        return P, Q

    def recenter(self) -> None:
        for factor in self.factors:
            factor.recenter()


def _gradient(energy: nn.Module, x: Tensor, create_graph: bool) -> Tensor:
    """``d energy(x).sum() / dx`` for a batch ``x`` of shape ``(batch, n)``."""
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x, create_graph=create_graph)
    return grad


class LeapfrogFlow(SymplecticLayer):
    """``n_steps`` leapfrog steps of step ``h`` (learnable) for ``T(p) + V(q)``, both MLPs.

    Parameters
    ----------
    n : int
        Number of coordinates.
    n_steps : int
        Integrator steps.
    step : float
        Initial step size ``h``.
    hidden, depth : int
        Width and hidden layers of the kinetic and potential networks.
    """

    configuration_separable = False

    def __init__(self, n: int, n_steps: int = 4, step: float = 0.1, hidden: int = 64,
                 depth: int = 2):
        super().__init__()
        self.n_steps = n_steps
        self.log_step = nn.Parameter(torch.tensor(math.log(step)))
        self.kinetic = mlp(n, 1, hidden, depth)
        self.potential = mlp(n, 1, hidden, depth)
        # Zero-initialised outputs make the flow the identity; start the networks slightly
        # away from zero so the layer has gradients in both energies from the first step.
        for net in (self.kinetic, self.potential):
            nn.init.normal_(net[-1].weight, std=1e-2)

    def _run(self, p: Tensor, q: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        create = torch.is_grad_enabled()
        for _ in range(self.n_steps):
            p = p - 0.5 * h * _gradient(self.potential, q, create)
            q = q + h * _gradient(self.kinetic, p, create)
            p = p - 0.5 * h * _gradient(self.potential, q, create)
        return p, q

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(p, q, self.log_step.exp())

    def inverse(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(P, Q, -self.log_step.exp())
