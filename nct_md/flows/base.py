"""The symplectic layer interface and the composition of layers.

Every layer maps phase-space points ``(p, q)`` to ``(P, Q)``: two tensors of shape
``(batch, n)``. Layers are exactly symplectic by construction, so the Jacobian determinant is 1
and no log-determinant is carried.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

Tensor = torch.Tensor


class SymplecticLayer(nn.Module):
    """Base class: an exactly symplectic, exactly invertible map of phase space.

    Subclasses implement :meth:`forward` ``(p, q) -> (P, Q)`` and :meth:`inverse`
    ``(P, Q) -> (p, q)`` and set :attr:`configuration_separable` to ``True`` when the new
    positions ``Q`` depend on the old positions ``q`` only (a point transformation).
    """

    configuration_separable: bool = False

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """Map momenta and positions ``(batch, n)`` each to ``(P, Q)`` of the same shapes."""
        raise NotImplementedError

    def inverse(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """Exact inverse of :meth:`forward`: ``(P, Q)`` ``(batch, n)`` each to ``(p, q)``."""
        raise NotImplementedError

    def recenter(self) -> None:
        """Re-express the current map with parameters at their origin (see LinearPointTransform).

        The map itself does not change. Layers without such a reparameterisation do nothing.
        """

    def transform_positions(self, q: Tensor) -> Tensor:
        """Return ``Q`` alone; only defined for configuration-separable layers."""
        if not self.configuration_separable:
            raise TypeError(f"{type(self).__name__} mixes momenta into Q: Q(q) is undefined")
        return self.forward(torch.zeros_like(q), q)[1]

    def positions_log_det(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """``Q`` ``(batch, n)`` and ``ln |det dQ/dq|`` ``(batch,)`` (separable layers only).

        The phase-space map has determinant 1; this is the configuration part alone, which
        makes the model's configuration density ``rho(q) = rho_Q(Q(q)) |det dQ/dq|``.
        """
        raise TypeError(f"{type(self).__name__} has no configuration log-determinant")

    def inverse_positions(self, Q: Tensor) -> tuple[Tensor, Tensor]:
        """``q`` ``(batch, n)`` from ``Q`` and ``ln |det dq/dQ|`` ``(batch,)``."""
        raise TypeError(f"{type(self).__name__} has no configuration log-determinant")


class SymplecticFlow(SymplecticLayer):
    """A composition of symplectic layers, applied in order (``layers[0]`` first)."""

    def __init__(self, layers: Iterable[SymplecticLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    @property
    def configuration_separable(self) -> bool:  # type: ignore[override]
        """True when every layer is a point transformation (Q depends on q only)."""
        return all(layer.configuration_separable for layer in self.layers)

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        for layer in self.layers:
            p, q = layer(p, q)
        return p, q

    def recenter(self) -> None:
        for layer in self.layers:
            layer.recenter()

    def inverse(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        for layer in reversed(self.layers):
            P, Q = layer.inverse(P, Q)
        return P, Q

    def transform_positions(self, q: Tensor) -> Tensor:
        """Positions-only pass for configuration-separable flows (no momentum work)."""
        if not self.configuration_separable:
            raise TypeError("this flow mixes momenta into Q: Q(q) is undefined")
        for layer in self.layers:
            q = layer.transform_positions(q)
        return q

    def positions_log_det(self, q: Tensor) -> tuple[Tensor, Tensor]:
        total = q.new_zeros(len(q))
        for layer in self.layers:
            q, log_det = layer.positions_log_det(q)
            total = total + log_det
        return q, total

    def inverse_positions(self, Q: Tensor) -> tuple[Tensor, Tensor]:
        total = Q.new_zeros(len(Q))
        for layer in reversed(self.layers):
            Q, log_det = layer.inverse_positions(Q)
            total = total + log_det
        return Q, total
