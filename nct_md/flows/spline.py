"""Rational-quadratic spline couplings: point transformations that can split one mode into many.

``Q_b = g(q_b; theta(q_a))`` with ``g`` a monotone rational-quadratic spline per coordinate on
``[-bound, bound]`` (identity outside, slopes matched at the ends), whose bin widths, heights and
knot slopes come from a network of ``q_a`` (Durkan et al. 2019, "Neural Spline Flows"). Unlike an
affine coupling it can make a Gaussian coordinate multimodal, as torsions of molecules are.

Momenta follow ``P = (dQ/dq)^{-T} p`` exactly, by the lift every
:class:`~nct_md.flows.coupling.Coupling` shares.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nct_md.flows.base import Tensor
from nct_md.flows.coupling import Coupling

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


class SplineCoupling(Coupling):
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

    def __init__(self, mask: Tensor, hidden: int = 64, depth: int = 2, bins: int = 8,
                 bound: float = 5.0):
        # zero last layer: equal bins and unit slopes, so the layer starts as the identity
        super().__init__(mask, 3 * bins - 1, hidden, depth)
        self.bins, self.bound = bins, bound

    def _elementwise(self, qa: Tensor, x: Tensor, inverse: bool = False
                     ) -> tuple[Tensor, Tensor]:
        scale_a, scale_b = self._split(self.feature_scale[None])
        raw = self.conditioner(qa / scale_a).reshape(len(qa), self.n_b, 3 * self.bins - 1)
        widths, heights, slopes = raw.split([self.bins, self.bins, self.bins - 1], dim=-1)
        value, log_slope = rational_quadratic(x / scale_b, widths, heights, slopes, self.bound,
                                              inverse)
        return value * scale_b, log_slope
