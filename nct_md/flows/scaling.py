"""Symplectic scaling: ``Q = exp(-a) q``, ``P = exp(a) p`` per coordinate."""

from __future__ import annotations

import torch
from torch import nn

from nct_md.flows.base import SymplecticLayer, Tensor


class SymplecticScaling(SymplecticLayer):
    """Diagonal canonical scaling with one learnable log-scale ``a`` per coordinate.

    Parameters
    ----------
    n : int
        Number of coordinates (half the phase-space dimension).
    """

    configuration_separable = True

    def __init__(self, n: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(n))

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        return p * self.log_scale.exp(), q * (-self.log_scale).exp()

    def inverse(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        return P * (-self.log_scale).exp(), Q * self.log_scale.exp()

    def transform_positions(self, q: Tensor) -> Tensor:
        return q * (-self.log_scale).exp()

    def positions_log_det(self, q: Tensor) -> tuple[Tensor, Tensor]:
        return q * (-self.log_scale).exp(), -self.log_scale.sum().expand(len(q))

    def inverse_positions(self, Q: Tensor) -> tuple[Tensor, Tensor]:
        return Q * self.log_scale.exp(), self.log_scale.sum().expand(len(Q))
