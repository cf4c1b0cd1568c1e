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
2. The entry :class:`Affine` map: the model's preprocessing (mass weighting, projection on the
   internal (rigid-body-free) basis, centring, principal axes, 1/sqrt(kT)), every linear point
   transformation of the flow before its first coupling, the permutation into that coupling's
   split order and its conditioner's first layer, merged in float64 into one ``x @ W + b``.
3. A chain of :class:`Coupling` stages: the flow's affine-coupling point transformations (the
   TorchScript counterpart of :class:`nct_md.flows.AffineCoupling`), each fused with the linear
   map to what follows it (the next coupling's input, or the k slowest latent coordinates).
   A constant coordinate carries every bias, so each layer is a single matrix product.

Derivatives
-----------
On one frame the cost is the number of small tensor operations, not arithmetic, and an autograd
backward pass through the whole pipeline costs about twice the forward pass, once per CV as
PLUMED asks for them. So every stage has a hand-written reverse step that carries all k CVs'
cotangents at once, and ``jacobian`` returns values and the full Jacobian from one forward and
one such reverse sweep. When its input requires grad (PLUMED's call), ``forward`` returns
``values + J (x - x.data)``: numerically the values, and to autograd a single linear node whose
backward is ``J`` itself, so each of PLUMED's k backward calls costs a few microseconds.
(``x.data`` and not ``x.detach()``: PLUMED loads the file with ``torch.jit.freeze``, whose
graph optimisation removes ``detach`` as a no-op; autograd would then differentiate the
hand-written sweep, which has no derivatives.) Its first derivatives are exact; it has no
second derivatives (do not differentiate the gradients of this module).
"""

import torch
from torch import nn

Tensor = torch.Tensor

#: Constant unit that carries the biases through the conditioners' hidden layers: its SiLU is
#: itself and its SiLU slope 1, exactly, in float32 and float64 (``exp(-64)`` vanishes next to 1).
BIAS_UNIT = 64.0


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
        # the rotation map for the transpose R^T (entry 3 l + i is R_il), so that
        # (q @ rotation_half)[a] is half the derivative of R^T by q_a and q^T of it is R^T
        rotation_t = _rotation_map().to(dtype).reshape(4, 4, 3, 3).transpose(2, 3)
        self.n_atoms = int(n)
        self.register_buffer("centring", centring)
        self.register_buffer("centring_t", centring.T.contiguous())
        self.register_buffer("key", key)
        self.register_buffer("rotation_half", rotation_t.reshape(4, 36).contiguous())
        # (q @ key_slope)[b, a] = 2 d(K q)_a / dx: twice the cotangent map u -> positions of a
        # key-matrix cotangent u q^T (the 2 of dR/dq folded in)
        self.register_buffer("key_slope", 2 * key.reshape(3 * n, 4, 4).permute(2, 1, 0).reshape(
            4, 12 * n).contiguous())

    def _rotation(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Of frames ``x (B, 3N)``: key-matrix eigenvalues ``(B, 4)`` and eigenvectors
        ``(B, 4, 4)`` (ascending), the leading one ``q (B, 4)``, ``half (B, 4, 9)`` (half the
        derivative of the flattened R^T by q) and the transposed rotation ``R^T (B, 3, 3)``."""
        eigenvalues, vectors = torch.linalg.eigh(torch.mm(x, self.key).view(-1, 4, 4))
        # (plain calls, not indexing: TorchScript turns x[:, :, 3] into three operations)
        quaternion = vectors.select(2, 3)
        half = torch.mm(quaternion, self.rotation_half).view(-1, 4, 9)
        rotation_t = torch.bmm(quaternion.unsqueeze(1), half).view(-1, 3, 3)
        return eigenvalues, vectors, quaternion, half, rotation_t

    def forward(self, x: Tensor) -> Tensor:
        """Flattened frames ``(B, 3N)`` nm -> superposed frames ``(B, 3N)`` (centre of mass 0)."""
        rotation_t = self._rotation(x)[4]
        centred = torch.mm(x, self.centring).view(-1, self.n_atoms, 3)
        return torch.bmm(centred, rotation_t).view(-1, 3 * self.n_atoms)

    @torch.jit.export
    def run(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Superposed frames ``(B, 3N)`` and what :meth:`pullback` needs.

        The leading eigenvector q of the key matrix K moves by ``P dK q`` with ``P = sum_i
        v_i v_i^T / (l_4 - l_i)`` over the other eigenpairs (first-order perturbation theory),
        so the rotation's part of the cotangent map is one per-frame matrix ``(B, 3N, 3N)``.
        """
        n_in = 3 * self.n_atoms
        eigenvalues, vectors, quaternion, half, rotation_t = self._rotation(x)
        others = vectors.narrow(2, 0, 3)
        gaps = eigenvalues.narrow(1, 3, 1) - eigenvalues.narrow(1, 0, 3)
        slope = torch.bmm(others / gaps.unsqueeze(1), others.transpose(1, 2))  # P, (B, 4, 4)
        to_positions = torch.mm(quaternion, self.key_slope).view(-1, 4, n_in)
        # cotangent map of R^T (rows 3 l + i) to the positions, (B, 9, 3N)
        rotation_pullback = torch.bmm(half.transpose(1, 2), torch.bmm(slope, to_positions))
        centred = torch.mm(x, self.centring).view(-1, self.n_atoms, 3)
        aligned = torch.bmm(centred, rotation_t).view(-1, n_in)
        # aligned_ni = sum_l centred_nl R^T_li: a cotangent g on it reaches R^T_li as
        # sum_n centred_nl g_ni, so the rotation's whole map is centred (x) rotation_pullback
        through_rotation = torch.bmm(centred, rotation_pullback.view(-1, 3, 3 * n_in))
        return aligned, [rotation_t.transpose(1, 2), through_rotation.view(-1, n_in, n_in)]

    @torch.jit.export
    def pullback(self, cache: list[Tensor], grad: Tensor) -> Tensor:
        """Cotangents ``(B, k, 3N)`` on the superposed frames -> on the input frames."""
        batch, k, n_in = grad.shape[0], grad.shape[1], grad.shape[2]
        centred = torch.mm(grad.reshape(batch * k, n_in), self.centring_t)
        return self.pullback_centred(cache, centred.view(batch, k, n_in))

    @torch.jit.export
    def pullback_centred(self, cache: list[Tensor], grad: Tensor) -> Tensor:
        """:meth:`pullback` of cotangents ``(B, k, 3N)`` already multiplied by ``centring_t``.

        Centring and the rotation of each atom commute, and a centred cotangent reaches the
        rotation as the plain one does (the mass-weighted centred positions sum to zero), so
        a caller may fold ``centring_t`` into its own last map (:class:`CVNetwork` does).
        """
        rotation, through_rotation = cache
        batch, k = grad.shape[0], grad.shape[1]
        direct = torch.bmm(grad.view(batch, k * self.n_atoms, 3), rotation)
        return torch.baddbmm(direct.view(grad.shape), grad, through_rotation)


class Affine(nn.Module):
    """``x @ weight + bias``: weight ``(n_in, n_out)``, bias ``(n_out,)``."""

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.addmm(self.bias, x, self.weight)


class Matrix(nn.Module):
    """A constant matrix ``weight (n_in, n_out)`` (the reverse sweep uses its transposed view:
    one copy of each matrix keeps the whole network in the CPU's cache)."""

    def __init__(self, weight: Tensor):
        super().__init__()
        self.register_buffer("weight", weight.contiguous())


class Coupling(nn.Module):
    """An affine coupling fused with the linear map to what follows it, and the rest of the flow.

    Works on ``X = [q, 1, p, BIAS_UNIT]`` (``(B, n + 1 + H + 1)``): the coupling's coordinates
    ``q`` in split order (``q_a`` first), a constant 1, and the pre-activation ``p`` of the
    conditioner's first hidden layer with a constant :data:`BIAS_UNIT` (it carries the hidden
    layers' biases: ``silu(BIAS_UNIT) == BIAS_UNIT`` exactly, so every layer is one matrix
    product). With ``h = silu(... silu(p))`` through ``hidden`` and ``[r, t] = h @ head``
    (zero on the ``q_a`` and constant columns):
    ``z = q exp(max_log_scale tanh(r)) + t`` (``q_a`` and the constant unchanged), and
    ``z @ exit`` is the next coupling's ``X`` (``rest``) or, for the last one, the CVs. The
    training layer's feature scales and ``1 / max_log_scale``, every linear layer of the flow
    and the permutations into split order are folded into these matrices.

    Parameters
    ----------
    hidden : list of tensors ``(H + 1, H + 1)``
        The conditioner's hidden-to-hidden layers, each followed by SiLU (may be empty).
    head : tensor ``(H + 1, 2 (n + 1))``
        Last hidden features -> ``[r, t]``.
    exit : tensor ``(n + 1, m)``
        ``z`` -> the next stage's input (``m``: its ``X`` width, or the number of CVs).
    max_log_scale : float
    rest : Coupling or None
        The next coupling; None for the last one.
    """

    def __init__(self, hidden: list[Tensor], head: Tensor, exit: Tensor, max_log_scale: float,
                 rest: "Coupling | None"):
        super().__init__()
        self.hidden = nn.ModuleList([Matrix(w) for w in hidden])
        # the same layers, last first, for the reverse sweep (buffers shared, not copied)
        self.hidden_reversed = nn.ModuleList(list(self.hidden)[::-1])
        self.n = int(head.shape[1]) // 2
        self.width = int(head.shape[0])
        self.max_log_scale = float(max_log_scale)
        self.register_buffer("head", head.contiguous())
        self.register_buffer("exit", exit.contiguous())
        # (addcmul's zero term: max_log_scale g slope in one operation)
        self.register_buffer("zero", torch.zeros(1, 1, dtype=head.dtype))
        self.rest = rest

    def forward(self, x: Tensor) -> Tensor:
        """``X (B, n + 1 + H + 1)`` -> the CVs ``(B, k)``."""
        q, p = x.split([self.n, self.width], dim=1)
        h = torch.nn.functional.silu(p)
        for layer in self.hidden:
            h = torch.nn.functional.silu(torch.mm(h, layer.weight))
        r, t = torch.mm(h, self.head).split([self.n, self.n], dim=1)
        z = torch.addcmul(t, q, torch.exp(torch.tanh(r) * self.max_log_scale))
        out = torch.mm(z, self.exit)
        if self.rest is None:
            return out
        return self.rest(out)

    def sweep(self, x: Tensor, k: int, single: bool) -> tuple[Tensor, Tensor]:
        """The CVs ``(B, k)`` and their cotangents on ``X``, ``(B k, n + 1 + H + 1)`` (row
        ``b k + j``: frame b, CV j); ``single``: B is 1 (per-frame factors then broadcast)."""
        q, p = x.split([self.n, self.width], dim=1)
        pre = [p]
        h = torch.nn.functional.silu(p)
        for layer in self.hidden:
            p = torch.mm(h, layer.weight)
            pre.append(p)
            h = torch.nn.functional.silu(p)
        r, t = torch.mm(h, self.head).split([self.n, self.n], dim=1)
        bounded = torch.tanh(r)
        scale = torch.exp(bounded * self.max_log_scale)
        scaled = q * scale
        out = torch.mm(scaled + t, self.exit)
        slope = torch.ops.aten.tanh_backward(scaled, bounded)  # dz/dr / max_log_scale
        if self.rest is None:
            values = out
            grad = self.exit.t() if single else self.exit.t().repeat(x.shape[0], 1)
        else:
            values, grad_out = self.rest.sweep(out, k, single)
            grad = torch.mm(grad_out, self.exit.t())
        if not single:
            scale = scale.repeat_interleave(k, dim=0)
            slope = slope.repeat_interleave(k, dim=0)
            pre = [a.repeat_interleave(k, dim=0) for a in pre]
        g_r = torch.addcmul(self.zero, grad, slope, value=self.max_log_scale)
        g = torch.ops.aten.silu_backward(torch.mm(torch.cat([g_r, grad], dim=1), self.head.t()),
                                         pre.pop())
        for layer in self.hidden_reversed:
            g = torch.ops.aten.silu_backward(torch.mm(g, layer.weight.t()), pre.pop())
        return values, torch.cat([grad * scale, g], dim=1)


class CVNetwork(nn.Module):
    """Positions of the model's atoms -> its ``n_cvs`` slowest latent positions, and Jacobian.

    Parameters
    ----------
    superposition : Superposition
        In float64 (it runs in float64 whatever the network's dtype: a float32 superposition
        costs as much accuracy as the whole float32 network).
    entry : Affine
        Superposed, flattened frames ``(B, 3N)`` -> the first coupling's input ``X``, or the
        CVs when there is no coupling; its dtype is the network's computing dtype.
    couplings : Coupling or None
        The first coupling (it holds the others).

    ``forward`` maps ``x (B, 3N)`` nm, atom-major (``x1, y1, z1, x2, ...``), in any floating
    dtype, to ``(B, n_cvs)`` CVs (model units: ps) in the dtype of ``x``.
    """

    def __init__(self, superposition: Superposition, entry: Affine, couplings: Coupling | None):
        super().__init__()
        self.superposition = superposition
        self.entry = entry
        self.couplings = couplings
        self.n_atoms = superposition.n_atoms
        last = couplings
        while last is not None and last.rest is not None:
            last = last.rest
        self.n_cvs = int((entry.weight if last is None else last.exit).shape[1])
        # the entry's reverse map with the superposition's centring folded in
        # (Superposition.pullback_centred)
        self.register_buffer("entry_pullback", (
            entry.weight.T.double() @ superposition.centring_t).to(entry.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        aligned = self.superposition(x.to(torch.float64))
        z = self.entry(aligned.to(self.entry.weight.dtype))
        if self.couplings is not None:
            z = self.couplings(z)
        return z.to(x.dtype)

    @torch.jit.export
    def jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """CVs ``(B, n_cvs)`` and their Jacobian ``(B, n_cvs, 3N)`` (ps/nm), without autograd.

        One forward sweep keeps what each stage's reverse step needs; one reverse sweep
        carries the cotangents of all CVs together. Call it on inputs that do not require grad.
        """
        batch, k = x.shape[0], self.n_cvs
        single = batch == 1
        aligned, aligned_cache = self.superposition.run(x.to(torch.float64))
        z = self.entry(aligned.to(self.entry.weight.dtype))
        if self.couplings is None:
            values = z
            grad = self.entry_pullback if single else self.entry_pullback.repeat(batch, 1)
        else:
            values, grad_entry = self.couplings.sweep(z, k, single)
            grad = torch.mm(grad_entry, self.entry_pullback)
        grad = self.superposition.pullback_centred(
            aligned_cache, grad.to(torch.float64).view(batch, k, 3 * self.n_atoms))
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
        if x.shape[0] == 1:
            # one frame (PLUMED, MD): the autograd graph is one addmm node (through linear: a
            # frozen graph splits a plain torch.addmm into two nodes, mm and add)
            return torch.nn.functional.linear(x - constant, jacobian.select(0, 0), values)
        return values + (jacobian * (x - constant).unsqueeze(1)).sum(2)

    @torch.jit.export
    def jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """CVs ``(B, n_cvs)`` and their Jacobian ``(B, n_cvs, 3N)`` (ps/nm), without autograd.

        One forward sweep and one reverse sweep carrying all CVs' cotangents together; call it
        on inputs that do not require grad (the OpenMM forces use it).
        """
        self._check(x)
        return self.network.jacobian(x)
