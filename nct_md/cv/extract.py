"""Stream CVs out of trajectory files and write them as CSV, NPY or PLUMED COLVAR."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from nct_md.atomic import atomic_path
from nct_md.errors import NCTInputError
from nct_md.md import io
from nct_md.model import NCTModel

#: Output formats by file extension.
FORMATS = {".csv": "csv", ".npy": "npy", ".dat": "colvar", ".colvar": "colvar"}


def iter_cvs(model: NCTModel, paths: Sequence[str | os.PathLike],
             top: str | os.PathLike | None = None, n_cvs: int = 2, chunk: int = 10_000,
             stride: int = 1) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(traj_index, times (n,) ps, cvs (n, n_cvs))`` chunk by chunk.

    Memory stays bounded by ``chunk`` frames whatever the file length. The topology is checked
    against the model's atoms before any frame is read.
    """
    model.check_separable()
    topology = io.load_topology(top, io.as_paths(paths))
    atoms = model.select_atoms(topology)
    for index, traj in io.iterload(paths, topology, atoms, chunk=chunk, stride=stride):
        yield index, np.asarray(traj.time, np.float64), model.transform_selected(traj.xyz, n_cvs)


def output_format(path: str | os.PathLike) -> str:
    """``csv``, ``npy`` or ``colvar`` from the file extension; raises for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise NCTInputError(f"unknown CV output extension {suffix!r} for {path}; use .csv, "
                            ".npy, or .dat/.colvar for a PLUMED COLVAR file")
    return FORMATS[suffix]


def write_cvs(path: str | os.PathLike, traj_index: np.ndarray, times: np.ndarray,
              cvs: np.ndarray, overwrite: bool = False) -> None:
    """Write CVs atomically; columns ``traj, time (ps), cv1..cvk`` (slowest first).

    CSV has a header line; NPY holds a float64 array with those columns; a PLUMED COLVAR file
    has ``#! FIELDS time cv1 ...`` and a ``#! SET traj N`` line where each trajectory starts.
    """
    kind = output_format(path)
    names = [f"cv{k + 1}" for k in range(cvs.shape[1])]
    with atomic_path(path, overwrite=overwrite) as tmp:
        if kind == "npy":
            table = np.column_stack([traj_index, times, cvs]).astype(np.float64)
            with open(tmp, "wb") as handle:
                np.save(handle, table)
        elif kind == "csv":
            table = np.column_stack([traj_index, times, cvs])
            header = ",".join(["traj", "time_ps", *names])
            fmt = ["%d", "%.6f"] + ["%.8g"] * cvs.shape[1]
            np.savetxt(tmp, table, delimiter=",", header=header, comments="", fmt=fmt)
        else:
            with open(tmp, "w") as handle:
                handle.write("#! FIELDS time " + " ".join(names) + "\n")
                for k in np.unique(traj_index):
                    rows = traj_index == k
                    handle.write(f"#! SET traj {int(k)}\n")
                    np.savetxt(handle, np.column_stack([times[rows], cvs[rows]]), fmt="%.8g")
