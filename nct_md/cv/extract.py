"""Stream CVs out of trajectory files into CSV, NPY, NPZ or PLUMED COLVAR files.

:func:`iter_cvs` yields the CVs chunk by chunk; :func:`extract_cvs` (``nct-md cvs``) writes them
through :class:`nct_md.cv.writers.CVWriter` (the formats are described there), so memory stays
bounded by the chunk for text outputs and by the CVs themselves for NPY/NPZ.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nct_md.atomic import check_output
from nct_md.cv.ood import OODScores, ood_scores, recorded
from nct_md.cv.writers import CVWriter
from nct_md.errors import NCTInputError
from nct_md.md import io
from nct_md.model import NCTModel


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
    paths = io.as_paths(paths)
    writer = CVWriter(out, len(paths), n_cvs, overwrite=overwrite, ood=ood)
    for target in writer.targets:
        check_output(target, overwrite)
    model = NCTModel.load(model_path)
    threshold = recorded(model).threshold if ood else None
    if compile_flow:
        model.compile_flow()
    scores = []
    with writer, tqdm(desc="cvs", unit="frames", disable=None if progress else True) as bar:
        for k, t, c, s in iter_cvs(model, paths, top, n_cvs, chunk=chunk, dt_ps=dt_ps, ood=ood):
            if writer.kind != "npy" and np.isnan(t).any():
                raise NCTInputError(f"'{paths[k]}' stores no frame times; pass --dt with the "
                                    "frame spacing in ps (or write .npy, which has no times)")
            writer.write(k, t, c, s)
            scores.append(s)
            bar.update(len(t))
    flagged = None if threshold is None else OODScores(
        np.concatenate([s.score for s in scores]), np.concatenate([s.flag for s in scores]),
        threshold)
    return writer.targets, flagged
