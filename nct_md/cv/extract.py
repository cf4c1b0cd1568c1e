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

With the out-of-distribution score (:mod:`nct_md.cv.ood`), CSV and COLVAR files end with the
columns ``ood_score`` (``-ln p(q)``, nats) and ``ood`` (1 above the model's threshold, else 0),
and NPZ files hold arrays of those names; NPY files, which hold exactly the CVs, refuse it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nct_md.atomic import atomic_path, check_output
from nct_md.cv.ood import OODScores, ood_scores, recorded
from nct_md.errors import NCTInputError
from nct_md.md import io
from nct_md.model import NCTModel

#: Output formats by file extension.
FORMATS = {".csv": "csv", ".npy": "npy", ".npz": "npz", ".dat": "colvar", ".colvar": "colvar"}


def iter_cvs(model: NCTModel, paths: Sequence[str | os.PathLike],
             top: str | os.PathLike | None = None, n_cvs: int = 2, chunk: int = 10_000,
             stride: int = 1, dt_ps: float | None = None, ood: bool = False
             ) -> Iterator[tuple[int, np.ndarray, np.ndarray, OODScores | None]]:
    """Yield ``(traj_index, times (n,) ps, cvs (n, n_cvs), scores)`` chunk by chunk.

    Memory stays bounded by ``chunk`` frames whatever the file length. The topology is checked
    against the model's atoms before any frame is read. Times are NaN for files that store none
    unless ``dt_ps`` (the frame spacing in ps) is given. ``scores`` are the frames'
    :class:`~nct_md.cv.ood.OODScores` with ``ood``, else None.
    """
    model.check_separable()
    topology = io.load_topology(top, io.as_paths(paths))
    atoms = model.select_atoms(topology)
    for part in io.iterload(paths, topology, atoms, chunk=chunk, stride=stride, dt_ps=dt_ps):
        xyz = part.traj.xyz
        yield (part.traj_index, part.times, model.transform_selected(xyz, n_cvs),
               ood_scores(model, xyz) if ood else None)


def output_format(path: str | os.PathLike) -> str:
    """``csv``, ``npy``, ``npz`` or ``colvar`` from the file extension; raises otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise NCTInputError(f"unknown CV output extension {suffix!r} for {path}; use .csv, "
                            ".npy, .npz, or .dat/.colvar for PLUMED COLVAR files")
    return FORMATS[suffix]


def check_ood_format(path: str | os.PathLike) -> None:
    """Raise unless ``path``'s format can hold the out-of-distribution columns (not ``.npy``)."""
    if output_format(path) == "npy":
        raise NCTInputError(f"{path}: .npy holds exactly the CVs, with no room for the "
                            "out-of-distribution columns; write .csv or .npz (or .dat/.colvar)")


def output_paths(path: str | os.PathLike, n_traj: int) -> list[Path]:
    """The files :func:`write_cvs` writes for ``n_traj`` trajectories (see the module doc)."""
    path = Path(path)
    if output_format(path) != "colvar" or n_traj == 1:
        return [path]
    return [path.with_name(f"{path.stem}.traj{k}{path.suffix}") for k in range(n_traj)]


def write_cvs(path: str | os.PathLike, traj_index: np.ndarray, times: np.ndarray,
              cvs: np.ndarray, n_traj: int, overwrite: bool = False,
              ood: OODScores | None = None) -> list[Path]:
    """Write CVs atomically in the format of ``path``'s extension; returns the files written.

    Parameters
    ----------
    traj_index : ndarray of int, shape ``(n_frames,)``
    times : ndarray, shape ``(n_frames,)``, ps
    cvs : ndarray, shape ``(n_frames, k)``, slowest first
    n_traj : int
        Number of trajectory files (COLVAR output is one file per trajectory).
    ood : OODScores, optional
        Out-of-distribution scores and flags ``(n_frames,)``: the ``ood_score`` and ``ood``
        columns (not for ``.npy``).
    """
    kind = output_format(path)
    names = [f"cv{k + 1}" for k in range(cvs.shape[1])]
    columns, fmt = cvs, ["%.8g"] * cvs.shape[1]  # of the text formats
    if ood is not None:
        check_ood_format(path)
        columns = np.column_stack([cvs, ood.score, ood.flag])
        names, fmt = [*names, "ood_score", "ood"], [*fmt, "%.8g", "%d"]
    targets = output_paths(path, n_traj)
    with ExitStack() as stack:  # every file appears only once all of them are written
        tmps = [stack.enter_context(atomic_path(t, overwrite=overwrite)) for t in targets]
        if kind == "npy":
            with open(tmps[0], "wb") as handle:
                np.save(handle, cvs.astype(np.float64))
        elif kind == "npz":
            scores = {} if ood is None else {"ood_score": ood.score.astype(np.float64),
                                             "ood": ood.flag.astype(np.int8)}
            with open(tmps[0], "wb") as handle:
                np.savez(handle, cvs=cvs.astype(np.float64), time_ps=times,
                         traj=traj_index.astype(np.int64), **scores)
        elif kind == "csv":
            table = np.column_stack([traj_index, times, columns])
            np.savetxt(tmps[0], table, delimiter=",", header=",".join(["traj", "time_ps", *names]),
                       comments="", fmt=["%d", "%.6f", *fmt])
        else:
            for k, tmp in enumerate(tmps):
                rows = traj_index == k if len(tmps) > 1 else slice(None)
                np.savetxt(tmp, np.column_stack([times[rows], columns[rows]]), fmt=["%.8g", *fmt],
                           header="FIELDS time " + " ".join(names), comments="#! ")
    return targets


def extract_cvs(model_path: str | os.PathLike, paths: Sequence[str | os.PathLike],
                out: str | os.PathLike, top: str | os.PathLike | None = None, n_cvs: int = 2,
                chunk: int = 10_000, dt_ps: float | None = None, overwrite: bool = False,
                compile_flow: bool = False, progress: bool = True, ood: bool = False
                ) -> tuple[list[Path], OODScores | None]:
    """``nct-md cvs``: the ``n_cvs`` slowest CVs of trajectory files, written to ``out``.

    Outputs (and, with ``ood``, the model's out-of-distribution threshold) are checked before
    any frame is read; frames are streamed ``chunk`` at a time. Returns the files written and,
    with ``ood``, the frames' :class:`~nct_md.cv.ood.OODScores` (also written as columns).
    """
    kind = output_format(out)
    if ood:
        check_ood_format(out)
    paths = io.as_paths(paths)
    for target in output_paths(out, len(paths)):
        check_output(target, overwrite)
    model = NCTModel.load(model_path)
    threshold = recorded(model).threshold if ood else None
    if compile_flow:
        model.compile_flow()
    index, times, cvs, scores = [], [], [], []
    with tqdm(desc="cvs", unit="frames", disable=None if progress else True) as bar:
        for k, t, c, s in iter_cvs(model, paths, top, n_cvs, chunk=chunk, dt_ps=dt_ps, ood=ood):
            if kind != "npy" and np.isnan(t).any():
                raise NCTInputError(f"'{paths[k]}' stores no frame times; pass --dt with the "
                                    "frame spacing in ps (or write .npy, which has no times)")
            index.append(np.full(len(t), k))
            times.append(t)
            cvs.append(c)
            scores.append(s)
            bar.update(len(t))
    flagged = None if threshold is None else OODScores(
        np.concatenate([s.score for s in scores]), np.concatenate([s.flag for s in scores]),
        threshold)
    written = write_cvs(out, np.concatenate(index), np.concatenate(times), np.concatenate(cvs),
                        len(paths), overwrite=overwrite, ood=flagged)
    return written, flagged
