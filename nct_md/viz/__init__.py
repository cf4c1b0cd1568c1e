"""See what the model sees: latent paths decoded to conformations, and ways to show them.

Public API
----------
interpolate(model, frame_a, frame_b, n_frames, modes=k, others="a"|"mean")
    Move the k slowest latent coordinates from frame a to frame b in a straight line, keep the
    other modes, decode: an ``mdtraj.Trajectory`` of the model's atoms superposed on its reference.
traverse(model, frame, mode, span, n_frames)
    Move one latent mode across +-span thermal widths around a frame.
latent_coordinates(model, frame), decode_path(model, Q)
    The two halves: a frame's latent positions (slowest first) and frames of latent positions.
show(traj, representation="ball+stick")
    An nglview widget that plays the frames in a notebook (needs the ``viz`` extra).
html_page(traj, ...), write_html(traj, path, ...)
    A single self-contained HTML page (NGL inlined, no http(s) reference) with play/pause and a
    frame slider.
ramachandran(path, data), path_angles(path), save_figure(fig, path)
    Matplotlib figures: the path over the data's (Phi, Psi) density, Phi/Psi along the path;
    written as PNG or SVG.
"""

from nct_md.viz.html import html_page, write_html
from nct_md.viz.latent_paths import decode_path, interpolate, latent_coordinates, traverse
from nct_md.viz.plots import path_angles, ramachandran, save_figure
from nct_md.viz.widget import show

__all__ = ["decode_path", "html_page", "interpolate", "latent_coordinates", "path_angles",
           "ramachandran", "save_figure", "show", "traverse", "write_html"]
