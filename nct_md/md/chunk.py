"""Chunk: frames of one trajectory file as the readers of :mod:`nct_md.md.io` return them."""

from __future__ import annotations

from dataclasses import dataclass

import mdtraj as md
import numpy as np


@dataclass(frozen=True, eq=False)
class Chunk:
    """Consecutive frames of one trajectory file, selected atoms only.

    Attributes
    ----------
    traj : mdtraj.Trajectory
        The frames of the selected atoms (nm), with their topology, times (ps) and unit cells;
        made whole across periodic boundaries.
    velocities : ndarray, shape ``(n_frames, N, 3)``, float32, nm/ps, or None
        Velocities of the same atoms when the file stores them (mdtraj HDF5), else None.
    atom_indices : ndarray of int64, shape ``(N,)``
        The selected atoms' indices in the file's topology.
    selection : str
        The selection that picked them (a shortcut, an mdtraj string, or ``"indices"``).
    traj_index : int
        Position of the file in the list of files read (one trajectory per file).
    """

    traj: md.Trajectory
    velocities: np.ndarray | None
    atom_indices: np.ndarray
    selection: str
    traj_index: int = 0

    def __len__(self) -> int:
        return self.traj.n_frames

    @property
    def times(self) -> np.ndarray:
        """Frame times ``(n_frames,)`` in ps, float64 (NaN where the file stores none)."""
        return np.asarray(self.traj.time, dtype=np.float64)
