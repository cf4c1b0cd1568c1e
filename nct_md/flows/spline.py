"""Rational-quadratic spline couplings: point transformations that can split one mode into many.

``Q_b = g(q_b; theta(q_a))`` with ``g`` a monotone rational-quadratic spline per coordinate on
``[-bound, bound]`` (identity outside, slopes matched at the ends), whose bin widths, heights and
knot slopes come from a network of ``q_a`` (Durkan et al. 2019, "Neural Spline Flows"). Unlike an
affine coupling it can make a Gaussian coordinate multimodal, as torsions of molecules are.

Momenta follow ``P = (dQ/dq)^{-T} p`` exactly: ``P_b = p_b / g'(q_b)`` and
``P_a = p_a - (dQ_b/dq_a)^T P_b`` (one vector-Jacobian product of the conditioner with ``q_b``
held fixed), as for the affine coupling.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nct_md.flows.base import SymplecticLayer, Tensor
from nct_md.flows.coupling import mlp

#: smallest bin width / height (fraction of the interval) and knot slope
MIN_BIN, MIN_SLOPE = 1e-3, 1e-3
#: softplus^-1(1 - MIN_SLOPE): a zero network output gives slope 1
_UNIT_SLOPE = math.log(math.expm1(1 - MIN_SLOPE))


def _knots(raw: Tensor, bound: float) -> Tensor:
    """Knot positions ``(..., K + 1)`` from ``(..., K)`` unnormalised bin sizes."""
    k = raw.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * k) * torch.softmax(raw, dim=-1)
    knots = torch.cumsum(sizes, dim=-1) * 2 * bound - bound
    return torch.cat([torch.full_like(knots[..., :1], -bound), knots[..., :-1],
                      torch.full_like(knots[..., :1], bound)], dim=-1)


def _slopes(raw: Tensor) -> Tensor:
    """Knot slopes ``(..., K + 1)``: positive inside, 1 at both ends (linear tails)."""
    inner = MIN_SLOPE + nn.functional.softplus(raw + _UNIT_SLOPE)
    ones = torch.ones_like(inner[..., :1])
    return torch.cat([ones, inner, ones], dim=-1)


def rational_quadratic(x: Tensor, widths: Tensor, heights: Tensor, slopes: Tensor,
                       bound: float, inverse: bool = False) -> tuple[Tensor, Tensor]:
    """Apply the spline (or its inverse) elementwise; return values and ``ln g'`` at ``x``.

    Parameters
    ----------
    x : ``(B, m)``
    widths, heights : ``(B, m, K)`` unnormalised bin sizes; slopes : ``(B, m, K - 1)``
    bound : the spline acts on ``[-bound, bound]``, the identity elsewhere
    inverse : evaluate ``g^{-1}``; the returned log-derivative is still ``ln g'`` at the output

    Returns
    -------
    values ``(B, m)`` and ``ln g'`` ``(B, m)`` (of the forward map, at the input point for
    ``inverse=False`` and at the returned point for ``inverse=True``)
    """
    xs, ys, d = _knots(widths, bound), _knots(heights, bound), _slopes(slopes)
    inside = (x > -bound) & (x < bound)
    xc = x.clamp(-bound, bound)
    edges = ys if inverse else xs
    k = (torch.searchsorted(edges.contiguous(), xc[..., None].contiguous()) - 1).clamp(
        0, widths.shape[-1] - 1)

    def at(t: Tensor, offset: int = 0) -> Tensor:
        return t.gather(-1, k + offset)[..., 0]

    x0, x1, y0, y1 = at(xs), at(xs, 1), at(ys), at(ys, 1)
    d0, d1 = at(d), at(d, 1)
    w, h = x1 - x0, y1 - y0
    s = h / w
    curve = d1 + d0 - 2 * s
    if inverse:
        dy = xc - y0
        a = h * (s - d0) + dy * curve
        b = h * d0 - dy * curve
        c = -s * dy
        xi = (2 * c) / (-b - torch.sqrt((b * b - 4 * a * c).clamp_min(0)))
        value = x0 + xi * w
    else:
        xi = (xc - x0) / w
        value = y0 + h * (s * xi * xi + d0 * xi * (1 - xi)) / (s + curve * xi * (1 - xi))
    one_minus = 1 - xi
    denominator = s + curve * xi * one_minus
    log_slope = (2 * torch.log(s) + torch.log(d1 * xi * xi + 2 * s * xi * one_minus
                                              + d0 * one_minus * one_minus)
                 - 2 * torch.log(denominator))
    return torch.where(inside, value, x), torch.where(inside, log_slope, torch.zeros_like(x))


class SplineCoupling(SymplecticLayer):
    """Rational-quadratic spline coupling point transformation lifted to phase space.

    Parameters
    ----------
    mask : bool tensor ``(n,)``
        True for the conditioning coordinates ``q_a`` (left unchanged).
    hidden, depth : int
        Conditioner width and hidden layers.
    bins : int
        Spline bins per coordinate.
    bound : float
        Half-width of the interval the spline acts on, in units of each coordinate's
        ``feature_scale``.
    """

    configuration_separable = True

    def __init__(self, mask: Tensor, hidden: int = 64, depth: int = 2, bins: int = 8,
                 bound: float = 5.0):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.all() or not mask.any():
            raise ValueError("coupling mask needs conditioning and transformed coordinates")
        idx_a, idx_b = torch.nonzero(mask).flatten(), torch.nonzero(~mask).flatten()
        self.register_buffer("idx_a", idx_a)
        self.register_buffer("idx_b", idx_b)
        self.register_buffer("unsplit", torch.cat([idx_a, idx_b]).argsort())
        self.n_b, self.bins, self.bound = idx_b.numel(), bins, bound
        # zero last layer: equal bins and unit slopes, so the layer starts as the identity
        self.conditioner = mlp(idx_a.numel(), self.n_b * (3 * bins - 1), hidden, depth)
        # typical size of each coordinate: the network sees q_a / scale_a and the spline acts
        # on q_b / scale_b (then scaled back), so coordinates of any units train alike
        self.register_buffer("feature_scale", torch.ones(mask.numel()))

    def set_feature_scale(self, scale: Tensor) -> None:
        """Set the typical size ``(n,)`` of each input coordinate (e.g. its standard deviation)."""
        self.feature_scale.copy_(torch.as_tensor(scale, dtype=self.feature_scale.dtype))

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.idx_a], x[:, self.idx_b]

    def _join(self, xa: Tensor, xb: Tensor) -> Tensor:
        return torch.cat([xa, xb], dim=1)[:, self.unsplit]

    def _spline(self, qa: Tensor, x: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        scale_a, scale_b = self._split(self.feature_scale[None])
        raw = self.conditioner(qa / scale_a).reshape(len(qa), self.n_b, 3 * self.bins - 1)
        widths, heights, slopes = raw.split([self.bins, self.bins, self.bins - 1], dim=-1)
        value, log_slope = rational_quadratic(x / scale_b, widths, heights, slopes, self.bound,
                                              inverse)
        return value * scale_b, log_slope

    def positions_log_det(self, q: Tensor) -> tuple[Tensor, Tensor]:
        qa, qb = self._split(q)
        Qb, log_slope = self._spline(qa, qb)
        return self._join(qa, Qb), log_slope.sum(1)

    def inverse_positions(self, Q: Tensor) -> tuple[Tensor, Tensor]:
        qa, Qb = self._split(Q)
        qb, log_slope = self._spline(qa, Qb, inverse=True)
        return self._join(qa, qb), -log_slope.sum(1)

    def transform_positions(self, q: Tensor) -> Tensor:
        return self.positions_log_det(q)[0]

    def _lift(self, qa: Tensor, qb: Tensor, Pb: Tensor, create_graph: bool) -> Tensor:
        """``(dQ_b/dq_a)^T P_b`` at fixed ``q_b`` (one vector-Jacobian product)."""
        Qb, _ = self._spline(qa, qb.detach())
        (vjp,) = torch.autograd.grad(Qb, qa, grad_outputs=Pb, create_graph=create_graph)
        return vjp

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        create = torch.is_grad_enabled()
        qa, qb = self._split(q)
        pa, pb = self._split(p)
        with torch.enable_grad():
            qa = qa if qa.requires_grad else qa.detach().requires_grad_(True)
            Qb, log_slope = self._spline(qa, qb)
            Pb = pb * (-log_slope).exp()
            # q_b does not depend on q_a here, so dQ_b/dq_a is the derivative at fixed q_b
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
            qb, log_slope = self._spline(qa, Qb, inverse=True)
            pb = Pb * log_slope.exp()
            pa = Pa + self._lift(qa, qb, Pb, create)
        if not create:
            qa, qb, pb = qa.detach(), qb.detach(), pb.detach()
        return self._join(pa, pb), self._join(qa, qb)
