"""The latent Hamiltonian: independent harmonic oscillators with learnable frequencies.

``K(P, Q) = sum_k (P_k^2 + w_k^2 Q_k^2) / 2``; the canonical density at temperature ``kT``
(in the model's energy unit) is ``rho = exp(-K / kT) / Z`` with ``Z = prod_k 2 pi kT / w_k``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor


class HarmonicLatent(nn.Module):
    """``n`` independent oscillators; frequencies ``w = exp(log_w) > 0`` are parameters.

    Parameters
    ----------
    n : int
        Number of oscillators (half the phase-space dimension).
    init_frequencies : tensor of shape ``(n,)``, optional
        Starting frequencies (default all 1), in the model's inverse time unit.
    """

    def __init__(self, n: int, init_frequencies: Tensor | None = None):
        super().__init__()
        w0 = torch.ones(n) if init_frequencies is None else torch.as_tensor(init_frequencies)
        if w0.shape != (n,) or not bool((w0 > 0).all()):
            raise ValueError(f"init_frequencies must be {n} positive numbers")
        if not w0.is_floating_point():
            w0 = w0.to(torch.get_default_dtype())
        self.log_frequencies = nn.Parameter(w0.log())

    @property
    def n(self) -> int:
        return self.log_frequencies.numel()

    @property
    def frequencies(self) -> Tensor:
        """Frequencies ``w`` in parameter order, shape ``(n,)``."""
        return self.log_frequencies.exp()

    def slow_order(self) -> Tensor:
        """Indices that sort the modes from slowest (smallest ``w``) to fastest, ``(n,)``."""
        return torch.argsort(self.log_frequencies.detach())

    def sorted_frequencies(self) -> Tensor:
        """Frequencies ascending, shape ``(n,)`` (detached)."""
        return self.frequencies.detach()[self.slow_order()]

    def energy(self, P: Tensor, Q: Tensor) -> Tensor:
        """``K(P, Q)`` per sample, shape ``(batch,)``."""
        return 0.5 * (P.square() + (self.frequencies * Q).square()).sum(dim=1)

    def log_partition(self, kT: float = 1.0) -> Tensor:
        """``ln Z = sum_k ln(2 pi kT / w_k)`` (classical phase-space integral, no ``h``)."""
        return (math.log(2 * math.pi * kT) - self.log_frequencies).sum()

    def log_prob(self, P: Tensor, Q: Tensor, kT: float = 1.0) -> Tensor:
        """``ln rho(P, Q)`` at temperature ``kT``, shape ``(batch,)``."""
        return -self.energy(P, Q) / kT - self.log_partition(kT)

    def position_log_prob(self, Q: Tensor, kT: float = 1.0) -> Tensor:
        """``ln rho(Q)`` ``(batch,)`` of the positions alone, ``Q_k ~ N(0, kT / w_k^2)``."""
        w = self.frequencies
        return (-0.5 * (w * Q).square() / kT + self.log_frequencies
                - 0.5 * math.log(2 * math.pi * kT)).sum(dim=1)

    def sample_positions(self, n_samples: int, kT: float = 1.0,
                         generator: torch.Generator | None = None) -> Tensor:
        """``Q`` ``(n_samples, n)`` from the position marginal (reparameterised in ``w``)."""
        like = self.log_frequencies
        eps = torch.randn((n_samples, self.n), generator=generator, dtype=like.dtype,
                          device=like.device)
        return math.sqrt(kT) * eps / self.frequencies

    def forward(self, P: Tensor, Q: Tensor, kT: float = 1.0) -> Tensor:
        """Same as :meth:`log_prob`."""
        return self.log_prob(P, Q, kT)

    def sample(self, n_samples: int, kT: float = 1.0, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor]:
        """Draw ``(P, Q)`` from ``rho`` at ``kT``; each of shape ``(n_samples, n)``.

        ``P ~ N(0, kT)``, ``Q ~ N(0, kT / w^2)``; differentiable in ``w`` (reparameterised).
        """
        like = self.log_frequencies
        eps_p = torch.randn((n_samples, self.n), generator=generator, dtype=like.dtype,
                            device=like.device)
        return math.sqrt(kT) * eps_p, self.sample_positions(n_samples, kT, generator)
