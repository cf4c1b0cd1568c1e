"""Neural point transformations by coupling, with the exact momentum lift.

``Q = f(q)`` splits ``q`` into a conditioning part ``q_a`` (unchanged) and a transformed part
``Q_b = g(q_b; q_a)``, elementwise monotone in ``q_b``; :class:`AffineCoupling` has
``g = q_b * exp(s(q_a)) + t(q_a)``. The momenta follow ``P = (df/dq)^{-T} p``, which for a
coupling is closed form plus one vector-Jacobian product: ``P_b = p_b / g'``,
``P_a = p_a - (dQ_b/dq_a)^T P_b`` at fixed ``q_b``. Going back, ``q_b(q_a)`` solves
``g(q_b; q_a) = Q_b``, so ``(dQ_b/dq_a)^T P_b = -(dq_b/dq_a)^T p_b`` (implicit differentiation),
again one vector-Jacobian product of what was just computed.
"""

from __future__ import annotations

import torch
from torch import nn

from nct_md.flows.base import SymplecticLayer, Tensor


def mlp(n_in: int, n_out: int, hidden: int, depth: int) -> nn.Sequential:
    """A SiLU multilayer perceptron whose last layer starts at zero (layer starts as identity).

    SiLU is smooth, so momentum transforms (which hold a first derivative of the network)
    stay differentiable for training.
    """
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    last = nn.Linear(width, n_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class Coupling(SymplecticLayer):
    """What coupling point transformations share: the split of ``q`` and the coordinate sizes.

    ``q`` splits into conditioning coordinates ``q_a`` (unchanged) and transformed ones ``q_b``;
    the conditioner network maps ``q_a / scale_a`` to ``outputs_per_coordinate`` numbers per
    transformed coordinate.

    Parameters
    ----------
    mask : bool tensor of shape ``(n,)``
        True for the conditioning coordinates ``q_a``.
    outputs_per_coordinate, hidden, depth : int
        Conditioner outputs per transformed coordinate; its width and hidden layers.
    """

    configuration_separable = True

    def __init__(self, mask: Tensor, outputs_per_coordinate: int, hidden: int, depth: int):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.all() or not mask.any():
            raise ValueError("coupling mask needs conditioning and transformed coordinates")
        idx_a, idx_b = torch.nonzero(mask).flatten(), torch.nonzero(~mask).flatten()
        self.register_buffer("idx_a", idx_a)
        self.register_buffer("idx_b", idx_b)
        self.register_buffer("unsplit", torch.cat([idx_a, idx_b]).argsort())
        self.n_b = idx_b.numel()
        self.conditioner = mlp(idx_a.numel(), outputs_per_coordinate * self.n_b, hidden, depth)
        # Typical size of each coordinate, so that coordinates of any units train alike (the
        # conditioner sees q_a / scale_a; subclasses act on q_b in units of scale_b).
        self.register_buffer("feature_scale", torch.ones(mask.numel()))

    def set_feature_scale(self, scale: Tensor) -> None:
        """Set the typical size ``(n,)`` of each input coordinate (e.g. its standard deviation)."""
        self.feature_scale.copy_(torch.as_tensor(scale, dtype=self.feature_scale.dtype))

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.idx_a], x[:, self.idx_b]

    def _join(self, xa: Tensor, xb: Tensor) -> Tensor:
        return torch.cat([xa, xb], dim=1)[:, self.unsplit]

    def _elementwise(self, qa: Tensor, x: Tensor, inverse: bool = False
                     ) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """``g(x; q_a)`` (or ``g^-1``) ``(B, n_b)`` and ``ln g'`` at the ``q_b`` side."""
        raise NotImplementedError

    def positions_log_det(self, q: Tensor) -> tuple[Tensor, Tensor]:
        qa, qb = self._split(q)
        Qb, log_slope = self._elementwise(qa, qb)
        return self._join(qa, Qb), log_slope.sum(1)

    def inverse_positions(self, Q: Tensor) -> tuple[Tensor, Tensor]:
        qa, Qb = self._split(Q)
        qb, log_slope = self._elementwise(qa, Qb, inverse=True)
        return self._join(qa, qb), -log_slope.sum(1)

    def transform_positions(self, q: Tensor) -> Tensor:
        return self.positions_log_det(q)[0]

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        create = torch.is_grad_enabled()
        qa, qb = self._split(q)
        pa, pb = self._split(p)
        with torch.enable_grad():
            qa = qa if qa.requires_grad else qa.detach().requires_grad_(True)
            Qb, log_slope = self._elementwise(qa, qb)
            Pb = pb * (-log_slope).exp()
            (lift,) = torch.autograd.grad(Qb, qa, grad_outputs=Pb, create_graph=create)
            Pa = pa - lift
        if not create:
            qa, Qb, Pb = qa.detach(), Qb.detach(), Pb.detach()
        return self._join(Pa, Pb), self._join(qa, Qb)

    def inverse(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        create = torch.is_grad_enabled()
        qa, Qb = self._split(Q)
        Pa, Pb = self._split(P)
        with torch.enable_grad():
            qa = qa if qa.requires_grad else qa.detach().requires_grad_(True)
            qb, log_slope = self._elementwise(qa, Qb, inverse=True)
            pb = Pb * log_slope.exp()
            (lift,) = torch.autograd.grad(qb, qa, grad_outputs=pb, create_graph=create)
            pa = Pa - lift
        if not create:
            qa, qb, pb = qa.detach(), qb.detach(), pb.detach()
        return self._join(pa, pb), self._join(qa, qb)


class AffineCoupling(Coupling):
    """Affine-coupling point transformation lifted to phase space.

    Parameters
    ----------
    mask : bool tensor of shape ``(n,)``
        True for the conditioning coordinates ``q_a`` (left unchanged).
    hidden, depth : int
        Width and number of hidden layers of the conditioner network.
    max_log_scale : float
        Log-scales are bounded smoothly to ``(-max_log_scale, max_log_scale)``.
    """

    def __init__(self, mask: Tensor, hidden: int = 64, depth: int = 2, max_log_scale: float = 2.0):
        super().__init__(mask, 2, hidden, depth)
        self.max_log_scale = max_log_scale

    def _shift_log_scale(self, qa: Tensor) -> tuple[Tensor, Tensor]:
        scale_a, scale_b = self._split(self.feature_scale[None])
        raw_s, t = self.conditioner(qa / scale_a).split(self.n_b, dim=1)
        return self.max_log_scale * torch.tanh(raw_s / self.max_log_scale), t * scale_b

    def _elementwise(self, qa: Tensor, x: Tensor, inverse: bool = False
                     ) -> tuple[Tensor, Tensor]:
        s, t = self._shift_log_scale(qa)
        return ((x - t) * (-s).exp() if inverse else x * s.exp() + t), s
