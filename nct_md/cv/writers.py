"""CV output files written chunk by chunk: CSV, NPY, NPZ or PLUMED COLVAR, atomically.

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

Text files are written as the chunks arrive. NPY and NPZ arrays need their length in the header,
so their chunks are kept (the CVs, times and scores only: 16-33 bytes per frame for two CVs) and
written one after the other behind a header for the total, without joining them in memory.
"""

from __future__ import annotations

import os
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np

from nct_md.atomic import atomic_path
from nct_md.cv.ood import OODScores
from nct_md.errors import NCTInputError

#: Output formats by file extension.
FORMATS = {".csv": "csv", ".npy": "npy", ".npz": "npz", ".dat": "colvar", ".colvar": "colvar"}


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
    """The files :class:`CVWriter` writes for ``n_traj`` trajectories (see the module doc)."""
    path = Path(path)
    if output_format(path) != "colvar" or n_traj == 1:
        return [path]
    return [path.with_name(f"{path.stem}.traj{k}{path.suffix}") for k in range(n_traj)]


def _save_chunks(handle: IO[bytes], chunks: list[np.ndarray], dtype: type) -> None:
    """Write the ``.npy`` of ``np.concatenate(chunks).astype(dtype)`` without building it."""
    rows = sum(len(c) for c in chunks)
    shape = (rows, *chunks[0].shape[1:]) if chunks else (0,)
    np.lib.format.write_array_header_1_0(handle, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": shape})
    for chunk in chunks:
        handle.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())


class CVWriter:
    """Write CV chunks to ``path`` (format by extension); the files appear only on success.

    Use as a context manager and call :meth:`write` per chunk. ``n_traj`` is the number of
    trajectory files (COLVAR output is one file per trajectory); ``n_cvs`` the CVs per frame;
    with ``ood`` every chunk brings its out-of-distribution scores (not for ``.npy``).
    """

    def __init__(self, path: str | os.PathLike, n_traj: int, n_cvs: int,
                 overwrite: bool = False, ood: bool = False):
        self.kind = output_format(path)
        if ood:
            check_ood_format(path)
        self.targets = output_paths(path, n_traj)
        self.overwrite, self.ood = overwrite, ood
        names = [f"cv{k + 1}" for k in range(n_cvs)]
        self.fmt = ["%.8g"] * n_cvs + (["%.8g", "%d"] if ood else [])
        self.names = names + (["ood_score", "ood"] if ood else [])
        self.chunks: dict[str, list[np.ndarray]] = {"cvs": [], "time_ps": [], "traj": [],
                                                    "ood_score": [], "ood": []}

    def __enter__(self) -> CVWriter:
        self._stack = ExitStack()  # every file appears only once all of them are written
        self.tmps = tmps = [self._stack.enter_context(atomic_path(t, overwrite=self.overwrite))
                            for t in self.targets]
        if self.kind == "csv":
            self.handles = [self._stack.enter_context(open(tmps[0], "w"))]
            self.handles[0].write(",".join(["traj", "time_ps", *self.names]) + "\n")
        elif self.kind == "colvar":
            self.handles = [self._stack.enter_context(open(tmp, "w")) for tmp in tmps]
            for handle in self.handles:
                handle.write("#! FIELDS time " + " ".join(self.names) + "\n")
        return self

    def write(self, traj_index: int, times: np.ndarray, cvs: np.ndarray,
              ood: OODScores | None = None) -> None:
        """Append the frames of trajectory ``traj_index``: ``times`` ``(n,)`` ps, ``cvs``
        ``(n, n_cvs)``, and (with ``ood``) their scores."""
        columns = cvs if ood is None else np.column_stack([cvs, ood.score, ood.flag])
        if self.kind == "csv":
            table = np.column_stack([np.full(len(times), traj_index), times, columns])
            np.savetxt(self.handles[0], table, delimiter=",", fmt=["%d", "%.6f", *self.fmt])
        elif self.kind == "colvar":
            handle = self.handles[traj_index if len(self.handles) > 1 else 0]
            np.savetxt(handle, np.column_stack([times, columns]), fmt=["%.8g", *self.fmt])
        else:
            self.chunks["cvs"].append(cvs)
            if self.kind == "npz":
                self.chunks["time_ps"].append(times)
                self.chunks["traj"].append(np.full(len(times), traj_index, dtype=np.int64))
                if ood is not None:
                    self.chunks["ood_score"].append(ood.score)
                    self.chunks["ood"].append(ood.flag)

    def _write_arrays(self) -> None:
        if self.kind == "npy":
            with open(self.tmps[0], "wb") as handle:
                _save_chunks(handle, self.chunks["cvs"], np.float64)
            return
        dtypes = {"cvs": np.float64, "time_ps": np.float64, "traj": np.int64,
                  **({"ood_score": np.float64, "ood": np.int8} if self.ood else {})}
        with zipfile.ZipFile(self.tmps[0], "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, dtype in dtypes.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                    _save_chunks(handle, self.chunks[name], dtype)

    def __exit__(self, kind, value, traceback) -> bool | None:
        if kind is None and self.kind in ("npy", "npz"):
            try:
                self._write_arrays()
            except BaseException as error:  # the stack removes every temporary file
                if not self._stack.__exit__(type(error), error, error.__traceback__):
                    raise
                return None
        return self._stack.__exit__(kind, value, traceback)
