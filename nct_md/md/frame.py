"""The Eckart frame of a reference structure: superposition, rigid-body bases, momenta.

Public API
----------
EckartFrame(reference, masses)
    The one way from Cartesian frames to rigid-body-free positions and momenta, used for
    training data and for CVs alike: ``positions(xyz)``, ``momenta(velocities, rotations)``,
    ``maxwell_boltzmann(n_frames, temperature)``, with the ``rigid`` and ``internal`` bases.
center, superpose, rigid_body_basis, internal_basis, remove_rigid_body, choose_reference
    The numerical pieces (numpy, float64).
kabsch, eckart_log_volume
    The same superposition and the Eckart volume element on torch tensors (differentiable), for
    layers that rebuild Cartesian positions.

Conventions
-----------
Mass-weighted coordinates are ``q~ = sqrt(m) q`` and ``p~ = p / sqrt(m)`` (per degree of freedom).
Frames are translated to their centre of mass and rotated by mass-weighted Kabsch onto the
centred reference, which makes the Eckart conditions hold: the mass-weighted displacement from
the reference is orthogonal to the rigid-body directions of the reference (3 translations and 3
rotations; 2 for a linear reference). Those directions are then projected out exactly from
``q~`` and ``p~``, so ``q`` and ``p`` live in ``3N - 6`` (``3N - 5``) dimensional subspaces:
``sqrt(m) q = C z`` with ``C = internal_basis(reference, masses)`` and ``z = C^T sqrt(m) q``.
Momenta are ``p = m v`` with ``v`` rotated like its frame, or Maxwell-Boltzmann draws restricted
to the same subspace, so the mean kinetic energy is ``(3N - 6) kT / 2``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from nct_md.md.thermo import dof_masses, maxwell_boltzmann

#: Relative size below which a rotational direction counts as missing (linear molecule).
LINEAR_TOL = 1e-4


def center(xyz: np.ndarray, masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translate frames to their centre of mass.

    Parameters
    ----------
    xyz : ndarray, shape ``(..., N, 3)``, nm
    masses : ndarray, shape ``(N,)``, amu

    Returns
    -------
    centred : ndarray, shape ``(..., N, 3)``
    com : ndarray, shape ``(..., 3)``
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    weights = np.asarray(masses, dtype=np.float64) / np.sum(masses)
    com = np.einsum("...ni,n->...i", xyz, weights)
    return xyz - com[..., None, :], com


def superpose(xyz: np.ndarray, reference: np.ndarray,
              masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mass-weighted Kabsch superposition of every frame on a reference (batched, no loops).

    Parameters
    ----------
    xyz : ndarray, shape ``(n_frames, N, 3)`` or ``(N, 3)``, nm
    reference : ndarray, shape ``(N, 3)``, nm
    masses : ndarray, shape ``(N,)``, amu

    Returns
    -------
    aligned : ndarray, shape like ``xyz``, float64
        ``(xyz - com) @ rotations``: each frame centred on its centre of mass and rotated to
        minimise ``sum_i m_i |x_i - r_i|^2`` against the reference centred on its own centre of
        mass.
    rotations : ndarray, shape ``(n_frames, 3, 3)`` (or ``(3, 3)``)
        Proper rotations (det +1) acting on row vectors; velocities transform as ``v @ R``.
    """
    single = np.ndim(xyz) == 2
    frames = np.asarray(xyz, dtype=np.float64)[None] if single else np.asarray(xyz, np.float64)
    masses = np.asarray(masses, dtype=np.float64)
    ref, _ = center(reference, masses)
    centred, _ = center(frames, masses)
    cov = np.einsum("fni,n,nj->fij", centred, masses, ref)
    u, _, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    u[:, :, 2] *= sign[:, None]
    rotations = u @ vt
    aligned = centred @ rotations
    return (aligned[0], rotations[0]) if single else (aligned, rotations)


def rigid_body_basis(reference: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal rigid-body directions of the reference in mass-weighted coordinates.

    Parameters
    ----------
    reference : ndarray, shape ``(N, 3)``, nm
    masses : ndarray, shape ``(N,)``, amu

    Returns
    -------
    ndarray, shape ``(3N, 6)``, or ``(3N, 5)`` for a linear reference
        Columns span the translations ``sqrt(m_i) e_a`` and infinitesimal rotations
        ``sqrt(m_i) (e_a x r_i)`` about the centre of mass, atom-major.
    """
    masses = np.asarray(masses, dtype=np.float64)
    ref, _ = center(reference, masses)
    sqrt_m = np.sqrt(masses)[:, None]
    eye = np.eye(3)
    translations = [(sqrt_m * eye[a]).ravel() for a in range(3)]
    rotations = np.stack([(sqrt_m * np.cross(eye[a], ref)).ravel() for a in range(3)], axis=1)
    # rotations are orthogonal to translations (centred reference); orthonormalise them by SVD
    # and drop the direction of zero moment of inertia of a linear molecule
    u, s, _ = np.linalg.svd(rotations, full_matrices=False)
    keep = s > LINEAR_TOL * max(s.max(), 1e-12)
    return np.concatenate([np.stack(translations, axis=1) / np.sqrt(masses.sum()), u[:, keep]],
                          axis=1)


def internal_basis(reference: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal complement of :func:`rigid_body_basis` in mass-weighted coordinates.

    Returns
    -------
    ndarray, shape ``(3N, 3N - 6)`` (``3N - 5`` for a linear reference)
        Columns ``C`` with ``C^T C = I`` and ``C^T B = 0``; ``z = C^T (sqrt(m) q)`` are the
        internal coordinates (sqrt(amu) nm) and ``C^T (p / sqrt(m))`` their momenta.
    """
    basis = rigid_body_basis(reference, masses)
    u, _, _ = np.linalg.svd(basis, full_matrices=True)
    return np.ascontiguousarray(u[:, basis.shape[1]:])


def remove_rigid_body(x: np.ndarray, reference: np.ndarray, masses: np.ndarray,
                      kind: str = "q", basis: np.ndarray | None = None) -> np.ndarray:
    """Project the rigid-body directions out of positions, velocities or momenta.

    Parameters
    ----------
    x : ndarray, shape ``(n_frames, 3N)`` or ``(n_frames, N, 3)``
        Positions (nm, superposed on the reference), velocities (nm/ps) or momenta (amu nm/ps).
    reference, masses : the reference (``(N, 3)`` nm) and masses (``(N,)`` amu).
    kind : {"q", "v", "p"}
        Positions and velocities are projected in ``sqrt(m) x``, momenta in ``p / sqrt(m)``.
    basis : ndarray, optional
        A precomputed :func:`rigid_body_basis`.

    Returns
    -------
    ndarray, float64, same shape as ``x``
    """
    if kind not in {"q", "v", "p"}:
        raise ValueError(f"kind must be 'q', 'v' or 'p', got {kind!r}")
    basis = rigid_body_basis(reference, masses) if basis is None else basis
    arr = np.asarray(x, dtype=np.float64)
    flat = arr.reshape(len(arr), -1) if arr.ndim > 1 else arr[None]
    scale = np.sqrt(dof_masses(masses))
    if kind == "p":
        scale = 1.0 / scale
    weighted = flat * scale
    weighted = weighted - (weighted @ basis) @ basis.T
    return (weighted / scale).reshape(arr.shape)


def choose_reference(xyz: np.ndarray, masses: np.ndarray, n_iter: int = 5,
                     max_frames: int = 10_000) -> np.ndarray:
    """A representative frame: the one closest to the iteratively superposed mean structure.

    Parameters
    ----------
    xyz : ndarray, shape ``(n_frames, N, 3)``, nm
    masses : ndarray, shape ``(N,)``, amu
    n_iter : int
        Superpose-and-average rounds.
    max_frames : int
        At most this many evenly spaced frames are used.

    Returns
    -------
    ndarray, shape ``(N, 3)``, nm, centred on its centre of mass
        A real frame (not the average, which can have unphysical geometry).
    """
    frames = np.asarray(xyz, dtype=np.float64)
    frames = frames[:: max(1, len(frames) // max_frames)]
    mean = center(frames[0], masses)[0]
    for _ in range(n_iter):
        aligned, _ = superpose(frames, mean, masses)
        mean = aligned.mean(axis=0)
    msd = np.einsum("fni,n->f", (aligned - mean) ** 2, masses)
    return aligned[int(np.argmin(msd))]


class EckartFrame:
    """Cartesian frames -> rigid-body-free positions and momenta in a reference's Eckart frame.

    Parameters
    ----------
    reference : ndarray, shape ``(N, 3)``, nm
        Kept as given (every computation centres it on its centre of mass).
    masses : ndarray, shape ``(N,)``, amu

    Attributes
    ----------
    reference, masses : float64 arrays as above.
    rigid : ndarray ``(3N, 6)`` (5 for a linear reference)
        :func:`rigid_body_basis`.
    internal : ndarray ``(3N, 3N - 6)``
        :func:`internal_basis` (computed on first use; a full SVD of ``3N x 3N``).
    """

    def __init__(self, reference: np.ndarray, masses: np.ndarray) -> None:
        self.reference = np.asarray(reference, dtype=np.float64)
        self.masses = np.asarray(masses, dtype=np.float64)
        self.rigid = rigid_body_basis(self.reference, self.masses)

    @cached_property
    def internal(self) -> np.ndarray:
        """:func:`internal_basis` of the reference, shape ``(3N, 3N - 6 or 3N - 5)``."""
        return internal_basis(self.reference, self.masses)

    @property
    def n_dof(self) -> int:
        """Internal degrees of freedom, ``3N - 6`` (``3N - 5`` for a linear reference)."""
        return 3 * len(self.masses) - self.rigid.shape[1]

    def superpose(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`superpose` on the reference: ``(aligned (n, N, 3) nm, rotations (n, 3, 3))``."""
        return superpose(xyz, self.reference, self.masses)

    def positions(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``(n, N, 3)`` nm -> ``(q (n, 3N) nm, rotations (n, 3, 3))``, float64.

        ``q`` is each frame superposed on the reference (:meth:`superpose`) with the rigid-body
        directions projected out; ``rotations`` are the superposing rotations (row vectors).
        """
        aligned, rotations = self.superpose(xyz)
        q = remove_rigid_body(aligned.reshape(len(aligned), -1), self.reference, self.masses,
                              "q", self.rigid)
        return q, rotations

    def momenta(self, velocities: np.ndarray, rotations: np.ndarray) -> np.ndarray:
        """``p = m (v @ R)`` ``(n, 3N)`` amu nm/ps, rigid-body directions removed, float64.

        ``velocities`` ``(n, N, 3)`` nm/ps; ``rotations`` from :meth:`positions` of their frames.
        """
        rotated = np.asarray(velocities, dtype=np.float64) @ rotations
        p = rotated.reshape(len(rotated), -1) * dof_masses(self.masses)
        return remove_rigid_body(p, self.reference, self.masses, "p", self.rigid)

    def maxwell_boltzmann(self, n_frames: int, temperature: float,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Maxwell-Boltzmann momenta ``(n_frames, 3N)`` float64 amu nm/ps at ``temperature`` K,
        in the internal subspace (mean kinetic energy ``n_dof kT / 2``)."""
        return maxwell_boltzmann(n_frames, self.masses, temperature, self.internal, generator)


def kabsch(x: torch.Tensor, reference: torch.Tensor, masses: torch.Tensor) -> torch.Tensor:
    """Frames ``(B, N, 3)`` centred and rotated onto ``reference`` ``(N, 3)`` (as
    :func:`superpose`, on tensors and differentiable); masses ``(N,)`` amu."""
    w = masses / masses.sum()
    x = x - torch.einsum("n,bni->bi", w, x)[:, None]
    cov = torch.einsum("bni,n,nj->bij", x, masses, reference - w @ reference)
    u, _, vt = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u @ vt))
    u = torch.cat([u[:, :, :2], u[:, :, 2:] * sign[:, None, None]], dim=2)
    return x @ (u @ vt)


def eckart_log_volume(q: torch.Tensor, reference: torch.Tensor,
                      masses: torch.Tensor) -> torch.Tensor:
    """``ln |det B|`` ``(B,)`` of Eckart-frame positions ``q`` ``(B, 3N)`` nm.

    ``B = sum_i m_i [(r_i . q_i) I - q_i r_i^T]`` with ``r`` the reference ``(N, 3)`` and ``q``
    both centred on their centres of mass (amu nm^2). The volume of configuration space per unit
    of rigid-body motion is ``|det B|`` times a constant, so a density over Eckart-frame
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
