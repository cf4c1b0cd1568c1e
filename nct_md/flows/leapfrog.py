"""Continuous-time flow: leapfrog steps of a learned separable Hamiltonian ``T(p) + V(q)``.

Each half-kick ``p -= h dV/dq`` and drift ``q += h dT/dp`` is an exactly symplectic shear, so
the whole integrator is exactly symplectic; the inverse runs the steps back with ``-h``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nct_md.flows.base import SymplecticLayer, Tensor
from nct_md.flows.coupling import mlp


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
