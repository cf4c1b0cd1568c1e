"""Exactly symplectic layers and their composition.

Every layer maps ``(p, q) -> (P, Q)`` (tensors of shape ``(batch, n)``) and back with
``inverse``; no layer carries a log-determinant (it is 0 by construction).

- :class:`SymplecticScaling`: ``Q = e^{-a} q``, ``P = e^{a} p``.
- :class:`LinearPointTransform`: ``Q = A q``, ``P = A^{-T} p`` (``A = exp(G) B``).
- :class:`MomentumKick`: linear symmetric shear ``P = p - S q``.
- :class:`AffineCoupling`: neural point transformation with the exact momentum lift.
- :class:`SplineCoupling`: rational-quadratic spline coupling (multimodal coordinates).
- :class:`InternalCoordinates`: bond lengths, angles and torsions (a Z-matrix) as a point
  transformation.
- :class:`SymplecticFlow`: composition; reports ``configuration_separable``.
- :func:`point_flow`: a ready configuration-separable stack (what a saved model holds).

Research layers that mix momenta into positions (``PositionDrift``, ``LinearSymplectic``,
``LeapfrogFlow``) live in :mod:`nct_md.flows.experimental`: no saved model holds them.
"""

from nct_md.flows.base import SymplecticFlow, SymplecticLayer
from nct_md.flows.builders import alternating_masks, point_flow
from nct_md.flows.coupling import AffineCoupling
from nct_md.flows.internal import InternalCoordinates
from nct_md.flows.linear import LinearPointTransform, MomentumKick
from nct_md.flows.scaling import SymplecticScaling
from nct_md.flows.spline import SplineCoupling

__all__ = [
    "AffineCoupling",
    "InternalCoordinates",
    "LinearPointTransform",
    "MomentumKick",
    "SymplecticFlow",
    "SymplecticLayer",
    "SplineCoupling",
    "SymplecticScaling",
    "alternating_masks",
    "point_flow",
]
