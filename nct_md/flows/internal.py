"""Internal coordinates (bond lengths, angles, torsions) as a point transformation.

A Z-matrix places every atom from three earlier ones: atom ``i`` at distance ``b`` from ``j``,
angle ``a`` = i-j-k and torsion ``t`` = i-j-k-l. Its ``3N - 6`` values are a one-to-one map
of the configuration modulo rigid-body motion, so bonds stiffen into narrow, nearly Gaussian
coordinates and methyl rotations into single torsions, which a Cartesian flow would have to
learn as curved valleys.

:class:`InternalCoordinates` maps coordinates ``x_q`` (an affine image of rigid-body-free
positions in a reference frame, given to :meth:`InternalCoordinates.set_frame`) to standardised
internal coordinates ``y``: bonds and angles (nm, rad) shifted and scaled; torsions (rad)
unwrapped at a cut in their emptiest bin, sent through ``logit((t - cut) mod 2 pi / 2 pi)`` (so
every ``y`` is reachable and every torsion stays on its circle), then shifted and scaled. The
way back rebuilds Cartesian positions by NeRF placement and superposes them on the reference
(the ``superpose`` callable the layer is given), which is the frame ``x_q`` lives in. Momenta
follow ``P = (dy/dx_q)^{-T} p`` (exact, from the autograd Jacobian), so the layer is a canonical
transformation like the others.

Volume: ``d^{3N} x = d^3 t dR V(q) d x_q`` for reference-frame coordinates (``ln V`` from the
``log_volume`` callable, e.g. the Eckart volume ``ln |det B|``) and ``d^{3N} x = d^3 t dR prod
r^2 sin(a) db da dt`` in internal coordinates, so ``ln |det dy/dx_q| = ln V - sum(2 ln b +
ln sin a) + ln |det dy/d(b, a, t)| + const``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from nct_md.flows.base import SymplecticLayer, Tensor

#: bins of the torsion histogram whose emptiest bin sets each torsion's cut
CUT_BINS = 36
#: logit arguments are kept inside (EPS, 1 - EPS)
EPS = 1e-7


def _distances(x: Tensor, i: Tensor, j: Tensor) -> Tensor:
    return (x[:, i] - x[:, j]).norm(dim=-1)


def _angles(x: Tensor, i: Tensor, j: Tensor, k: Tensor) -> Tensor:
    u, v = x[:, i] - x[:, j], x[:, k] - x[:, j]
    return torch.atan2(torch.cross(u, v, dim=-1).norm(dim=-1), (u * v).sum(-1))


def _torsions(x: Tensor, i: Tensor, j: Tensor, k: Tensor, m: Tensor) -> Tensor:
    """Torsion i-j-k-m (rad, ``(-pi, pi]``) about the j-k axis (IUPAC sign convention)."""
    b1, b2, b3 = x[:, j] - x[:, i], x[:, k] - x[:, j], x[:, m] - x[:, k]
    n2 = torch.cross(b2, b3, dim=-1)
    sine = b2.norm(dim=-1) * (b1 * n2).sum(-1)
    return torch.atan2(sine, (torch.cross(b1, b2, dim=-1) * n2).sum(-1))


def _place(a: Tensor, b: Tensor, c: Tensor, bond: Tensor, angle: Tensor,
           torsion: Tensor) -> Tensor:
    """NeRF: the point ``d`` ``(B, 3)`` with ``|cd| = bond``, angle b-c-d, torsion a-b-c-d."""
    bc = c - b
    bc = bc / bc.norm(dim=-1, keepdim=True)
    n = torch.cross(b - a, bc, dim=-1)
    n = n / n.norm(dim=-1, keepdim=True)
    m = torch.cross(n, bc, dim=-1)
    local = torch.stack([-bond * torch.cos(angle), bond * torch.sin(angle) * torch.cos(torsion),
                         bond * torch.sin(angle) * torch.sin(torsion)], dim=-1)
    return c + local[:, :1] * bc + local[:, 1:2] * m + local[:, 2:] * n


class InternalCoordinates(SymplecticLayer):
    """Coordinates ``x_q`` ``(B, d)`` <-> standardised internal coordinates ``y``.

    Parameters
    ----------
    rows : int array ``(N, 4)``
        A Z-matrix: rows ``(i, j, k, l)`` of atom indices in placement order (row 0 the root,
        ``-1`` where a reference is missing), e.g. built from a molecule's bond graph.
    n_dof : int
        ``d = 3N - 6``; must equal the Z-matrix's count of bonds, angles and torsions.
    superpose : callable ``(xyz (B, N, 3), reference (N, 3), masses (N,)) -> (B, N, 3)``
        Puts rebuilt positions into the frame ``x_q`` is defined in (differentiable).
    log_volume : callable ``(q (B, 3N), reference (N, 3), masses (N,)) -> (B,)``
        ``ln`` of the volume of configuration space per unit of rigid-body motion at positions
        ``q`` of that frame (differentiable).

    The affine map between ``x_q`` and Cartesian positions, the reference and masses the
    callables get, and the coordinates' shifts, scales and torsion cuts are buffers, set by
    :meth:`set_frame` and :meth:`fit` (and restored by ``load_state_dict``).
    """

    configuration_separable = True

    def __init__(self, rows: np.ndarray | list, n_dof: int,
                 superpose: Callable[[Tensor, Tensor, Tensor], Tensor],
                 log_volume: Callable[[Tensor, Tensor, Tensor], Tensor]):
        super().__init__()
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        n = len(rows)
        if 3 * n - 6 != n_dof:
            raise ValueError(f"a Z-matrix of {n} atoms has {3 * n - 6} coordinates, not {n_dof}")
        self.n_atoms = n
        self.register_buffer("rows", rows)
        self.n_torsions = n - 3
        self.superpose, self.log_volume = superpose, log_volume
        # x_q <-> Cartesian: q = x_q @ to_cartesian + at_origin, x_q = q @ from_cartesian + offset
        for name, shape in (("to_cartesian", (n_dof, 3 * n)), ("at_origin", (3 * n,)),
                            ("from_cartesian", (3 * n, n_dof)), ("offset", (n_dof,)),
                            ("reference", (n, 3)), ("masses", (n,)), ("shift", (n_dof,)),
                            ("scale", (n_dof,)), ("cut", (n - 3,))):
            self.register_buffer(name, torch.ones(shape) if name == "scale" else torch.zeros(shape))

    # -- set-up ------------------------------------------------------------------------------
    @torch.no_grad()
    def set_frame(self, from_cartesian: Tensor, offset: Tensor, to_cartesian: Tensor,
                  at_origin: Tensor, reference: Tensor, masses: Tensor) -> None:
        """Set the affine map ``x_q = q @ from_cartesian + offset`` (``(3N, d)``, ``(d,)``) of
        reference-frame positions ``q`` ``(B, 3N)`` nm, its inverse ``q = x_q @ to_cartesian +
        at_origin`` (``(d, 3N)``, ``(3N,)``), and the reference ``(N, 3)`` nm and masses
        ``(N,)`` amu passed to ``superpose`` and ``log_volume``."""
        for name, value in (("from_cartesian", from_cartesian), ("offset", offset),
                            ("to_cartesian", to_cartesian), ("at_origin", at_origin),
                            ("reference", reference), ("masses", masses)):
            getattr(self, name).copy_(value)

    @torch.no_grad()
    def fit(self, x_q: Tensor) -> Tensor:
        """Set torsion cuts, shifts and scales from frames ``x_q`` ``(n, d)``; return ``y``."""
        torsions = self._raw(self.cartesian(x_q))[2]
        edges = torch.linspace(-math.pi, math.pi, CUT_BINS + 1, dtype=x_q.dtype)
        for k in range(self.n_torsions):
            counts = torch.histc(torsions[:, k], CUT_BINS, -math.pi, math.pi)
            b = int(counts.argmin())
            self.cut[k] = 0.5 * (edges[b] + edges[b + 1])
        self.shift.zero_()
        self.scale.fill_(1.0)
        v = self._unscaled(x_q)[0]
        self.shift.copy_(v.mean(0))
        self.scale.copy_(v.std(0).clamp_min(1e-6))
        return (v - self.shift) / self.scale

    # -- geometry ----------------------------------------------------------------------------
    def cartesian(self, x_q: Tensor) -> Tensor:
        """``x_q`` ``(B, d)`` -> reference-frame positions ``(B, N, 3)`` nm."""
        return (x_q @ self.to_cartesian + self.at_origin).reshape(len(x_q), -1, 3)

    def model_coordinates(self, xyz: Tensor) -> Tensor:
        """Reference-frame positions ``(B, N, 3)`` -> ``x_q`` ``(B, d)``."""
        return xyz.reshape(len(xyz), -1) @ self.from_cartesian + self.offset

    def _raw(self, xyz: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Bonds ``(B, N-1)`` nm, angles ``(B, N-2)`` rad, torsions ``(B, N-3)`` rad."""
        i, j, k, t = self.rows.T
        return (_distances(xyz, i[1:], j[1:]), _angles(xyz, i[2:], j[2:], k[2:]),
                _torsions(xyz, i[3:], j[3:], k[3:], t[3:]))

    def _unscaled(self, x_q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Internal coordinates before standardisation ``(B, d)``, with the positions
        ``(B, N, 3)`` and torsion fractions ``s`` ``(B, N-3)`` in ``(0, 1)`` they came from."""
        xyz = self.cartesian(x_q)
        bonds, angles, torsions = self._raw(xyz)
        s = (torch.remainder(torsions - self.cut, 2 * math.pi) / (2 * math.pi)).clamp(EPS, 1 - EPS)
        return torch.cat([bonds, angles, torch.log(s) - torch.log1p(-s)], dim=1), xyz, s

    def _log_det(self, v: Tensor, xyz: Tensor, log_s: Tensor, log_1ms: Tensor) -> Tensor:
        """``ln |det dy/dx_q|`` ``(B,)`` at unscaled coordinates ``v``, positions ``xyz`` and
        ``ln s``, ``ln(1 - s)`` of the torsion fractions (each direction has them at hand)."""
        n = self.n_atoms
        bonds, angles = v[:, :n - 1], v[:, n - 1:2 * n - 3]
        return (self.log_volume(xyz.reshape(len(xyz), -1), self.reference, self.masses)
                - 2 * bonds.log().sum(1) - angles.sin().log().sum(1)
                - (math.log(2 * math.pi) + log_s + log_1ms).sum(1) - self.scale.log().sum())

    def _placed(self, v: Tensor) -> Tensor:
        """Unscaled internal coordinates ``(B, d)`` -> reference-frame positions ``(B, N, 3)``."""
        n = self.n_atoms
        bonds, angles, y_t = v[:, :n - 1], v[:, n - 1:2 * n - 3], v[:, 2 * n - 3:]
        torsions = self.cut + 2 * math.pi * torch.sigmoid(y_t)
        batch, zero = len(v), v.new_zeros(len(v))
        rows = self.rows.tolist()
        pos = {rows[0][0]: v.new_zeros(batch, 3)}
        pos[rows[1][0]] = torch.stack([bonds[:, 0], zero, zero], dim=1)
        i, j, k, _ = rows[2]
        # place the third atom in the xy-plane: angle i-j-k with a virtual torsion reference
        a = pos[k] + v.new_tensor([0.0, 1.0, 0.0])
        pos[i] = _place(a, pos[k], pos[j], bonds[:, 1], angles[:, 0],
                        v.new_full((batch,), math.pi))
        for m in range(3, n):
            i, j, k, t = rows[m]
            pos[i] = _place(pos[t], pos[k], pos[j], bonds[:, m - 1], angles[:, m - 2],
                            torsions[:, m - 3])
        xyz = torch.stack([pos[a] for a in range(n)], dim=1)
        return self.superpose(xyz, self.reference, self.masses)

    # -- positions ---------------------------------------------------------------------------
    def transform_positions(self, q: Tensor) -> Tensor:
        return (self._unscaled(q)[0] - self.shift) / self.scale

    def positions_log_det(self, q: Tensor) -> tuple[Tensor, Tensor]:
        v, xyz, s = self._unscaled(q)
        return (v - self.shift) / self.scale, self._log_det(v, xyz, s.log(), (-s).log1p())

    def inverse_positions(self, Q: Tensor) -> tuple[Tensor, Tensor]:
        v = Q * self.scale + self.shift
        xyz = self._placed(v)
        y_t = v[:, 2 * self.n_atoms - 3:]
        log_det = self._log_det(v, xyz, nn.functional.logsigmoid(y_t),
                                nn.functional.logsigmoid(-y_t))
        return self.model_coordinates(xyz), -log_det

    # -- phase space -------------------------------------------------------------------------
    def _jacobian(self, q: Tensor) -> Tensor:
        """``dy/dx_q`` ``(B, d, d)`` by autograd."""
        def one(x: Tensor) -> Tensor:
            return self.transform_positions(x[None])[0]
        return torch.func.vmap(torch.func.jacrev(one))(q)

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        jac = self._jacobian(q)
        P = torch.linalg.solve(jac.transpose(1, 2), p.unsqueeze(-1)).squeeze(-1)
        return P, self.transform_positions(q)

    def inverse(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        q = self.inverse_positions(Q)[0]
        p = (P.unsqueeze(1) @ self._jacobian(q)).squeeze(1)
        return p, q
