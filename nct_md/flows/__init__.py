"""Exactly symplectic layers and their composition.

Every layer maps ``(p, q) -> (P, Q)`` (tensors of shape ``(batch, n)``) and back with
``inverse``; no layer carries a log-determinant (it is 0 by construction).

- :class:`SymplecticScaling`: ``Q = e^{-a} q``, ``P = e^{a} p``.
- :class:`LinearPointTransform`: ``Q = A q``, ``P = A^{-T} p`` (``A = exp(G) B``).
- :class:`MomentumKick`, :class:`PositionDrift`: linear symmetric shears.
- :class:`LinearSymplectic`: a general element of Sp(2n) as a product of exact factors.
- :class:`AffineCoupling`: neural point transformation with the exact momentum lift.
- :class:`SplineCoupling`: rational-quadratic spline coupling (multimodal coordinates).
- :class:`InternalCoordinates`: bond lengths, angles and torsions (a Z-matrix) as a point
  transformation.
- :class:`LeapfrogFlow`: leapfrog integration of a learned ``T(p) + V(q)``.
- :class:`SymplecticFlow`: composition; reports ``configuration_separable``.
- :func:`point_flow`: a ready configuration-separable stack.
"""

from nct_md.flows.base import SymplecticFlow, SymplecticLayer
from nct_md.flows.builders import alternating_masks, point_flow
from nct_md.flows.coupling import AffineCoupling
from nct_md.flows.internal import InternalCoordinates, zmatrix
from nct_md.flows.leapfrog import LeapfrogFlow
from nct_md.flows.linear import LinearPointTransform, LinearSymplectic, MomentumKick, PositionDrift
from nct_md.flows.scaling import SymplecticScaling
from nct_md.flows.spline import SplineCoupling

__all__ = [
    "AffineCoupling",
    "InternalCoordinates",
    "LeapfrogFlow",
    "LinearPointTransform",
    "LinearSymplectic",
    "MomentumKick",
    "PositionDrift",
    "SymplecticFlow",
    "SymplecticLayer",
    "SplineCoupling",
    "SymplecticScaling",
    "alternating_masks",
    "point_flow",
    "zmatrix",
]
