"""Stream CVs out of trajectory files and write them as CSV, NPY, NPZ or PLUMED COLVAR.

Output formats, by the extension of the output path:

``.csv``
    A header line ``traj,time_ps,cv1,...,cvk`` and one row per frame: the index of the
    trajectory file (0-based, in the order given), the frame time in ps, the CVs (slowest first).
``.npy``
    Exactly the ``(n_frames, k)`` float64 CV array, trajectories one after the other.
``.npz``
    Named arrays ``cvs`` ``(n_frames, k)``, ``time_ps`` ``(n_frames,)`` and ``traj``
    ``(n_frames,)`` (file index).
``.dat`` / ``.colvar``
    PLUMED COLVAR files (``#! FIELDS time cv1 ...``, time in ps), one per trajectory, as PLUMED's
    tools expect: ``OUT`` itself for one trajectory, ``OUT-STEM.traj<K>.dat`` for trajectory K of
    several.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nct_md.atomic import atomic_path, check_output
from nct_md.errors import NCTInputError
from nct_md.md import io
from nct_md.model import NCTModel

#: Output formats by file extension.
FORMATS = {".csv": "csv", ".npy": "npy", ".npz": "npz", ".dat": "colvar", ".colvar": "colvar"}


def iter_cvs(model: NCTModel, paths: Sequence[str | os.PathLike],
             top: str | os.PathLike | None = None, n_cvs: int = 2, chunk: int = 10_000,
             stride: int = 1, dt_ps: float | None = None
             ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(traj_index, times (n,) ps, cvs (n, n_cvs))`` chunk by chunk.

    Memory stays bounded by ``chunk`` frames whatever the file length. The topology is checked
    against the model's atoms before any frame is read. Times are NaN for files that store none
    unless ``dt_ps`` (the frame spacing in ps) is given.
    """
    model.check_separable()
    topology = io.load_topology(top, io.as_paths(paths))
    atoms = model.select_atoms(topology)
    for part in io.iterload(paths, topology, atoms, chunk=chunk, stride=stride, dt_ps=dt_ps):
        yield part.traj_index, part.times, model.transform_selected(part.traj.xyz, n_cvs)


def output_format(path: str | os.PathLike) -> str:
    """``csv``, ``npy``, ``npz`` or ``colvar`` from the file extension; raises otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise NCTInputError(f"unknown CV output extension {suffix!r} for {path}; use .csv, "
                            ".npy, .npz, or .dat/.colvar for PLUMED COLVAR files")
    return FORMATS[suffix]


def output_paths(path: str | os.PathLike, n_traj: int) -> list[Path]:
    """The files :func:`write_cvs` writes for ``n_traj`` trajectories (see the module doc)."""
    path = Path(path)
    if output_format(path) != "colvar" or n_traj == 1:
        return [path]
    return [path.with_name(f"{path.stem}.traj{k}{path.suffix}") for k in range(n_traj)]


def write_cvs(path: str | os.PathLike, traj_index: np.ndarray, times: np.ndarray,
              cvs: np.ndarray, n_traj: int, overwrite: bool = False) -> list[Path]:
    """Write CVs atomically in the format of ``path``'s extension; returns the files written.

    Parameters
    ----------
    traj_index : ndarray of int, shape ``(n_frames,)``
    times : ndarray, shape ``(n_frames,)``, ps
    cvs : ndarray, shape ``(n_frames, k)``, slowest first
    n_traj : int
        Number of trajectory files (COLVAR output is one file per trajectory).
    """
    kind = output_format(path)
    names = [f"cv{k + 1}" for k in range(cvs.shape[1])]
    targets = output_paths(path, n_traj)
    with ExitStack() as stack:  # every file appears only once all of them are written
        tmps = [stack.enter_context(atomic_path(t, overwrite=overwrite)) for t in targets]
        if kind == "npy":
            with open(tmps[0], "wb") as handle:
                np.save(handle, cvs.astype(np.float64))
        elif kind == "npz":
            with open(tmps[0], "wb") as handle:
                np.savez(handle, cvs=cvs.astype(np.float64), time_ps=times,
                         traj=traj_index.astype(np.int64))
        elif kind == "csv":
            table = np.column_stack([traj_index, times, cvs])
            fmt = ["%d", "%.6f"] + ["%.8g"] * cvs.shape[1]
            np.savetxt(tmps[0], table, delimiter=",", header=",".join(["traj", "time_ps", *names]),
                       comments="", fmt=fmt)
        else:
            for k, tmp in enumerate(tmps):
                rows = traj_index == k if len(tmps) > 1 else slice(None)
                np.savetxt(tmp, np.column_stack([times[rows], cvs[rows]]), fmt="%.8g",
                           header="FIELDS time " + " ".join(names), comments="#! ")
    return targets


def extract_cvs(model_path: str | os.PathLike, paths: Sequence[str | os.PathLike],
                out: str | os.PathLike, top: str | os.PathLike | None = None, n_cvs: int = 2,
                chunk: int = 10_000, dt_ps: float | None = None, overwrite: bool = False,
                compile_flow: bool = False, progress: bool = True) -> list[Path]:
    """``nct-md cvs``: the ``n_cvs`` slowest CVs of trajectory files, written to ``out``.

    Outputs are checked before any frame is read; frames are streamed ``chunk`` at a time.
    Returns the files written.
    """
    kind = output_format(out)
    paths = io.as_paths(paths)
    for target in output_paths(out, len(paths)):
        check_output(target, overwrite)
    model = NCTModel.load(model_path)
    if compile_flow:
        model.compile_flow()
    index, times, cvs = [], [], []
    with tqdm(desc="cvs", unit="frames", disable=None if progress else True) as bar:
        for k, t, c in iter_cvs(model, paths, top, n_cvs, chunk=chunk, dt_ps=dt_ps):
            if kind != "npy" and np.isnan(t).any():
                raise NCTInputError(f"'{paths[k]}' stores no frame times; pass --dt with the "
                                    "frame spacing in ps (or write .npy, which has no times)")
            index.append(np.full(len(t), k))
            times.append(t)
            cvs.append(c)
            bar.update(len(t))
    return write_cvs(out, np.concatenate(index), np.concatenate(times), np.concatenate(cvs),
                     len(paths), overwrite=overwrite)
