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
3. :class:`ScriptedCoupling` stages: the flow's affine-coupling point transformations (the
   TorchScript counterpart of :class:`nct_md.flows.AffineCoupling`), each working on
   coordinates permuted into (conditioning, transformed) order by the preceding affine stage.

Derivatives
-----------
On one frame the cost is the number of small tensor operations, not arithmetic, and an autograd
backward pass through the whole pipeline costs about twice the forward pass, once per CV as
PLUMED asks for them. So every stage has a hand-written reverse-mode ``pullback`` that carries
all k CVs' cotangents at once, and ``jacobian`` returns values and the full Jacobian from one
forward and one such reverse sweep. When its input requires grad (PLUMED's call), ``forward``
returns ``values + J (x - x.data)``: numerically the values, and to autograd a single
linear node whose backward is ``J`` itself, so each of PLUMED's k backward calls costs a few
microseconds. (``x.data`` and not ``x.detach()``: PLUMED loads the file with
``torch.jit.freeze``, whose graph optimisation removes ``detach`` as a no-op; autograd would
then differentiate the hand-written sweep, which has no derivatives.) Its first derivatives are
exact; it has no second derivatives (do not differentiate the gradients of this module).
"""

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


def _rows(per_frame: Tensor, k: int) -> Tensor:
    """Per-frame factors ``(B, d)`` laid out for cotangent rows ``b k + j`` (``(B k, d)``).

    One frame (the MD case) broadcasts as it is, with no copy.
    """
    if per_frame.shape[0] == 1:
        return per_frame
    return per_frame.repeat_interleave(k, dim=0)


class Superposition(nn.Module):
    """Differentiable mass-weighted superposition of frames on a fixed reference.

    Centring and Horn's key matrix are linear in the flattened positions, so each is one
    matrix product; the rotation comes from the key matrix's leading eigenvector.

    Parameters
    ----------
    reference : tensor ``(N, 3)``, nm
        Target structure (it is centred on its centre of mass here).
    masses : tensor ``(N,)``, amu
    """

    def __init__(self, reference: Tensor, masses: Tensor):
        super().__init__()
        n = masses.numel()
        dtype = reference.dtype
        weights = masses / masses.sum()
        weighted_reference = weights[:, None] * (reference - weights @ reference)
        # centred = x @ centring, x the flattened (3N) positions
        centring = torch.kron(torch.eye(n, dtype=dtype) - weights[:, None],
                              torch.eye(3, dtype=dtype))
        # correlation S_ij = sum_n centred_ni weighted_reference_nj, flattened (3N, 9)
        correlation = torch.einsum("ik,nj->nikj", torch.eye(3, dtype=dtype),
                                   weighted_reference).reshape(3 * n, 9)
        key = centring @ correlation @ _key_map().to(dtype)  # (3N, 16)
        rotation_map = _rotation_map().to(dtype)  # (16, 9)
        self.n_atoms = int(n)
        self.register_buffer("centring", centring)
        self.register_buffer("centring_t", centring.T.contiguous())
        self.register_buffer("key", key)
        self.register_buffer("rotation_map", rotation_map)
        # d R_flat / d q = q @ rotation_slope (as (B, 4, 9)); Q = q @ key_slope (as (B, 4, 3N))
        # is the cotangent map u -> positions of a key-matrix cotangent u q^T
        self.register_buffer("rotation_slope", 2 * rotation_map.reshape(4, 4, 9).transpose(
            0, 1).reshape(4, 36).contiguous())
        self.register_buffer("key_slope", key.reshape(3 * n, 4, 4).permute(2, 1, 0).reshape(
            4, 12 * n).contiguous())

    def _rotation(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Key-matrix eigenvalues ``(B, 4)`` and eigenvectors ``(B, 4, 4)`` (ascending) of
        frames ``x (B, 3N)``, the leading one ``q (B, 4)`` and its rotation ``(B, 3, 3)``."""
        eigenvalues, vectors = torch.linalg.eigh(torch.mm(x, self.key).reshape(-1, 4, 4))
        # (plain calls, not indexing: TorchScript turns x[:, :, 3] into three operations)
        quaternion = vectors.select(2, 3)
        outer = (quaternion.unsqueeze(2) * quaternion.unsqueeze(1)).reshape(-1, 16)
        rotation = torch.mm(outer, self.rotation_map).reshape(-1, 3, 3)
        return eigenvalues, vectors, quaternion, rotation

    def forward(self, x: Tensor) -> Tensor:
        """Flattened frames ``(B, 3N)`` nm -> superposed frames ``(B, 3N)`` (centre of mass 0)."""
        rotation = self._rotation(x)[3]
        centred = torch.mm(x, self.centring).reshape(-1, self.n_atoms, 3)
        return torch.bmm(centred, rotation.transpose(1, 2)).reshape(x.shape[0], 3 * self.n_atoms)

    @torch.jit.export
    def run(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Superposed frames ``(B, 3N)`` and what :meth:`pullback` needs.

        The leading eigenvector q of the key matrix K moves by ``P dK q`` with ``P = sum_i
        v_i v_i^T / (l_4 - l_i)`` over the other eigenpairs (first-order perturbation theory),
        so the whole rotation's cotangent map is one per-frame matrix ``(B, 9, 3N)``.
        """
        batch = x.shape[0]
        eigenvalues, vectors, quaternion, rotation = self._rotation(x)
        others = vectors.narrow(2, 0, 3)
        gaps = eigenvalues.narrow(1, 3, 1) - eigenvalues.narrow(1, 0, 3)
        slope = torch.bmm(others / gaps.unsqueeze(1), others.transpose(1, 2))  # P, (B, 4, 4)
        d_rotation = torch.mm(quaternion, self.rotation_slope).reshape(batch, 4, 9)
        to_positions = torch.mm(quaternion, self.key_slope).reshape(batch, 4, 3 * self.n_atoms)
        rotation_pullback = torch.bmm(d_rotation.transpose(1, 2), torch.bmm(slope, to_positions))
        centred = torch.mm(x, self.centring).reshape(batch, self.n_atoms, 3)
        aligned = torch.bmm(centred, rotation.transpose(1, 2)).reshape(batch, 3 * self.n_atoms)
        return aligned, [centred, rotation, rotation_pullback]

    @torch.jit.export
    def pullback(self, cache: list[Tensor], grad: Tensor) -> Tensor:
        """Cotangents ``(B, k, 3N)`` on the superposed frames -> on the input frames."""
        centred, rotation, rotation_pullback = cache
        batch, k, n_in = grad.shape[0], grad.shape[1], grad.shape[2]
        per_atom = grad.reshape(batch, k * self.n_atoms, 3)
        direct = torch.mm(torch.bmm(per_atom, rotation).reshape(batch * k, n_in),
                          self.centring_t).reshape(batch, k, n_in)
        g_rotation = torch.bmm(grad.reshape(batch, k, self.n_atoms, 3).transpose(2, 3).reshape(
            batch, 3 * k, self.n_atoms), centred).reshape(batch, k, 9)
        return direct + torch.bmm(g_rotation, rotation_pullback)


class Affine(nn.Module):
    """``x @ weight + bias``: weight ``(n_in, n_out)``, bias ``(n_out,)``."""

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("weight_t", weight.T.contiguous())
        self.register_buffer("bias", bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.addmm(self.bias, x, self.weight)

    def run(self, x: Tensor, k: int) -> tuple[Tensor, list[Tensor]]:
        """Values ``(B, n_out)`` and an empty cache (the map is linear)."""
        return torch.addmm(self.bias, x, self.weight), []

    def pullback(self, cache: list[Tensor], grad: Tensor) -> Tensor:
        """Cotangents ``(B k, n_out)`` -> ``(B k, n_in)`` (row ``b k + j``: frame b, CV j)."""
        return torch.mm(grad, self.weight_t)


class ScriptedCoupling(nn.Module):
    """Affine-coupling point transformation on split-ordered coordinates ``[q_a, q_b]``.

    ``Q_a = q_a`` and ``Q_b = q_b exp(s) + t`` with ``h = silu(... silu(L_1 q_a))`` through the
    hidden affine layers ``L_i``, ``[r, t] = head(h)`` and ``s = max_log_scale * tanh(r)``. The
    training layer's input and output scales and ``1 / max_log_scale`` are folded into the
    affine maps, and the permutations into and out of split order into the neighbouring
    :class:`Affine` stages.

    Parameters
    ----------
    hidden : list of Affine
        Hidden layers, each followed by SiLU (may be empty).
    head : Affine
        Hidden features -> ``2 n_b`` outputs: log-scales before the tanh bound, then shifts.
    max_log_scale : float
    """

    def __init__(self, hidden: list[Affine], head: Affine, max_log_scale: float):
        super().__init__()
        self.hidden = nn.ModuleList(hidden)
        # the same layers, last first, for the reverse sweep (TorchScript cannot reverse a
        # ModuleList); their buffers are shared, not copied
        self.hidden_reversed = nn.ModuleList(hidden[::-1])
        self.head = head
        self.n_a = int((hidden[0] if hidden else head).weight.shape[0])
        self.n_b = int(head.weight.shape[1]) // 2
        self.max_log_scale = float(max_log_scale)
        # head.weight_t with the log-scale rows times max_log_scale (ds/dr = max_log_scale *
        # tanh'(r)): the pullback's map from [dr-cotangent / max_log_scale, dt-cotangent]
        pullback = head.weight_t.clone()
        pullback[:self.n_b] *= self.max_log_scale
        self.register_buffer("head_pullback", pullback)

    def forward(self, q: Tensor) -> Tensor:
        qa, qb = q.split([self.n_a, self.n_b], dim=1)
        h = qa
        for layer in self.hidden:
            h = torch.nn.functional.silu(layer(h))
        raw, t = self.head(h).split([self.n_b, self.n_b], dim=1)
        s = self.max_log_scale * torch.tanh(raw)
        return torch.cat([qa, torch.addcmul(t, qb, s.exp())], dim=1)

    def run(self, q: Tensor, k: int) -> tuple[Tensor, list[Tensor]]:
        """Values ``(B, n)`` and the cache, laid out for the k CVs' cotangent rows:
        ``[exp(s), q_b exp(s), tanh(r), pre-activation of each hidden layer ...]``."""
        qa, qb = q.split([self.n_a, self.n_b], dim=1)
        h = qa
        pre_activations: list[Tensor] = []
        for layer in self.hidden:
            pre = layer(h)
            pre_activations.append(_rows(pre, k))
            h = torch.nn.functional.silu(pre)
        raw, t = self.head(h).split([self.n_b, self.n_b], dim=1)
        bounded = torch.tanh(raw)
        scale = (self.max_log_scale * bounded).exp()
        scaled = qb * scale
        out = torch.cat([qa, scaled + t], dim=1)
        return out, [_rows(scale, k), _rows(scaled, k), _rows(bounded, k)] + pre_activations

    def pullback(self, cache: list[Tensor], grad: Tensor) -> Tensor:
        """Cotangents ``(B k, n)`` on the outputs -> on the inputs (row ``b k + j``)."""
        g_a, g_b = grad.split([self.n_a, self.n_b], dim=1)
        g_raw = torch.ops.aten.tanh_backward(g_b * cache[1], cache[2])
        g_h = torch.mm(torch.cat([g_raw, g_b], dim=1), self.head_pullback)
        i = len(self.hidden)
        for layer in self.hidden_reversed:
            i -= 1
            g_h = torch.mm(torch.ops.aten.silu_backward(g_h, cache[3 + i]), layer.weight_t)
        return torch.cat([g_a + g_h, g_b * cache[0]], dim=1)


class CVNetwork(nn.Module):
    """Positions of the model's atoms -> its ``n_cvs`` slowest latent positions, and Jacobian.

    Parameters
    ----------
    superposition : Superposition
        In float64 (it runs in float64 whatever the network's dtype: a float32 superposition
        costs as much accuracy as the whole float32 network).
    stages : list of Affine / ScriptedCoupling modules
        Applied in order to the ``(B, 3N)`` superposed, flattened frames.
    head : Affine
        Last map, to ``(B, n_cvs)``; its dtype is the network's computing dtype.

    ``forward`` maps ``x (B, 3N)`` nm, atom-major (``x1, y1, z1, x2, ...``), in any floating
    dtype, to ``(B, n_cvs)`` CVs (model units: ps) in the dtype of ``x``.
    """

    def __init__(self, superposition: Superposition, stages: list[nn.Module], head: Affine):
        super().__init__()
        self.superposition = superposition
        self.stages = nn.ModuleList(stages)
        # the same stages, last first, for the reverse sweep (buffers shared)
        self.stages_reversed = nn.ModuleList(stages[::-1])
        self.head = head
        self.n_atoms = superposition.n_atoms
        self.n_cvs = int(head.weight.shape[1])

    def forward(self, x: Tensor) -> Tensor:
        z = self.superposition(x.to(torch.float64)).to(self.head.weight.dtype)
        for stage in self.stages:
            z = stage(z)
        return self.head(z).to(x.dtype)

    @torch.jit.export
    def jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """CVs ``(B, n_cvs)`` and their Jacobian ``(B, n_cvs, 3N)`` (ps/nm), without autograd.

        One forward sweep keeps what each stage's ``pullback`` needs; one reverse sweep carries
        the cotangents of all CVs together. Call it on inputs that do not require grad.
        """
        batch, n_in, k = x.shape[0], 3 * self.n_atoms, self.n_cvs
        aligned, aligned_cache = self.superposition.run(x.to(torch.float64))
        z = aligned.to(self.head.weight.dtype)
        caches: list[list[Tensor]] = []
        for stage in self.stages:
            z, cache = stage.run(z, k)
            caches.append(cache)
        values = self.head(z)
        # cotangents of all frames and CVs as rows b k + j (frame b, CV j)
        grad = self.head.weight_t if batch == 1 else self.head.weight_t.repeat(batch, 1)
        i = len(caches)
        for stage in self.stages_reversed:
            i -= 1
            grad = stage.pullback(caches[i], grad)
        grad = self.superposition.pullback(
            aligned_cache, grad.to(torch.float64).reshape(batch, k, n_in))
        return values.to(x.dtype), grad.to(x.dtype)


@torch.jit.interface
class _ValuesAndJacobian(nn.Module):
    """What :class:`CVModule` calls through an interface: ``x -> (values, Jacobian)``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pass


class _JacobianOf(nn.Module):
    """``forward`` = the scripted network's ``jacobian``."""

    def __init__(self, network: torch.jit.ScriptModule):
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.network.jacobian(x)


class CVModule(nn.Module):
    """The exported CVs: :class:`CVNetwork` with cheap first derivatives for autograd callers.

    Parameters
    ----------
    network : CVNetwork
        Scripted here (once) if it is not already.
    atom_indices : list of int
        The atoms' 0-based indices in the full topology the model was trained on (metadata).

    ``forward`` maps ``(B, 3N)`` positions (nm) to ``(B, n_cvs)`` CVs (ps). When its input
    requires grad it returns ``values + J (x - x.data)`` (see the module docstring). The
    Jacobian is reached through a TorchScript interface, which the graph executor does not
    inline: inlined, the network would be recompiled for gradients (its inputs include one
    that requires grad) and run several times slower, although nothing in it needs autograd.
    """

    linearization: _ValuesAndJacobian

    def __init__(self, network: CVNetwork, atom_indices: list[int]):
        super().__init__()
        if not isinstance(network, torch.jit.ScriptModule):
            network = torch.jit.script(network)
        self.network = network
        self.linearization = _JacobianOf(network)
        self.n_atoms = int(network.n_atoms)
        self.n_cvs = int(network.n_cvs)
        self.atom_indices = [int(i) for i in atom_indices]

    def _check(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != 3 * self.n_atoms:
            raise ValueError(f"expected positions of shape (batch, {3 * self.n_atoms})")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if not x.requires_grad:
            return self.network(x)
        constant = x.data  # survives torch.jit.freeze, unlike detach() (module docstring)
        values, jacobian = self.linearization.forward(constant)
        if x.shape[0] == 1:  # one frame (PLUMED, MD): the autograd graph is one addmm
            return torch.addmm(values, x - constant, jacobian.select(0, 0).t())
        return values + (jacobian * (x - constant).unsqueeze(1)).sum(2)

    @torch.jit.export
    def jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """CVs ``(B, n_cvs)`` and their Jacobian ``(B, n_cvs, 3N)`` (ps/nm), without autograd.

        One forward sweep and one reverse sweep carrying all CVs' cotangents together; call it
        on inputs that do not require grad (the OpenMM forces use it).
        """
        self._check(x)
        return self.network.jacobian(x)
