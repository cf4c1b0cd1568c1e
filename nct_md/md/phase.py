"""Phase-space data from MD frames: superposition, rigid-body removal, momenta.

Public API
----------
PhaseSpaceData
    ``q``, ``p`` (float32 tensors, ``(n_frames, 3N)`` atom-major, nm and amu nm/ps), masses,
    times, trajectory boundaries, selection and units metadata; ``to_trajectory`` maps ``q`` back
    to Cartesian frames, ``resample_momenta`` redraws Maxwell-Boltzmann momenta.
from_trajectories(trajs, ...), load_phase_space(paths, ...), iter_phase_space(paths, ...)
    Build it from mdtraj trajectories, from files, or chunk by chunk for files larger than memory.
superpose, rigid_body_basis, internal_basis, remove_rigid_body, maxwell_boltzmann, choose_reference
    The plain numerical pieces.

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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from nct_md.errors import NCTInputError
from nct_md.md import io

#: Boltzmann constant in kJ/(mol K).
KB = 0.0083144626
#: Units of the PhaseSpaceData fields (OpenMM's unit system).
UNITS = {"q": "nm", "p": "amu nm/ps", "masses": "amu", "times": "ps", "temperature": "K",
         "energy": "kJ/mol", "reference": "nm"}
#: Relative size below which a rotational direction counts as missing (linear molecule).
LINEAR_TOL = 1e-4


def kt(temperature: float) -> float:
    """Thermal energy kT in kJ/mol at ``temperature`` in K (raises on non-positive values)."""
    check_temperature(temperature)
    return KB * float(temperature)


def check_temperature(temperature: float) -> None:
    """Raise NCTInputError unless ``temperature`` (K) is a finite positive number."""
    if temperature is None or not np.isfinite(temperature) or temperature <= 0:
        raise NCTInputError(
            f"temperature must be a positive number of kelvin, got {temperature}; e.g. 300"
        )


def atom_masses(topology: md.Topology) -> np.ndarray:
    """Masses in amu of the topology's atoms, shape ``(N,)``; raises on massless atoms."""
    masses = np.array([atom.element.mass if atom.element is not None else 0.0
                       for atom in topology.atoms], dtype=np.float64)
    if np.any(masses <= 0):
        bad = [str(atom) for atom, m in zip(topology.atoms, masses, strict=True) if m <= 0][:3]
        raise NCTInputError(
            f"atoms without mass in the selection ({', '.join(bad)}); exclude virtual sites, "
            "e.g. select='heavy'"
        )
    return masses


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


def _dof_masses(masses: np.ndarray) -> np.ndarray:
    """Per-degree-of-freedom masses, shape ``(3N,)`` atom-major."""
    return np.repeat(np.asarray(masses, dtype=np.float64), 3)


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
    scale = np.sqrt(_dof_masses(masses))
    if kind == "p":
        scale = 1.0 / scale
    weighted = flat * scale
    weighted = weighted - (weighted @ basis) @ basis.T
    return (weighted / scale).reshape(arr.shape)


def maxwell_boltzmann(n_frames: int, masses: np.ndarray, temperature: float,
                      basis: np.ndarray | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Momenta drawn from the Maxwell-Boltzmann distribution.

    Parameters
    ----------
    n_frames : int
    masses : ndarray, shape ``(N,)``, amu
    temperature : float, K
    basis : ndarray, shape ``(3N, d)``, optional
        Orthonormal mass-weighted subspace to draw in (e.g. :func:`internal_basis`); the mean
        kinetic energy is then ``d kT / 2``. None draws in all ``3N`` directions.
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor, shape ``(n_frames, 3N)``, float64, amu nm/ps
    """
    scale = np.sqrt(kt(temperature))
    n_dof = 3 * len(masses)
    dim = n_dof if basis is None else basis.shape[1]
    noise = torch.randn(int(n_frames), dim, generator=generator, dtype=torch.float64)
    weighted = noise if basis is None else noise @ torch.from_numpy(basis).T
    return weighted * (scale * torch.from_numpy(np.sqrt(_dof_masses(masses))))


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


class _PhaseMap:
    """Frames (and velocities) -> (q, p) for a fixed reference and masses, as float64 arrays."""

    def __init__(self, reference: np.ndarray, masses: np.ndarray) -> None:
        self.masses = np.asarray(masses, dtype=np.float64)
        self.reference = center(reference, self.masses)[0]
        self.rigid = rigid_body_basis(self.reference, self.masses)
        self.internal = internal_basis(self.reference, self.masses)

    def positions(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(q (n, 3N) nm, rotations (n, 3, 3))`` for frames ``(n, N, 3)``."""
        aligned, rotations = superpose(xyz, self.reference, self.masses)
        q = remove_rigid_body(aligned.reshape(len(aligned), -1), self.reference, self.masses,
                              "q", self.rigid)
        return q, rotations

    def momenta(self, velocities: np.ndarray, rotations: np.ndarray) -> np.ndarray:
        """``p = m (v @ R)`` with rigid-body directions removed, shape ``(n, 3N)``."""
        rotated = np.asarray(velocities, dtype=np.float64) @ rotations
        p = rotated.reshape(len(rotated), -1) * _dof_masses(self.masses)
        return remove_rigid_body(p, self.reference, self.masses, "p", self.rigid)


def _n_constrained(topology: md.Topology, constraints: str | None) -> int | None:
    """Number of bonds to hydrogen inside the topology when ``constraints`` is 'hbonds'."""
    if constraints is None:
        return None
    if constraints.lower() != "hbonds":
        return 0
    hydrogen = md.element.hydrogen
    return sum(1 for a, b in topology.bonds if hydrogen in (a.element, b.element))


@dataclass
class PhaseSpaceData:
    """Canonical coordinates of MD frames, ready for a symplectic flow.

    Attributes
    ----------
    q : torch.Tensor, shape ``(n_frames, 3N)``, float32, nm
        Positions superposed on ``reference`` (mass-weighted Eckart frame), atom-major, with the
        rigid-body components removed (``rigid_body_basis.T @ (sqrt(m) q) = 0``).
    p : torch.Tensor, shape ``(n_frames, 3N)``, float32, amu nm/ps
        ``m v`` rotated with the frames, or Maxwell-Boltzmann draws; rigid-body part removed.
    masses : ndarray, shape ``(N,)``, amu
    times : ndarray, shape ``(n_frames,)``, ps
    boundaries : ndarray of int, shape ``(n_traj + 1,)``
        Trajectory ``k`` is frames ``boundaries[k]:boundaries[k + 1]``.
    atom_indices : ndarray of int, shape ``(N,)``
        The selected atoms' indices in the trajectory files' topology.
    atom_names : list of str
        ``"RES1-NAME"`` labels of the selected atoms.
    topology : mdtraj.Topology
        Topology of the selected atoms only.
    reference : ndarray, shape ``(N, 3)``, nm
        Reference structure, centred on its centre of mass.
    temperature : float, K
    has_velocities : bool
        True when ``p`` comes from stored velocities.
    metadata : dict
        ``units``, ``selection``, ``constraints``, ``momenta`` source, ``n_dof``, ...
    """

    q: torch.Tensor
    p: torch.Tensor
    masses: np.ndarray
    times: np.ndarray
    boundaries: np.ndarray
    atom_indices: np.ndarray
    atom_names: list[str]
    topology: md.Topology
    reference: np.ndarray
    temperature: float
    has_velocities: bool
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.q.shape[0])

    @property
    def n_atoms(self) -> int:
        """Number of selected atoms N."""
        return len(self.masses)

    @property
    def n_traj(self) -> int:
        """Number of trajectories."""
        return len(self.boundaries) - 1

    @cached_property
    def rigid_basis(self) -> np.ndarray:
        """:func:`rigid_body_basis` of the reference, shape ``(3N, 6 or 5)``."""
        return rigid_body_basis(self.reference, self.masses)

    @cached_property
    def internal_basis(self) -> np.ndarray:
        """:func:`internal_basis` of the reference, shape ``(3N, 3N - 6 or 3N - 5)``."""
        return internal_basis(self.reference, self.masses)

    @property
    def n_dof(self) -> int:
        """Internal degrees of freedom, ``3N - 6`` (``3N - 5`` for a linear reference)."""
        return 3 * self.n_atoms - self.rigid_basis.shape[1]

    def kinetic_energy(self) -> torch.Tensor:
        """``sum p^2 / 2m`` per frame, shape ``(n_frames,)``, kJ/mol."""
        inv_m = torch.from_numpy(1.0 / _dof_masses(self.masses)).to(self.p.dtype)
        return 0.5 * (self.p**2 * inv_m).sum(dim=1)

    def resample_momenta(self, generator: torch.Generator | None = None,
                         force: bool = False) -> torch.Tensor:
        """Redraw Maxwell-Boltzmann momenta in the internal subspace (call once per epoch).

        Data with stored velocities keep ``p = m v`` unless ``force`` is True.

        Returns
        -------
        torch.Tensor
            The new ``self.p``, shape ``(n_frames, 3N)``, float32, amu nm/ps.
        """
        if self.has_velocities and not force:
            return self.p
        p = maxwell_boltzmann(len(self), self.masses, self.temperature, self.internal_basis,
                              generator)
        self.p = p.to(torch.float32)
        return self.p

    def to_trajectory(self, q: torch.Tensor | np.ndarray | None = None,
                      times: np.ndarray | None = None) -> md.Trajectory:
        """Cartesian frames of the selection from positions ``q`` (the inverse map).

        Parameters
        ----------
        q : tensor or ndarray, shape ``(n, 3N)`` or ``(3N,)``, nm; default ``self.q``
            Positions in the reference frame (e.g. decoded or interpolated model outputs).
        times : ndarray, shape ``(n,)``, ps, optional

        Returns
        -------
        mdtraj.Trajectory
            ``n`` frames of the selected atoms in the reference's frame (centre of mass at the
            origin), with ``self.topology``.
        """
        q = self.q if q is None else q
        arr = q.detach().cpu().numpy() if isinstance(q, torch.Tensor) else np.asarray(q)
        arr = arr.reshape(-1, self.n_atoms, 3)
        if arr.shape[0] and not np.isfinite(arr).all():
            raise NCTInputError("q contains NaN or infinite values; cannot write Cartesian frames")
        if times is None and q is self.q:
            times = self.times
        return md.Trajectory(arr.astype(np.float32), self.topology, time=times)

    def trajectory(self, index: int) -> PhaseSpaceData:
        """The frames of trajectory ``index`` as their own PhaseSpaceData (tensors are views)."""
        if not -self.n_traj <= index < self.n_traj:
            raise IndexError(f"trajectory {index} out of range for {self.n_traj} trajectories")
        index %= self.n_traj
        start, stop = int(self.boundaries[index]), int(self.boundaries[index + 1])
        return PhaseSpaceData(
            q=self.q[start:stop], p=self.p[start:stop], masses=self.masses,
            times=self.times[start:stop], boundaries=np.array([0, stop - start]),
            atom_indices=self.atom_indices, atom_names=self.atom_names, topology=self.topology,
            reference=self.reference, temperature=self.temperature,
            has_velocities=self.has_velocities, metadata=dict(self.metadata),
        )

    def split(self) -> list[PhaseSpaceData]:
        """One PhaseSpaceData per trajectory."""
        return [self.trajectory(k) for k in range(self.n_traj)]

    def lagged_pairs(self, lag_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices ``(i, i + lag)`` with both frames in the same trajectory.

        Returns
        -------
        (ndarray, ndarray)
            Two int64 arrays of equal length indexing ``q``/``p``; pairs never cross
            trajectory boundaries.
        """
        if int(lag_frames) != lag_frames or lag_frames < 0:
            raise NCTInputError(f"lag must be a non-negative number of frames, got {lag_frames}")
        lag = int(lag_frames)
        starts = [np.arange(self.boundaries[k], self.boundaries[k + 1] - lag, dtype=np.int64)
                  for k in range(self.n_traj)]
        first = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        return first, first + lag


def _reference_xyz(reference: md.Trajectory | np.ndarray | str | Path, atoms: np.ndarray,
                   n_total: int) -> np.ndarray:
    """Reference coordinates ``(N, 3)`` of the selected atoms from a frame, array or PDB path."""
    if isinstance(reference, str | Path):
        reference = md.load_frame(str(reference), 0)
    xyz = reference.xyz[0] if isinstance(reference, md.Trajectory) else np.asarray(reference)
    if xyz.ndim == 3:
        xyz = xyz[0]
    if xyz.shape == (n_total, 3) and n_total != len(atoms):
        xyz = xyz[atoms]
    if xyz.shape != (len(atoms), 3):
        raise NCTInputError(
            f"reference has {xyz.shape[0]} atoms, expected {len(atoms)} (the selection) or "
            f"{n_total} (the topology); pass a reference frame of the same molecule"
        )
    if not np.isfinite(xyz).all():
        raise NCTInputError("reference structure has NaN or infinite coordinates; fix it")
    return xyz


def _selection(trajs: Sequence[md.Trajectory], select: str | Sequence[int]
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """(indices into the trajectories' atoms, indices into the files' atoms, selection label)."""
    first = trajs[0]
    for traj in trajs[1:]:
        if traj.n_atoms != first.n_atoms:
            raise NCTInputError(
                f"trajectories have different numbers of atoms ({first.n_atoms} and "
                f"{traj.n_atoms}); use one topology and selection for all files"
            )
    atoms = io.resolve_selection(first.topology, select)
    file_atoms = getattr(first, "atom_indices", None)
    file_atoms = atoms if file_atoms is None else np.asarray(file_atoms)[atoms]
    label = select if isinstance(select, str) else "indices"
    previous = getattr(first, "selection", None)  # set by nct_md.md.io when reading files
    if previous not in (None, "all"):
        label = previous if label == "all" else f"({previous}) and ({label})"
    return atoms, file_atoms, label


def _metadata(label: str, constraints: str | None, topology: md.Topology, n_dof: int,
              n_rigid: int, momenta: str, reference_source: str) -> dict:
    return {
        "units": dict(UNITS),
        "selection": label,
        "constraints": constraints,
        "n_constrained_in_selection": _n_constrained(topology, constraints),
        "momenta": momenta,
        "n_dof": n_dof,
        "rigid_body_dims": n_rigid,
        "frame": "mass-weighted Kabsch superposition on the reference (Eckart frame)",
        "reference": reference_source,
    }


def from_trajectories(trajs: md.Trajectory | Sequence[md.Trajectory],
                      select: str | Sequence[int] = "all", temperature: float = 300.0,
                      reference: md.Trajectory | np.ndarray | str | Path | None = None,
                      velocities: str | Sequence[np.ndarray] | None = "auto",
                      constraints: str | None = None,
                      generator: torch.Generator | None = None) -> PhaseSpaceData:
    """Build :class:`PhaseSpaceData` from trajectories held in memory.

    Parameters
    ----------
    trajs : mdtraj.Trajectory or sequence of them
        One per trajectory (e.g. from :func:`nct_md.md.io.load`); never concatenated.
    select : str or sequence of int
        Atom selection applied to the trajectories' topology (see
        :func:`nct_md.md.io.resolve_selection`).
    temperature : float
        Temperature of the data in K (for Maxwell-Boltzmann momenta and the model's kT).
    reference : mdtraj.Trajectory, ndarray ``(N, 3)`` nm, PDB path or None
        Structure to superpose on; None picks the frame closest to the mean structure
        (:func:`choose_reference`).
    velocities : "auto", sequence of ndarray or None
        "auto" uses the ``velocities`` attribute set by :mod:`nct_md.md.io` when every
        trajectory has one; a sequence gives ``(n_frames, n_atoms, 3)`` nm/ps arrays per
        trajectory; None ignores velocities and draws Maxwell-Boltzmann momenta.
    constraints : str, optional
        Constraints of the simulation ("hbonds", "none"), recorded in the metadata.
    generator : torch.Generator, optional
        For Maxwell-Boltzmann draws.
    """
    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    if not trajs:
        raise NCTInputError("no trajectories given; pass at least one")
    check_temperature(temperature)
    atoms, file_atoms, label = _selection(trajs, select)
    topology = trajs[0].topology.subset(atoms)
    masses = atom_masses(topology)
    if velocities == "auto":
        found = [getattr(t, "velocities", None) for t in trajs]
        velocities = None if any(v is None for v in found) else found
    elif velocities is not None and len(velocities) != len(trajs):
        raise NCTInputError(f"got {len(velocities)} velocity arrays for {len(trajs)} trajectories")
    for k, traj in enumerate(trajs):
        if len(traj) == 0:
            raise NCTInputError(f"trajectory {k} has no frames; drop it or check the file")
        if not np.isfinite(traj.xyz).all():
            raise NCTInputError(f"trajectory {k} has NaN or infinite coordinates; remove them")
    if reference is None:
        ref_xyz = choose_reference(trajs[0].xyz[:, atoms], masses)
        source = "frame closest to the mean structure of trajectory 0"
    else:
        ref_xyz = _reference_xyz(reference, atoms, trajs[0].n_atoms)
        source = "given"
    phase_map = _PhaseMap(ref_xyz, masses)
    qs, ps = [], []
    for k, traj in enumerate(trajs):
        q, rotations = phase_map.positions(traj.xyz[:, atoms])
        qs.append(torch.from_numpy(q.astype(np.float32)))
        if velocities is not None:
            v = np.asarray(velocities[k])
            if v.ndim == 3 and v.shape[1] == traj.n_atoms:
                v = v[:, atoms]
            if v.shape != (len(traj), len(atoms), 3) or not np.isfinite(v).all():
                raise NCTInputError(
                    f"velocities of trajectory {k} have shape {v.shape} or non-finite values; "
                    f"expected finite ({len(traj)}, {len(atoms)}, 3) in nm/ps"
                )
            ps.append(torch.from_numpy(phase_map.momenta(v, rotations).astype(np.float32)))
    lengths = [len(t) for t in trajs]
    q_all = torch.cat(qs)
    data = PhaseSpaceData(
        q=q_all, p=torch.cat(ps) if ps else torch.zeros_like(q_all), masses=masses,
        times=np.concatenate([np.asarray(t.time, dtype=np.float64) for t in trajs]),
        boundaries=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        atom_indices=file_atoms, atom_names=[f"{a.residue}-{a.name}" for a in topology.atoms],
        topology=topology, reference=phase_map.reference, temperature=float(temperature),
        has_velocities=velocities is not None,
        metadata=_metadata(label, constraints, topology, phase_map.internal.shape[1],
                           phase_map.rigid.shape[1],
                           "velocities" if velocities is not None else "maxwell-boltzmann",
                           source),
    )
    if velocities is None:
        data.resample_momenta(generator)
    return data


def _provenance(paths: Sequence[str | Path], temperature: float | None
                ) -> tuple[float, str | None]:
    """Temperature and constraints from ``nct-md simulate`` files (explicit temperature wins)."""
    infos = [io.read_provenance(p) for p in paths]
    if temperature is None:
        found = {info.get("temperature") for info in infos}
        if len(found) != 1 or None in found:
            raise NCTInputError(
                "the data's temperature is unknown (files not written by nct-md simulate, or "
                "different temperatures); pass temperature= / --temperature in K"
            )
        temperature = float(found.pop())
    constraints = {info.get("constraints") for info in infos}
    return float(temperature), constraints.pop() if len(constraints) == 1 else None


def load_phase_space(paths: str | Path | Sequence[str | Path],
                     top: str | Path | md.Topology | None = None,
                     select: str | Sequence[int] = "all", temperature: float | None = None,
                     stride: int = 1, reference: md.Trajectory | np.ndarray | str | None = None,
                     velocities: bool = True, dt_ps: float | None = None,
                     generator: torch.Generator | None = None) -> PhaseSpaceData:
    """Read files and build :class:`PhaseSpaceData` (``io.load`` + :func:`from_trajectories`).

    ``temperature`` and the constraints default to what ``nct-md simulate`` stored in the files;
    ``velocities=False`` ignores stored velocities. Other parameters as in :func:`io.load` and
    :func:`from_trajectories`.
    """
    paths = io.as_paths(paths)
    temperature, constraints = _provenance(paths, temperature)
    check_temperature(temperature)
    trajs = io.load(paths, top, select=select, stride=stride, dt_ps=dt_ps)
    return from_trajectories(trajs, "all", temperature, reference,
                             "auto" if velocities else None, constraints, generator)


def iter_phase_space(paths: str | Path | Sequence[str | Path],
                     top: str | Path | md.Topology | None = None,
                     select: str | Sequence[int] = "all", temperature: float | None = None,
                     reference: md.Trajectory | np.ndarray | str | None = None,
                     chunk: int = 10_000, stride: int = 1, velocities: bool = True,
                     dt_ps: float | None = None, generator: torch.Generator | None = None
                     ) -> Iterator[tuple[int, PhaseSpaceData]]:
    """Stream :class:`PhaseSpaceData` chunk by chunk (memory bounded by ``chunk``).

    Every chunk uses the same reference (given, or chosen from the first chunk), so chunks can
    be combined. Yields ``(traj_index, chunk_data)``; each chunk lies inside one trajectory
    (``chunk_data.boundaries == [0, len(chunk_data)]``) and its ``times`` continue the file's.
    """
    paths = io.as_paths(paths)
    temperature, constraints = _provenance(paths, temperature)
    check_temperature(temperature)
    phase_map = topology = masses = None
    for index, traj in io.iterload(paths, top, select, chunk=chunk, stride=stride, dt_ps=dt_ps):
        if phase_map is None:
            topology = traj.topology
            masses = atom_masses(topology)
            ref_xyz = (choose_reference(traj.xyz, masses) if reference is None
                       else _reference_xyz(reference, np.asarray(traj.atom_indices),
                                           io.load_topology(top, paths).n_atoms))
            phase_map = _PhaseMap(ref_xyz, masses)
        q, rotations = phase_map.positions(traj.xyz)
        use_v = velocities and traj.velocities is not None
        data = PhaseSpaceData(
            q=torch.from_numpy(q.astype(np.float32)),
            p=(torch.from_numpy(phase_map.momenta(traj.velocities, rotations).astype(np.float32))
               if use_v else torch.zeros(q.shape, dtype=torch.float32)),
            masses=masses, times=np.asarray(traj.time, dtype=np.float64),
            boundaries=np.array([0, len(traj)], dtype=np.int64),
            atom_indices=np.asarray(traj.atom_indices),
            atom_names=[f"{a.residue}-{a.name}" for a in topology.atoms], topology=topology,
            reference=phase_map.reference, temperature=temperature, has_velocities=use_v,
            metadata=_metadata(traj.selection, constraints, topology,
                               phase_map.internal.shape[1], phase_map.rigid.shape[1],
                               "velocities" if use_v else "maxwell-boltzmann",
                               "given" if reference is not None else "from the first chunk"),
        )
        if not use_v:
            data.resample_momenta(generator)
        yield index, data
