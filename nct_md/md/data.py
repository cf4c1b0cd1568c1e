"""PhaseSpaceData: canonical coordinates of MD frames, ready for a symplectic flow.

Built by :mod:`nct_md.md.phase` (from trajectories or files); ``q`` and ``p`` are rigid-body-free
positions and momenta in the Eckart frame of the data's reference (:mod:`nct_md.md.frame`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import mdtraj as md
import numpy as np
import torch

from nct_md.errors import NCTInputError
from nct_md.md.frame import EckartFrame
from nct_md.md.thermo import dof_masses
from nct_md.model_info import DataInfo

#: Units of the PhaseSpaceData fields (OpenMM's unit system).
UNITS = {"q": "nm", "p": "amu nm/ps", "masses": "amu", "times": "ps", "temperature": "K",
         "energy": "kJ/mol", "reference": "nm"}


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
    info : DataInfo
        ``units``, ``selection``, ``constraints``, ``momenta`` source, ``n_dof``, ...
    weights : ndarray, shape ``(n_frames,)``, float64, optional
        Per-frame weights of biased sampling (e.g. :mod:`nct_md.md.reweight`): frame ``i``
        stands for ``weights[i]`` frames of the unbiased ensemble. Checked (finite, >= 0, not
        all zero) and normalised to mean 1 on construction; None means every frame counts once.
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
    info: DataInfo = field(default_factory=DataInfo)
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.weights is not None:
            self.weights = frame_weights(self.weights, len(self))

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
    def frame(self) -> EckartFrame:
        """The Eckart frame of ``reference`` and ``masses`` (its bases, momenta draws)."""
        return EckartFrame(self.reference, self.masses)

    @property
    def n_dof(self) -> int:
        """Internal degrees of freedom, ``3N - 6`` (``3N - 5`` for a linear reference)."""
        return self.frame.n_dof

    def kinetic_energy(self) -> torch.Tensor:
        """``sum p^2 / 2m`` per frame, shape ``(n_frames,)``, kJ/mol."""
        inv_m = torch.from_numpy(1.0 / dof_masses(self.masses)).to(self.p.dtype)
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
        p = self.frame.maxwell_boltzmann(len(self), self.temperature, generator)
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
            has_velocities=self.has_velocities, info=replace(self.info),
            weights=None if self.weights is None else self.weights[start:stop],
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

    def lag_frames(self, lag_ps: float) -> int:
        """The lag in frames for ``lag_ps`` (ps) in these trajectories (:func:`lag_frames`)."""
        return lag_frames([self.times[self.boundaries[k]:self.boundaries[k + 1]]
                           for k in range(self.n_traj)], lag_ps)


def frame_weights(weights: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-frame weights ``(n_frames,)`` checked and scaled to mean 1 (float64).

    Refused (NCTInputError): a wrong length, NaN or infinite values, negative values, all zero.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_frames,):
        raise NCTInputError(
            f"weights has {w.size} values for {n_frames} frames; give one weight per frame of "
            "all trajectories, concatenated in the order given (after any stride)")
    for bad, what in ((~np.isfinite(w), "NaN or infinite"), (w < 0, "negative")):
        if bad.any():
            raise NCTInputError(
                f"weights has {what} values (first at frame {np.argmax(bad)}); weights must be "
                "finite and >= 0 (a weights file of ln w starts with the line '# log-weights')")
    if not w.any():
        raise NCTInputError("weights are all zero; at least one frame needs a positive weight")
    return w / w.mean()


def lag_frames(times: list[np.ndarray], lag_ps: float) -> int:
    """The lag in frames for a lag time ``lag_ps`` (ps), given each trajectory's frame times (ps).

    All trajectories must share one frame spacing, and each must be longer than the lag.
    """
    if any(np.isnan(t).any() for t in times):
        raise NCTInputError("the trajectory files store no frame times; pass dt_ps (--dt) with "
                            "the frame spacing in ps")
    steps = {round(float(np.median(np.diff(t))), 6) for t in times if len(t) > 1}
    if len(steps) != 1:
        raise NCTInputError(f"trajectories have different or unknown frame spacings {steps} ps; "
                            "give files saved at one interval")
    dt = steps.pop()
    if dt <= 0:
        raise NCTInputError("frame times do not increase; check the trajectory files")
    lag = int(round(lag_ps / dt))
    if lag < 1 or abs(lag * dt - lag_ps) > 1e-6 * max(lag_ps, 1.0):
        raise NCTInputError(f"lag_ps {lag_ps:g} is not a positive multiple of the frame "
                            f"spacing {dt:g} ps")
    if any(len(t) <= lag for t in times):
        raise NCTInputError(f"a trajectory is shorter than the lag of {lag} frames")
    return lag
