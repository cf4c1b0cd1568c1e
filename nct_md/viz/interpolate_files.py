"""``nct-md interpolate`` as one function: a latent path between two frames, written to files.

:func:`interpolate_to_files` checks every output before any work, then writes the decoded path
as a multi-model PDB (nm in the model, Angstrom in the file, superposed on the model's
reference), and optionally an offline HTML animation and Ramachandran / Phi-Psi plots.
"""

from __future__ import annotations

import os
from pathlib import Path

from nct_md.atomic import atomic_path, check_output, check_output_folder
from nct_md.cv.reference import phi_psi
from nct_md.errors import NCTInputError
from nct_md.md import io
from nct_md.model import NCTModel
from nct_md.viz.html import write_html
from nct_md.viz.latent_paths import interpolate
from nct_md.viz.ngl import ngl_script
from nct_md.viz.plots import path_angles, ramachandran, save_figure

PathLike = str | os.PathLike
#: Files written into the ``plots`` folder.
PLOTS = ("ramachandran.png", "ramachandran.svg", "angles.png", "angles.svg")


def _frame_index(index: int, n_frames: int, name: str) -> int:
    """``index`` made non-negative; raises NCTInputError when outside the trajectory."""
    if not -n_frames <= index < n_frames:
        raise NCTInputError(f"{name} {index} is outside the trajectory's {n_frames} frames")
    return index % n_frames


def _check_outputs(out: PathLike, html: PathLike | None, plots: PathLike | None,
                   overwrite: bool) -> None:
    """Raise for a wrong suffix, an unwritable location, or an existing output without
    ``overwrite``."""
    if Path(out).suffix.lower() != ".pdb":
        raise NCTInputError(f"out must end in .pdb, got {out}")
    if html and Path(html).suffix.lower() not in {".html", ".htm"}:
        raise NCTInputError(f"html must end in .html, got {html}")
    for path in [out] + ([html] if html else []):
        check_output(path, overwrite)
    if plots:
        check_output_folder(plots, list(PLOTS), overwrite)


def interpolate_to_files(model_path: PathLike, traj: PathLike, from_frame: int, to_frame: int,
                         out: PathLike, top: PathLike | None = None, n_frames: int = 20,
                         modes: int = 2, others: str = "a", html: PathLike | None = None,
                         plots: PathLike | None = None, overwrite: bool = False) -> dict:
    """Decode a straight latent path between two frames of ``traj`` and write it.

    Parameters
    ----------
    model_path : path
        Model file written by ``nct-md train``.
    traj : path
        Trajectory holding both frames; ``top`` its topology where the format has none.
    from_frame, to_frame : int
        Frame indices (negative count from the end).
    out : path
        Multi-model ``.pdb`` of the ``n_frames`` path frames (ends included).
    n_frames, modes, others
        As :func:`nct_md.viz.interpolate`: path length, the ``modes`` slowest latent modes
        moved, the other modes at frame a's values (``"a"``) or their mean (``"mean"``).
    html : path, optional
        Also write an offline HTML animation (needs nglview's NGL).
    plots : path, optional
        Also write :data:`PLOTS` into this folder (peptides only).
    overwrite : bool
        Replace existing outputs.

    Returns
    -------
    dict
        ``out``, ``n_frames``, ``n_atoms``, ``from_frame`` and ``to_frame`` (non-negative),
        ``modes``, ``others``, and ``html`` / ``plots`` where written.
    """
    _check_outputs(out, html, plots, overwrite)
    if html:
        ngl_script()  # fail before any work if nglview's NGL is missing
    model = NCTModel.load(model_path)
    frames = io.load(traj, top=top)[0].traj
    if plots:
        phi_psi(frames[:1])  # fail before any work if the topology is no peptide
    i = _frame_index(from_frame, frames.n_frames, "from_frame")
    j = _frame_index(to_frame, frames.n_frames, "to_frame")
    path = interpolate(model, frames[i], frames[j], n_frames=n_frames, modes=modes,
                       others=others)
    with atomic_path(out, overwrite=overwrite) as tmp:
        path.save_pdb(str(tmp))
    summary = {"out": str(out), "n_frames": path.n_frames, "n_atoms": path.n_atoms,
               "from_frame": i, "to_frame": j, "modes": modes, "others": others}
    if html:
        write_html(path, html, title=f"nct-md: frame {i} to {j}, {modes} slowest modes")
        summary["html"] = str(html)
    if plots:
        data = frames.atom_slice(model.select_atoms(frames.topology))
        figures = {"ramachandran": ramachandran(path, data), "angles": path_angles(path)}
        for name in PLOTS:
            save_figure(figures[name.split(".")[0]], Path(plots) / name)
        summary["plots"] = str(plots)
    return summary
