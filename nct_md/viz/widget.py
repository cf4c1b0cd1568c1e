"""An nglview widget that plays conformations in a notebook."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mdtraj as md

from nct_md.errors import NCTInputError

if TYPE_CHECKING:
    import nglview


def show(traj: md.Trajectory, representation: str = "ball+stick", **params: object
         ) -> nglview.NGLWidget:
    """An nglview widget of ``traj`` with its player (play/pause and frame slider).

    Parameters
    ----------
    traj : mdtraj.Trajectory
        Frames to play, e.g. from :func:`nct_md.viz.interpolate` or :func:`nct_md.viz.traverse`.
    representation : str
        NGL representation of all atoms; ``"ball+stick"`` suits small molecules (also
        ``"licorice"``, ``"spacefill"``, ``"line"``).
    **params
        NGL representation parameters, named as in NGL, e.g. ``radiusScale=0.8``.

    Returns
    -------
    nglview.NGLWidget
        Display it in a notebook (last expression of a cell, or ``IPython.display.display``).

    Raises
    ------
    ImportError
        If nglview is missing (``pip install 'nct-md[viz]'``).
    """
    try:
        import nglview
    except ImportError as exc:
        raise ImportError("nct_md.viz.show needs nglview: pip install 'nct-md[viz]'") from exc
    if traj.n_frames < 1:
        raise NCTInputError("no frames to show")
    reps = [{"type": representation, "params": {"sele": "all", **params}}]
    return nglview.show_mdtraj(traj, representations=reps)
