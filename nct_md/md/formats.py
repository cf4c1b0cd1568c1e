"""File-format details the readers need: raw chunk readers, DCD headers, quiet C readers.

read_chunks(path, ext, topology, atoms, chunk, stride)
    Raw ``(trajectory, velocities or None)`` chunks of one file in any mdtraj format (streamed
    where mdtraj can, read whole and cut otherwise); :mod:`nct_md.md.io` validates them.
n_atoms_in_file(path, ext)
    Atoms stored in a trajectory file, where the reader can tell cheaply.
dcd_header(path)
    Frames announced by a DCD header and its frame times (ps), for truncation checks and times.
quiet_open(path)
    ``mdtraj.open`` without the C DCD plugin's lines on stdout.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import mdtraj as md
import numpy as np

from nct_md.errors import NCTInputError

#: the AKMA time unit of DCD headers, in ps
AKMA_PS = 0.04888821
#: Formats read through mdtraj file objects that stream ``read_as_traj(n_frames=...)``.
STREAMED = {".dcd", ".xtc", ".trr", ".nc", ".ncdf", ".netcdf", ".xyz", ".xyz.gz", ".mdcrd",
            ".crd"}
HDF5 = {".h5", ".hdf5"}
#: Formats that carry a topology.
TOPOLOGY_EXTS = {".pdb", ".pdb.gz", ".h5", ".hdf5", ".lh5", ".prmtop", ".parm7", ".prm7", ".psf",
                 ".gro", ".mol2", ".cif", ".cif.gz", ".pdbx", ".pdbx.gz", ".mmcif", ".mmcif.gz",
                 ".hoomdxml", ".arc", ".gsd"}


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence C-level writes to stdout (mdtraj's DCD plugin prints a line per file opened)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def quiet_open(path: Path, **kwargs) -> contextlib.AbstractContextManager:
    """``mdtraj.open`` without the DCD plugin's chatter on stdout."""
    with _quiet_stdout():
        return md.open(str(path), **kwargs)


def dcd_header(path: Path) -> tuple[int, tuple[float, float] | None]:
    """Frames announced by a CHARMM/OpenMM DCD header (0 if unknown) and
    ``(time of frame 0, frame spacing)`` in ps, or None where the header holds no time step.

    mdtraj writes a time step of exactly 1 AKMA unit when it does not know one; that counts as
    no time step.
    """
    with open(path, "rb") as handle:
        head = handle.read(48)
    if len(head) < 48 or head[4:8] != b"CORD":
        return 0, None
    _, _, n_frames, first_step, interval = struct.unpack("<i4s3i", head[:20])
    (delta,) = struct.unpack("<f", head[44:48])
    if not (np.isfinite(delta) and delta > 0 and delta != 1.0 and interval > 0):
        return max(n_frames, 0), None
    step_ps = float(delta) * AKMA_PS
    return max(n_frames, 0), (first_step * step_ps, interval * step_ps)


def n_atoms_in_file(path: Path, ext: str) -> int | None:
    """Number of atoms stored in a trajectory file, or None if the reader cannot tell cheaply."""
    if ext in HDF5:
        with md.formats.HDF5TrajectoryFile(str(path)) as handle:
            if "coordinates" not in handle.root:
                raise NCTInputError(f"'{path}' has no frames; check that the simulation wrote "
                                    "output")
            return int(handle.root.coordinates.shape[1])
    if ext in STREAMED and ext not in {".mdcrd", ".crd"}:
        with quiet_open(path) as handle:
            first = handle.read(n_frames=1)
            shape = np.shape(first[0] if isinstance(first, tuple) else first)
            del first  # NetCDF arrays map the file: release them before it closes
        return int(shape[1]) if len(shape) == 3 and shape[0] else None
    return None


def read_chunks(path: Path, ext: str, topology: md.Topology, atoms: np.ndarray | None,
                chunk: int, stride: int) -> Iterator[tuple[md.Trajectory, np.ndarray | None]]:
    """Yield ``(trajectory_chunk, velocities_or_None)`` from one file, ``chunk`` frames each."""
    sub = topology if atoms is None else topology.subset(atoms)
    if ext in HDF5:
        with md.formats.HDF5TrajectoryFile(str(path)) as handle:
            while True:
                frames = handle.read(n_frames=chunk * stride, stride=stride, atom_indices=atoms)
                if len(frames) == 0 or len(frames.coordinates) == 0:
                    return
                traj = md.Trajectory(frames.coordinates, sub, time=frames.time,
                                     unitcell_lengths=frames.cell_lengths,
                                     unitcell_angles=frames.cell_angles)
                yield traj, frames.velocities
    elif ext in STREAMED:
        kwargs = {"n_atoms": topology.n_atoms} if ext in {".mdcrd", ".crd"} else {}
        with quiet_open(path, **kwargs) as handle:
            while True:
                traj = handle.read_as_traj(topology, n_frames=chunk, stride=stride,
                                           atom_indices=atoms)
                if len(traj) == 0:
                    return
                yield traj, None
    else:
        kwargs = {} if ext in TOPOLOGY_EXTS else {"top": topology}
        whole = md.load(str(path), stride=stride, **kwargs)
        if whole.n_atoms != topology.n_atoms:
            raise NCTInputError(
                f"'{path}' has {whole.n_atoms} atoms but the topology has {topology.n_atoms}; "
                "use the topology the trajectory was written with"
            )
        xyz = whole.xyz if atoms is None else whole.xyz[:, atoms]
        for start in range(0, len(whole), chunk):
            part = slice(start, start + chunk)
            cell = whole.unitcell_lengths is not None
            yield md.Trajectory(xyz[part], sub, time=whole.time[part],
                                unitcell_lengths=whole.unitcell_lengths[part] if cell else None,
                                unitcell_angles=whole.unitcell_angles[part] if cell else None
                                ), None
