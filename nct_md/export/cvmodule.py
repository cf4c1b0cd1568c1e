"""The self-contained CV network: atom positions (nm) -> the k slowest NCT CVs.

Every class here is plain PyTorch that ``torch.jit.script`` compiles, holds only tensors and
numbers, and imports nothing from nct_md, so a saved TorchScript file loads in PLUMED
(LibTorch), in OpenMM-Torch or in any Python with torch alone.

Pipeline of :class:`CVModule` for a batch ``x`` of shape ``(B, 3N)`` (``x1, y1, z1, x2, ...``)
--------------------------------------------------------------------------------------------
1. :class:`Superposition` (always in float64): centre each frame on its centre of mass and
   rotate it onto the reference by the mass-weighted optimal rotation, found as the leading
   eigenvector of Horn's 4 x 4 quaternion key matrix (``torch.linalg.eigh``). A rotation is
   quadratic in its quaternion, so the eigenvector's arbitrary sign cancels, and the result is
   differentiable wherever the leading eigenvalue is simple (any structure that is not
   degenerate with respect to the reference, e.g. not all atoms on one point).
2. :class:`Affine` stages: the model's preprocessing (mass weighting, projection on the internal
   (rigid-body-free) basis, centring, principal axes, 1/sqrt(kT)) and every linear point
   transformation of the flow, merged in float64 into as few ``x @ W + b`` maps as possible;
   the last one also picks the k slowest latent coordinates.
3. :class:`Coupling` stages: the flow's affine-coupling point transformations, each working on
   coordinates permuted into (conditioning, transformed) order by the preceding affine stage.

``forward`` is what PLUMED calls (derivatives by autograd); ``CVModule.jacobian`` returns the
values and the full Jacobian in one forward-mode pass (each stage's ``tangent``), about twice as
fast as a forward plus backward pass for one frame, for the OpenMM forces.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


def _key_map() -> Tensor:
    """``(9, 16)`` map from a flattened correlation matrix ``S`` to Horn's 4 x 4 key matrix.

    ``S_ij = sum_n w_n x_ni r_nj`` (frame x, reference r); the key matrix's leading eigenvector
    is the quaternion of the rotation taking x onto r.
    """
    x, y, z = 0, 1, 2
    entries = {
        (0, 0): [(1, x, x), (1, y, y), (1, z, z)], (0, 1): [(1, y, z), (-1, z, y)],
        (0, 2): [(1, z, x), (-1, x, z)], (0, 3): [(1, x, y), (-1, y, x)],
        (1, 1): [(1, x, x), (-1, y, y), (-1, z, z)], (1, 2): [(1, x, y), (1, y, x)],
        (1, 3): [(1, z, x), (1, x, z)], (2, 2): [(-1, x, x), (1, y, y), (-1, z, z)],
        (2, 3): [(1, y, z), (1, z, y)], (3, 3): [(-1, x, x), (-1, y, y), (1, z, z)],
    }
    key = torch.zeros(9, 4, 4, dtype=torch.float64)
    for (row, col), terms in entries.items():
        for sign, i, j in terms:
            key[3 * i + j, row, col] = key[3 * i + j, col, row] = sign
    return key.reshape(9, 16)


def _rotation_map() -> Tensor:
    """``(16, 9)`` map from the outer product ``q q^T`` of a unit quaternion to its rotation.

    With ``q = (a, b, c, d)``: ``R = [[aa+bb-cc-dd, 2(bc-ad), 2(bd+ac)], [2(bc+ad), aa-bb+cc-dd,
    2(cd-ab)], [2(bd-ac), 2(cd+ab), aa-bb-cc+dd]]`` (acting on column vectors).
    """
    diagonal = {0: (1, 1, -1, -1), 4: (1, -1, 1, -1), 8: (1, -1, -1, 1)}
    # off-diagonal R entry -> ((sign, quaternion pair), (sign, pair)); each pair is symmetric
    off = {1: ((1, (1, 2)), (-1, (0, 3))), 2: ((1, (1, 3)), (1, (0, 2))),
           3: ((1, (1, 2)), (1, (0, 3))), 5: ((1, (2, 3)), (-1, (0, 1))),
           6: ((1, (1, 3)), (-1, (0, 2))), 7: ((1, (2, 3)), (1, (0, 1)))}
    rot = torch.zeros(4, 4, 9, dtype=torch.float64)
    for entry, signs in diagonal.items():
        for k, sign in enumerate(signs):
            rot[k, k, entry] = sign
    for entry, terms in off.items():
        for sign, (a, b) in terms:
            rot[a, b, entry] = rot[b, a, entry] = sign
    return rot.reshape(16, 9)


class Superposition(nn.Module):
    """Differentiable mass-weighted superposition of frames on a fixed reference.

    Parameters
    ----------
    reference : tensor ``(N, 3)``, nm
        Target structure (it is centred on its centre of mass here).
    masses : tensor ``(N,)``, amu
    """

    def __init__(self, reference: Tensor, masses: Tensor):
        super().__init__()
        weights = masses / masses.sum()
        centred = reference - weights @ reference
        self.register_buffer("weights", weights)
        # weighted reference (N, 3): S = centred_frame^T @ weighted_reference
        self.register_buffer("weighted_reference", weights[:, None] * centred)
        self.register_buffer("key_map", _key_map().to(reference.dtype))
        self.register_buffer("rotation_map", _rotation_map().to(reference.dtype))
        # derivatives along each input coordinate (T = 3N directions), constant because the
        # centring and the key matrix are linear in the positions
        n = weights.numel()
        unit = torch.eye(3 * n, dtype=reference.dtype).reshape(3 * n, n, 3)
        d_centred = unit - (weights @ unit)[:, None, :]
        d_corr = d_centred.transpose(1, 2) @ self.weighted_reference
        self.register_buffer("d_centred", d_centred)  # (T, N, 3)
        self.register_buffer("d_key", (d_corr.reshape(3 * n, 9) @ self.key_map).reshape(
            3 * n, 4, 4))

    def _key(self, centred: Tensor) -> Tensor:
        """Horn's key matrices ``(B, 4, 4)`` of centred frames ``(B, N, 3)``."""
        corr = centred.transpose(1, 2) @ self.weighted_reference
        return (corr.reshape(centred.shape[0], 9) @ self.key_map).reshape(-1, 4, 4)

    def _rotation(self, quaternion: Tensor) -> Tensor:
        """Rotation matrices ``(B, 3, 3)`` of unit quaternions ``(B, 4)``."""
        outer = quaternion[:, :, None] * quaternion[:, None, :]
        return (outer.reshape(-1, 16) @ self.rotation_map).reshape(-1, 3, 3)

    def forward(self, xyz: Tensor) -> Tensor:
        """Frames ``(B, N, 3)`` nm -> superposed frames ``(B, N, 3)`` nm (centre of mass 0)."""
        centred = xyz - (self.weights @ xyz)[:, None, :]
        quaternion = torch.linalg.eigh(self._key(centred))[1][:, :, 3]
        return centred @ self._rotation(quaternion).transpose(1, 2)

    def tangent(self, xyz: Tensor) -> tuple[Tensor, Tensor]:
        """Superposed frames ``(B, N, 3)`` and their derivatives ``(B, 3N, N, 3)``.

        Derivative ``[b, t]`` is along input coordinate t (atom t // 3, axis t % 3). The leading
        eigenvector moves by ``sum_i v_i (v_i . dK q) / (l_4 - l_i)`` over the other
        eigenpairs (first-order perturbation theory, the formula autograd's eigh uses).
        """
        centred = xyz - (self.weights @ xyz)[:, None, :]
        eigenvalues, vectors = torch.linalg.eigh(self._key(centred))
        quaternion = vectors[:, :, 3]
        d_key_q = torch.einsum("tij,bj->bti", self.d_key, quaternion)
        gaps = eigenvalues[:, 3:] - eigenvalues[:, :3]
        along = torch.einsum("bik,bti->btk", vectors[:, :, :3], d_key_q) / gaps[:, None, :]
        d_quaternion = torch.einsum("bik,btk->bti", vectors[:, :, :3], along)  # (B, T, 4)
        d_outer = d_quaternion[:, :, :, None] * quaternion[:, None, None, :]
        d_outer = d_outer + d_outer.transpose(2, 3)
        batch, n_dirs = d_quaternion.shape[0], d_quaternion.shape[1]
        d_rot = (d_outer.reshape(batch, n_dirs, 16) @ self.rotation_map).reshape(
            batch, n_dirs, 3, 3)
        rot_t = self._rotation(quaternion).transpose(1, 2)
        aligned = centred @ rot_t
        d_aligned = self.d_centred[None] @ rot_t[:, None] + centred[:, None] @ d_rot.transpose(2, 3)
        return aligned, d_aligned


class Affine(nn.Module):
    """``x @ weight + bias``: weight ``(n_in, n_out)``, bias ``(n_out,)``."""

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.addmm(self.bias, x, self.weight)

    def tangent(self, x: Tensor, dx: Tensor) -> tuple[Tensor, Tensor]:
        """Values ``(B, n_out)`` and derivatives ``(B, T, n_out)`` from ``dx (B, T, n_in)``."""
        return torch.addmm(self.bias, x, self.weight), dx @ self.weight


class Coupling(nn.Module):
    """Affine-coupling point transformation on split-ordered coordinates ``[q_a, q_b]``.

    ``Q_a = q_a`` and ``Q_b = q_b exp(s) + t`` with ``h = silu(... silu(L_1 q_a))`` through the
    hidden affine layers ``L_i``, ``s = max_log_scale * tanh(s_head(h))`` and
    ``t = t_head(h)``. The training layer's input and output scales and ``1 / max_log_scale``
    are folded into the affine maps, and the permutations into and out of split order into the
    neighbouring :class:`Affine` stages.

    Parameters
    ----------
    hidden : list of Affine
        Hidden layers, each followed by SiLU (may be empty).
    s_head, t_head : Affine
        Hidden features -> ``n_b`` log-scales (before the tanh bound) and shifts.
    max_log_scale : float
    """

    def __init__(self, hidden: list[Affine], s_head: Affine, t_head: Affine,
                 max_log_scale: float):
        super().__init__()
        self.hidden = nn.ModuleList(hidden)
        self.s_head = s_head
        self.t_head = t_head
        self.n_a = int((hidden[0] if hidden else s_head).weight.shape[0])
        self.max_log_scale = float(max_log_scale)

    def forward(self, q: Tensor) -> Tensor:
        qa, qb = q[:, :self.n_a], q[:, self.n_a:]
        h = qa
        for layer in self.hidden:
            h = torch.nn.functional.silu(layer(h))
        s = self.max_log_scale * torch.tanh(self.s_head(h))
        return torch.cat([qa, torch.addcmul(self.t_head(h), qb, s.exp())], dim=1)

    def tangent(self, q: Tensor, dq: Tensor) -> tuple[Tensor, Tensor]:
        """Values ``(B, n)`` and derivatives ``(B, T, n)`` from ``dq (B, T, n)``."""
        qa, qb = q[:, :self.n_a], q[:, self.n_a:]
        dqa, dqb = dq[:, :, :self.n_a], dq[:, :, self.n_a:]
        h, dh = qa, dqa
        for layer in self.hidden:
            pre, d_pre = layer.tangent(h, dh)
            sig = torch.sigmoid(pre)
            h = pre * sig
            dh = d_pre * (sig + h - h * sig)[:, None, :]  # silu'(x) = sig + silu (1 - sig)
        raw, d_raw = self.s_head.tangent(h, dh)
        bounded = torch.tanh(raw)
        s = self.max_log_scale * bounded
        d_s = d_raw * (self.max_log_scale - s * bounded)[:, None, :]
        t, d_t = self.t_head.tangent(h, dh)
        scaled = qb * s.exp()
        d_qb = dqb * s.exp()[:, None, :] + scaled[:, None, :] * d_s + d_t
        return torch.cat([qa, scaled + t], dim=1), torch.cat([dqa, d_qb], dim=2)


class CVModule(nn.Module):
    """Positions of the model's atoms -> its ``n_cvs`` slowest latent positions.

    Parameters
    ----------
    superposition : Superposition
        In float64 (it runs in float64 whatever the network's dtype: a float32 superposition
        costs as much accuracy as the whole float32 network).
    stages : list of Affine / Coupling modules
        Applied in order to the ``(B, 3N)`` superposed, flattened frames.
    head : Affine
        Last map, to ``(B, n_cvs)``; its dtype is the network's computing dtype.
    atom_indices : list of int
        The atoms' 0-based indices in the full topology the model was trained on (metadata).

    The forward pass takes ``x`` of shape ``(B, 3N)`` in nm, atom-major (``x1, y1, z1, x2,
    ...``), in any floating dtype, and returns ``(B, n_cvs)`` CVs (model units: ps) in the dtype
    of ``x``.
    """

    def __init__(self, superposition: Superposition, stages: list[nn.Module], head: Affine,
                 atom_indices: list[int]):
        super().__init__()
        self.superposition = superposition
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.n_atoms = int(superposition.weights.numel())
        self.n_cvs = int(head.weight.shape[1])
        self.atom_indices = [int(i) for i in atom_indices]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != 3 * self.n_atoms:
            raise ValueError(f"expected positions of shape (batch, {3 * self.n_atoms})")
        xyz = x.to(torch.float64).reshape(x.shape[0], self.n_atoms, 3)
        z = self.superposition(xyz).reshape(x.shape[0], 3 * self.n_atoms)
        z = z.to(self.head.weight.dtype)
        for stage in self.stages:
            z = stage(z)
        return self.head(z).to(x.dtype)

    @torch.jit.export
    def jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """CVs ``(B, n_cvs)`` and their Jacobian ``(B, n_cvs, 3N)`` (ps/nm) by forward mode.

        One pass carries the derivatives along all 3N inputs, without autograd (several times
        faster than a forward plus backward pass for one frame); call it without gradients.
        """
        if x.dim() != 2 or x.shape[1] != 3 * self.n_atoms:
            raise ValueError(f"expected positions of shape (batch, {3 * self.n_atoms})")
        batch, n_in = x.shape[0], 3 * self.n_atoms
        aligned, d_aligned = self.superposition.tangent(
            x.to(torch.float64).reshape(batch, self.n_atoms, 3))
        dtype = self.head.weight.dtype
        z = aligned.reshape(batch, n_in).to(dtype)
        dz = d_aligned.reshape(batch, n_in, n_in).to(dtype)
        for stage in self.stages:
            z, dz = stage.tangent(z, dz)
        z, dz = self.head.tangent(z, dz)
        return z.to(x.dtype), dz.transpose(1, 2).to(x.dtype)
