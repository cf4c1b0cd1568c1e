"""A particle in a 2-D double well, whose free energy is known by quadrature.

``H(p, q) = |p|^2 / 2 + V(x, y)`` with unit mass, ``kT = 1`` and
``V = barrier (x^2 - 1)^2 + stiffness / 2 (y - bend x^2)^2``: two wells at ``x = +-1`` separated
by ``barrier`` kT, with a curved valley. The exact free energy (classical phase-space integral,
no ``h``) is ``-ln Z = -ln(2 pi) - ln \\int exp(-V) dx dy``; the configuration integral is done
by adaptive quadrature (scipy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.integrate
import torch
from torch import nn

Tensor = torch.Tensor


@dataclass(frozen=True)
class DoubleWell:
    """Parameters of ``V`` (kT units)."""

    barrier: float = 1.0
    stiffness: float = 4.0
    bend: float = 0.5

    def potential_numpy(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``V(x, y)`` on numpy arrays (for the quadrature of the exact free energy)."""
        return (self.barrier * (x * x - 1) ** 2
                + 0.5 * self.stiffness * (y - self.bend * x * x) ** 2)

    def exact_free_energy(self) -> float:
        """``-ln Z`` (kT) by quadrature over a box well beyond where ``exp(-V)`` matters."""
        x_max = 1 + 6 / np.sqrt(8 * self.barrier)
        y_span = 10 / np.sqrt(self.stiffness)
        z_q, _ = scipy.integrate.dblquad(
            lambda y, x: np.exp(-self.potential_numpy(x, y)), -x_max, x_max,
            lambda x: self.bend * x * x - y_span, lambda x: self.bend * x * x + y_span,
            epsabs=1e-12, epsrel=1e-10)
        return float(-np.log(2 * np.pi) - np.log(z_q))


class DoubleWellHamiltonian(nn.Module):
    """``H(p, q)`` ``(B,)`` for batches ``(B, 2)``, ``q = (x, y)``."""

    def __init__(self, well: DoubleWell):
        super().__init__()
        self.well = well

    def potential(self, q: Tensor) -> Tensor:
        """``V(q)`` ``(B,)`` (kT), the configuration part."""
        x, y = q[:, 0], q[:, 1]
        w = self.well
        return w.barrier * (x * x - 1) ** 2 + 0.5 * w.stiffness * (y - w.bend * x * x) ** 2

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        return 0.5 * p.square().sum(1) + self.potential(q)
