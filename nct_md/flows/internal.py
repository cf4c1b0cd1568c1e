"""Internal coordinates (bond lengths, angles, torsions) as a point transformation.

A Z-matrix places every atom from three earlier ones: atom ``i`` at distance ``b`` from ``j``,
angle ``a`` = i-j-k and torsion ``t`` = i-j-k-l. Its ``3N - 6`` values are a one-to-one map
of the configuration modulo rigid-body motion, so bonds stiffen into narrow, nearly Gaussian
coordinates and methyl rotations into single torsions, which a Cartesian flow would have to
learn as curved valleys.

:class:`InternalCoordinates` maps a model's coordinates ``x_q`` (see
:class:`nct_md.model.Preprocessing`) to standardised internal coordinates ``y``: bonds and
angles (nm, rad) shifted and scaled; torsions (rad) unwrapped at a cut in their emptiest bin,
sent through ``logit((t - cut) mod 2 pi / 2 pi)`` (so every ``y`` is reachable and every
torsion stays on its circle), then shifted and scaled. The way back rebuilds Cartesian positions
by NeRF placement and superposes them on the reference (the Eckart frame), which is the frame
``x_q`` lives in. Momenta follow ``P = (dy/dx_q)^{-T} p`` (exact, from the autograd Jacobian),
so the layer is a canonical transformation like the others.

Volume: ``d^{3N} x = d^3 t dR |det B(q)| d x_q`` for Eckart-frame coordinates (``B`` the
Eckart matrix, :func:`eckart_log_volume`) and ``d^{3N} x = d^3 t dR prod r^2 sin(a) db da dt``
in internal coordinates, so ``ln |det dy/dx_q| = ln |det B| - sum(2 ln b + ln sin a) +
ln |det dy/d(b, a, t)| + const``.
"""

from __future__ import annotations

import math
from collections import deque

import mdtraj as md
import numpy as np
import torch
from torch import nn

from nct_md.flows.base import SymplecticLayer, Tensor

#: bins of the torsion histogram whose emptiest bin sets each torsion's cut
CUT_BINS = 36
#: logit arguments are kept inside (EPS, 1 - EPS)
EPS = 1e-7


def zmatrix(topology: md.Topology) -> np.ndarray:
    """A Z-matrix ``(N, 4)`` of atom indices ``(i, j, k, l)`` from the bond graph.

    Rows are in placement order, breadth first from the heavy atom at the graph's centre,
    heavy atoms before hydrogens. Row 0 holds the root (``j, k, l = -1``), row 1 its first
    neighbour (``k, l = -1``), row 2 needs no torsion (``l = -1``). ``j`` is the atom's bonded
    parent and ``k`` the parent's parent (or an earlier neighbour of a root parent); ``l`` is an
    earlier sibling when there is one, so that e.g. the second and third methyl hydrogens have
    torsions near +-120 degrees about the C-X bond and only the first carries the rotation.
    """
    n = topology.n_atoms
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in topology.bonds:
        neighbours[a.index].append(b.index)
        neighbours[b.index].append(a.index)
    heavy = np.array([a.element is None or a.element.symbol != "H" for a in topology.atoms])
    for i in range(n):
        neighbours[i].sort(key=lambda k: (not heavy[k], k))

    def bfs(root: int) -> tuple[list[int], list[int]]:
        order, parent, seen = [root], [-1] * n, {root}
        queue = deque([root])
        while queue:
            a = queue.popleft()
            for b in neighbours[a]:
                if b not in seen:
                    seen.add(b)
                    parent[b] = a
                    order.append(b)
                    queue.append(b)
        return order, parent

    if n < 4:
        raise ValueError("internal coordinates need at least 4 atoms")
    candidates = [i for i in range(n) if heavy[i]] or list(range(n))
    depth = {}
    for i in candidates:
        order, parent = bfs(i)
        if len(order) != n:
            raise ValueError("the bond graph is not connected: internal coordinates need one "
                             "molecule with bonds (a topology from a PDB with CONECT or "
                             "standard residues)")
        levels = [0] * n
        for a in order[1:]:
            levels[a] = levels[parent[a]] + 1
        depth[i] = max(levels)
    root = min(candidates, key=lambda i: (depth[i], i))
    order, parent = bfs(root)
    placed: list[int] = []
    rows = []
    for i in order:
        j = parent[i]
        k = t = -1
        if j >= 0:
            k = parent[j] if parent[j] >= 0 else next(
                (a for a in placed if a in neighbours[j] and a != i), -1)
        if len(placed) >= 3:
            siblings = [a for a in placed if parent[a] == j and a not in (i, k)]
            if siblings:
                t = siblings[0]
            else:
                t = next(a for a in placed if a not in (i, j, k)
                         and (a in neighbours[k] or a in neighbours[j]))
        rows.append((i, j, k, t))
        placed.append(i)
    return np.asarray(rows, dtype=np.int64)


def _distances(x: Tensor, i: Tensor, j: Tensor) -> Tensor:
    return (x[:, i] - x[:, j]).norm(dim=-1)


def _angles(x: Tensor, i: Tensor, j: Tensor, k: Tensor) -> Tensor:
    u, v = x[:, i] - x[:, j], x[:, k] - x[:, j]
    return torch.atan2(torch.cross(u, v, dim=-1).norm(dim=-1), (u * v).sum(-1))


def _torsions(x: Tensor, i: Tensor, j: Tensor, k: Tensor, m: Tensor) -> Tensor:
    """Torsion i-j-k-m (rad, ``(-pi, pi]``) about the j-k axis, mdtraj's convention."""
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


def eckart_log_volume(q: Tensor, reference: Tensor, masses: Tensor) -> Tensor:
    """``ln |det B|`` ``(B,)`` of Eckart-frame positions ``q`` ``(B, 3N)`` nm.

    ``B = sum_i m_i [(r_i . q_i) I - q_i r_i^T]`` with ``r`` the reference and ``q`` both
    centred on their centres of mass (amu nm^2). The volume of configuration space per unit of
    rigid-body motion is ``|det B|`` times a constant, so a density over Eckart-frame
    coordinates is ``exp(-U / kT) |det B|``, not ``exp(-U / kT)``.
    """
    w = masses / masses.sum()
    x = q.reshape(len(q), -1, 3)
    x = x - torch.einsum("n,bni->bi", w, x)[:, None]
    r = reference - w @ reference
    dot = torch.einsum("n,bni,ni->b", masses, x, r)
    outer = torch.einsum("n,bni,nj->bij", masses, x, r)
    eye = torch.eye(3, dtype=q.dtype, device=q.device)
    return torch.linalg.slogdet(dot[:, None, None] * eye - outer)[1]


def _kabsch(x: Tensor, reference: Tensor, masses: Tensor) -> Tensor:
    """Frames ``(B, N, 3)`` centred and rotated onto ``reference`` (as :func:`phase.superpose`)."""
    w = masses / masses.sum()
    x = x - torch.einsum("n,bni->bi", w, x)[:, None]
    cov = torch.einsum("bni,n,nj->bij", x, masses, reference - w @ reference)
    u, _, vt = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u @ vt))
    u = torch.cat([u[:, :, :2], u[:, :, 2:] * sign[:, None, None]], dim=2)
    return x @ (u @ vt)


class InternalCoordinates(SymplecticLayer):
    """Model coordinates ``x_q`` ``(B, d)`` <-> standardised internal coordinates ``y``.

    Parameters
    ----------
    rows : int array ``(N, 4)``
        A Z-matrix from :func:`zmatrix`.
    n_dof : int
        ``d = 3N - 6``; must equal the Z-matrix's count of bonds, angles and torsions.

    The linear map between ``x_q`` and Cartesian positions and the coordinates' shifts, scales
    and torsion cuts are buffers, set by :meth:`attach` and :meth:`fit` (and restored by
    ``load_state_dict``).
    """

    configuration_separable = True

    def __init__(self, rows: np.ndarray | list, n_dof: int):
        super().__init__()
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        n = len(rows)
        if 3 * n - 6 != n_dof:
            raise ValueError(f"a Z-matrix of {n} atoms has {3 * n - 6} coordinates, not {n_dof}")
        self.n_atoms = n
        self.register_buffer("rows", rows)
        self.n_torsions = n - 3
        # x_q <-> Cartesian: q = x_q @ to_cartesian + at_origin, x_q = q @ from_cartesian + offset
        for name, shape in (("to_cartesian", (n_dof, 3 * n)), ("at_origin", (3 * n,)),
                            ("from_cartesian", (3 * n, n_dof)), ("offset", (n_dof,)),
                            ("reference", (n, 3)), ("masses", (n,)), ("shift", (n_dof,)),
                            ("scale", (n_dof,)), ("cut", (n - 3,))):
            self.register_buffer(name, torch.ones(shape) if name == "scale" else torch.zeros(shape))

    # -- set-up ------------------------------------------------------------------------------
    @torch.no_grad()
    def attach(self, preprocessing: nn.Module) -> None:
        """Take the affine maps of a :class:`~nct_md.model.Preprocessing` (final values) and
        its reference and masses."""
        d, n3 = self.to_cartesian.shape
        dtype = preprocessing.basis.dtype
        self.at_origin.copy_(preprocessing.cartesian(torch.zeros(1, d, dtype=dtype))[0])
        self.to_cartesian.copy_(preprocessing.cartesian(torch.eye(d, dtype=dtype))
                                - self.at_origin)
        self.offset.copy_(preprocessing.positions(torch.zeros(1, n3, dtype=dtype))[0])
        self.from_cartesian.copy_(preprocessing.positions(torch.eye(n3, dtype=dtype))
                                  - self.offset)
        self.reference.copy_(preprocessing.reference)
        self.masses.copy_(preprocessing.masses)

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
        """``x_q`` ``(B, d)`` -> Eckart-frame positions ``(B, N, 3)`` nm."""
        return (x_q @ self.to_cartesian + self.at_origin).reshape(len(x_q), -1, 3)

    def model_coordinates(self, xyz: Tensor) -> Tensor:
        """Eckart-frame positions ``(B, N, 3)`` -> ``x_q`` ``(B, d)``."""
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
        return (eckart_log_volume(xyz.reshape(len(xyz), -1), self.reference, self.masses)
                - 2 * bonds.log().sum(1) - angles.sin().log().sum(1)
                - (math.log(2 * math.pi) + log_s + log_1ms).sum(1) - self.scale.log().sum())

    def _placed(self, v: Tensor) -> Tensor:
        """Unscaled internal coordinates ``(B, d)`` -> Eckart-frame positions ``(B, N, 3)``."""
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
        return _kabsch(xyz, self.reference, self.masses)

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
