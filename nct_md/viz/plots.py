"""Matplotlib figures of paths: Ramachandran plot over the data's density, Phi/Psi along a path.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state, no display needed);
:func:`save_figure` writes PNG or SVG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import mdtraj as md
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from nct_md.atomic import atomic_path
from nct_md.cv.reference import phi_psi
from nct_md.errors import NCTInputError

#: Formats :func:`save_figure` writes, by file suffix.
FORMATS = {".png": "png", ".svg": "svg"}


def _phi_psi_degrees(traj: md.Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nct_md.cv.reference.phi_psi` in degrees, ``(-180, 180]``."""
    phi, psi = phi_psi(traj)
    return np.degrees(phi), np.degrees(psi)


def _as_list(data: md.Trajectory | Sequence[md.Trajectory]) -> list[md.Trajectory]:
    return [data] if isinstance(data, md.Trajectory) else list(data)


def ramachandran(path: md.Trajectory, data: md.Trajectory | Sequence[md.Trajectory],
                 bins: int = 90, title: str | None = None) -> Figure:
    """Ramachandran plot: the data's (Phi, Psi) density with the path drawn over it.

    Parameters
    ----------
    path : mdtraj.Trajectory
        The path's frames, e.g. from :func:`nct_md.viz.interpolate`.
    data : mdtraj.Trajectory or sequence of them
        Reference frames whose density is shown (log colour scale); any topology with Phi and
        Psi (all atoms or the model's).
    bins : int
        Histogram bins per axis over (-180, 180] degrees.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    angles = [_phi_psi_degrees(t) for t in _as_list(data)]
    if not angles or sum(len(a[0]) for a in angles) == 0:
        raise NCTInputError("no data frames for the density; pass at least one frame")
    phi = np.concatenate([a[0] for a in angles])
    psi = np.concatenate([a[1] for a in angles])
    path_phi, path_psi = _phi_psi_degrees(path)
    fig = Figure(figsize=(5.6, 4.6))
    ax = fig.add_subplot(aspect="equal")
    *_, image = ax.hist2d(phi, psi, bins=bins, range=[[-180, 180], [-180, 180]], density=True,
                          norm=LogNorm(), cmap="Greys", cmin=1e-12)
    image.set_rasterized(True)  # a bitmap inside SVG: 90 x 90 vector cells would be megabytes
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="density (1/deg$^2$)")
    # break the drawn line where the path wraps around the periodic box
    jumps = np.flatnonzero((np.abs(np.diff(path_phi)) > 180) | (np.abs(np.diff(path_psi)) > 180))
    for part_phi, part_psi in zip(np.split(path_phi, jumps + 1), np.split(path_psi, jumps + 1),
                                  strict=True):
        ax.plot(part_phi, part_psi, "-", color="tab:red", lw=1.5)
    ax.plot(path_phi, path_psi, ".", color="tab:red", ms=4, label="path")
    ax.plot(path_phi[:1], path_psi[:1], "o", color="tab:blue", ms=7, label="start")
    ax.plot(path_phi[-1:], path_psi[-1:], "s", color="tab:orange", ms=7, label="end")
    ax.set(xlim=(-180, 180), ylim=(-180, 180), xlabel=r"$\phi$ (deg)", ylabel=r"$\psi$ (deg)",
           xticks=range(-180, 181, 90), yticks=range(-180, 181, 90))
    ax.legend(loc="lower right", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def path_angles(path: md.Trajectory, title: str | None = None) -> Figure:
    """Phi and Psi along a path, against the path coordinate (0 at the first frame, 1 at the last).

    Angles are unwrapped (continuous across +-180 degrees), so values may leave (-180, 180].
    """
    phi, psi = phi_psi(path)
    s = np.linspace(0.0, 1.0, path.n_frames) if path.n_frames > 1 else np.zeros(1)
    fig = Figure(figsize=(5.2, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for values, name, marker in ((phi, r"$\phi$", "o"), (psi, r"$\psi$", "s")):
        ax.plot(s, np.degrees(np.unwrap(values)), marker=marker, ms=3, label=name)
    ax.set(xlabel="path coordinate", ylabel="angle (deg)", xlim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``fig`` as PNG (150 dpi) or SVG, chosen by the suffix, atomically; returns the path."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise NCTInputError(f"unsupported figure format '{path.suffix}'; use "
                            f"{' or '.join(FORMATS)}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    return path
