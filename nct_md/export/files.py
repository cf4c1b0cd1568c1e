"""``nct-md export`` as one function: a model file to TorchScript, PLUMED or OpenMM files.

:func:`export_model` writes, atomically and never over existing files unless asked:

- ``"torchscript"``: ``out`` is the ``.pt`` file (PLUMED ``PYTORCH_MODEL`` convention: positions
  of the model's atoms in nm, float32 ``(1, 3N)``, to ``(1, k)`` CVs);
- ``"plumed"``: ``out`` is a folder that receives :data:`CV_FILE` and a ready
  :data:`PLUMED_FILE` (WHOLEMOLECULES, POSITION, PYTORCH_MODEL, OPES_METAD or METAD);
- ``"openmm"``: ``out`` is a folder that receives :data:`CV_FILE` and :data:`OPENMM_HELPER` (a
  copy of :mod:`nct_md.export.openmm_force`, needing numpy, torch and openmm only).

With ``surrogate`` settings the CV file in every format holds, instead of the exact CVs, a
compact network distilled from them on ``surrogate_data``
(:mod:`nct_md.export.surrogate`), in the same convention; its held-out fidelity is printed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from nct_md.atomic import atomic_path, check_output, check_output_folder
from nct_md.errors import NCTInputError
from nct_md.export import openmm_force
from nct_md.export.metad import default_bias
from nct_md.export.plumed import plumed_input
from nct_md.export.surrogate import DistilSettings, save_surrogate
from nct_md.export.torchscript import parse_dtype, save_torchscript
from nct_md.md import io
from nct_md.model import NCTModel

PathLike = str | os.PathLike
FORMATS = ("torchscript", "plumed", "openmm")
#: File names written inside the output folder for the plumed and openmm formats.
CV_FILE = "nct_cvs.pt"
PLUMED_FILE = "plumed.dat"
OPENMM_HELPER = "nct_openmm.py"

OPENMM_USAGE = """\
# OpenMM: bias CV1 and CV2 by well-tempered metadynamics (needs numpy, torch, openmm >= 8.6)
from openmm import app
from nct_openmm import bias_variables
variables = bias_variables("{cv}", min_values={lows}, max_values={highs}, widths={widths})
meta = app.Metadynamics(system, variables, 300.0, biasFactor=10.0, height=2.0, frequency=250)
# ... create the Simulation from `system`, then advance with meta.step(simulation, n_steps)
"""


class _Surrogate:
    """What :func:`_write_cvs` needs to distil a surrogate: settings and trajectories
    (``(F_i, N, 3)`` nm of the model's atoms) with their file names."""

    def __init__(self, settings: DistilSettings, model: NCTModel, paths: Sequence[PathLike],
                 top: PathLike | None, stride: int):
        settings.check()
        topology = io.load_topology(top, io.as_paths(paths))
        chunks = io.load(paths, topology, model.select_atoms(topology), stride=stride)
        self.settings = settings
        self.trajectories = [chunk.traj.xyz for chunk in chunks]
        self.names = [Path(p).name for p in paths]


def _write_cvs(model: NCTModel, path: Path, n_cvs: int, dtype: str, overwrite: bool,
               surrogate: _Surrogate | None, verbose: bool) -> dict:
    if path.suffix not in (".pt", ".ptc"):
        raise NCTInputError(f"the TorchScript file must end in .pt or .ptc, got '{path.name}'")
    if surrogate is None:
        return save_torchscript(model, path, n_cvs, parse_dtype(dtype), overwrite=overwrite)
    info = save_surrogate(model, path, surrogate.trajectories, surrogate.names, n_cvs,
                          parse_dtype(dtype), surrogate.settings, overwrite, progress=verbose)
    if verbose:
        held = info["surrogate"]["held_out"]
        print(f"surrogate fidelity on {held['n_frames']} frames of the held-out trajectories "
              f"{', '.join(info['surrogate']['held_out_trajectories'])}:")
        for j, (r2, cosine, low) in enumerate(zip(held["r2"], held["gradient_cosine_median"],
                                                  held["gradient_cosine_p05"], strict=True)):
            print(f"  CV{j + 1}: R^2 {r2:.5f}, gradient cosine median {cosine:.4f} "
                  f"(5th percentile {low:.4f})")
    return info


def _surrogate(model: NCTModel, settings: DistilSettings | None,
               surrogate_data: Sequence[PathLike], top: PathLike | None,
               stride: int) -> _Surrogate | None:
    if settings is None:
        if surrogate_data:
            raise NCTInputError("surrogate_data is only used with --surrogate")
        return None
    if len(surrogate_data) < 2:
        raise NCTInputError("surrogate_data needs at least 2 trajectory files to distil the "
                            "surrogate on (every third, or the second of two, is held out to "
                            f"measure its fidelity), got {len(surrogate_data)}")
    return _Surrogate(settings, model, surrogate_data, top, stride)


def _check_folder(out: Path, names: tuple[str, ...], overwrite: bool) -> None:
    if out.suffix:
        raise NCTInputError(f"out must be a folder for this format, got '{out}'")
    check_output_folder(out, list(names), overwrite)


def export_model(model_path: PathLike, format: str, out: PathLike, n_cvs: int = 2,
                 dtype: str = "float32", bias: str = "opes", n_biased: int | None = None,
                 overwrite: bool = False, verbose: bool = True,
                 surrogate: DistilSettings | None = None,
                 surrogate_data: Sequence[PathLike] = (), top: PathLike | None = None,
                 stride: int = 1) -> dict:
    """Export the ``n_cvs`` slowest CVs of a configuration-separable model.

    Parameters
    ----------
    model_path : path
        Model file written by ``nct-md train``.
    format : {"torchscript", "plumed", "openmm"}
        What to write (see the module docstring).
    out : path
        The ``.pt``/``.ptc`` file (torchscript) or the output folder (plumed, openmm).
    n_cvs : int
        Number of slowest CVs.
    dtype : {"float32", "float64"}
        Precision of the network (the superposition always runs in float64).
    bias : {"opes", "metad"}
        plumed: the active bias in ``plumed.dat`` (the other is commented out).
    n_biased : int, optional
        plumed: number of CVs biased, 1 to ``n_cvs``; default ``min(2, n_cvs)``.
    overwrite : bool
        Replace existing outputs.
    verbose : bool
        Print the files written (and, for openmm, a usage snippet; for a surrogate, a progress
        bar and its fidelity).
    surrogate : DistilSettings, optional
        Write a surrogate distilled from the CVs (:mod:`nct_md.export.surrogate`) instead of
        the exact CVs.
    surrogate_data : sequence of paths
        surrogate: trajectory files (at least 2; every third, or the second of two, is held out).
    top : path, optional
        surrogate: topology of ``surrogate_data`` (default: from the first file).
    stride : int
        surrogate: keep every ``stride``-th frame of ``surrogate_data``.

    Returns
    -------
    dict
        ``files``: the paths written; ``cvs``: the metadata stored in the CV file
        (:func:`nct_md.export.torchscript.metadata`); openmm also ``usage``: the snippet.
    """
    if format not in FORMATS:
        raise NCTInputError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    out = Path(out)
    model = NCTModel.load(model_path)
    model.check_separable()
    distilled = _surrogate(model, surrogate, surrogate_data, top, stride)
    if format == "torchscript":
        check_output(out, overwrite)
        info = _write_cvs(model, out, n_cvs, dtype, overwrite, distilled, verbose)
        if verbose:
            print(f"wrote {out}: {info['n_cvs']} CVs of {info['n_atoms']} atoms "
                  f"(0-based indices {info['atom_indices']})")
        return {"files": [out], "cvs": info}
    if format == "plumed":
        _check_folder(out, (CV_FILE, PLUMED_FILE), overwrite)
        n_biased = min(2, n_cvs) if n_biased is None else n_biased
        if not 1 <= n_biased <= n_cvs:
            raise NCTInputError(f"n_biased must be between 1 and n_cvs ({n_cvs})")
        info = _write_cvs(model, out / CV_FILE, n_cvs, dtype, overwrite, distilled,
                      verbose)
        text = plumed_input(info, CV_FILE, bias=bias, n_biased=n_biased, topology=model.topology)
        with atomic_path(out / PLUMED_FILE, overwrite=overwrite) as tmp:
            tmp.write_text(text)
        files = [out / CV_FILE, out / PLUMED_FILE]
        if verbose:
            print(f"wrote {files[0]} and {files[1]}")
        return {"files": files, "cvs": info}
    _check_folder(out, (CV_FILE, OPENMM_HELPER), overwrite)
    info = _write_cvs(model, out / CV_FILE, n_cvs, dtype, overwrite, distilled,
                      verbose)
    with atomic_path(out / OPENMM_HELPER, overwrite=overwrite) as tmp:
        shutil.copyfile(openmm_force.__file__, tmp)
    lows, highs, widths = default_bias(model, min(2, n_cvs))
    usage = OPENMM_USAGE.format(cv=CV_FILE, lows=[round(v, 4) for v in lows],
                                highs=[round(v, 4) for v in highs],
                                widths=[round(v, 4) for v in widths])
    files = [out / CV_FILE, out / OPENMM_HELPER]
    if verbose:
        print(f"wrote {files[0]} and {files[1]}\n")
        print(usage)
    return {"files": files, "cvs": info, "usage": usage}
