"""Paths through a model's latent space, decoded to Cartesian frames.

Momenta play no part: the model is a point transformation, so the latent positions ``Q``
depend on the configuration ``q`` only and ``q`` on ``Q`` only. Frames are encoded with
``p = 0`` and paths decoded with ``P = 0``.
"""

from __future__ import annotations

import mdtraj as md
import numpy as np
import torch

from nct_md.errors import NCTInputError
from nct_md.model import NCTModel

#: Accepted ``others`` options of :func:`interpolate`.
OTHERS = ("a", "mean")


def model_xyz(model: NCTModel, frame: md.Trajectory | np.ndarray) -> np.ndarray:
    """Positions of the model's atoms in one frame, shape ``(1, N, 3)``, nm.

    Parameters
    ----------
    model : NCTModel
    frame : mdtraj.Trajectory or ndarray
        A one-frame trajectory over the full topology the model was trained with, or over the
        model's own atoms (e.g. a frame of a path returned here); or positions of the model's
        atoms, shape ``(N, 3)`` or ``(1, N, 3)``, nm.
    """
    n_atoms = len(model.atom_names)
    if isinstance(frame, md.Trajectory):
        if frame.n_frames != 1:
            raise NCTInputError(f"expected one frame, got a trajectory of {frame.n_frames}; "
                                "pass traj[i]")
        labels = [f"{atom.residue}-{atom.name}" for atom in frame.topology.atoms]
        atoms = (np.arange(n_atoms) if labels == model.atom_names
                 else model.select_atoms(frame.topology))
        return frame.xyz[:, atoms].astype(np.float64)
    xyz = np.asarray(frame, dtype=np.float64)
    if xyz.shape not in {(n_atoms, 3), (1, n_atoms, 3)}:
        raise NCTInputError(f"frame positions must have shape ({n_atoms}, 3) for the model's "
                            f"{n_atoms} atoms, got {xyz.shape}")
    if not np.isfinite(xyz).all():
        raise NCTInputError("frame positions contain NaN or infinite values")
    return xyz.reshape(1, n_atoms, 3)


@torch.no_grad()
def latent_coordinates(model: NCTModel, frame: md.Trajectory | np.ndarray) -> torch.Tensor:
    """Latent positions ``Q`` of one frame, slowest mode first, shape ``(d,)``, model units (ps).

    Raises NCTInputError if the model mixes momenta into ``Q`` (then ``Q`` is no function of the
    configuration and a path in ``Q`` has no configuration to show).
    """
    q = model.preprocessing.superpose(model_xyz(model, frame))
    return model.latent_positions(q)[0]


@torch.no_grad()
def decode_path(model: NCTModel, Q: torch.Tensor) -> md.Trajectory:
    """Frames of latent positions ``Q`` ``(B, d)``, slowest mode first, as a trajectory.

    Returns
    -------
    mdtraj.Trajectory
        ``B`` frames of the model's atoms (``model.topology``), nm, each superposed (mass-weighted
        Kabsch) on the model's reference structure, centred on the origin.
    """
    raw = torch.empty_like(Q)
    raw[:, model.latent.slow_order()] = Q
    _, q = model.decode(torch.zeros_like(raw), raw)
    xyz = q.cpu().double().numpy().reshape(len(q), -1, 3)
    aligned, _ = model.preprocessing.frame.superpose(xyz)
    return model.to_trajectory(aligned.reshape(len(aligned), -1))


def _check_count(name: str, value: int, low: int, high: int | None = None) -> None:
    """Raise NCTInputError unless ``value`` is an integer in ``[low, high]``."""
    if (isinstance(value, bool) or int(value) != value or value < low
            or (high is not None and value > high)):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise NCTInputError(f"{name} must be an integer {bound}, got {value}")


def interpolate(model: NCTModel, frame_a: md.Trajectory | np.ndarray,
                frame_b: md.Trajectory | np.ndarray, n_frames: int = 20, modes: int = 2,
                others: str = "a") -> md.Trajectory:
    """Move the ``modes`` slowest latent coordinates from frame a to frame b in a straight line.

    Parameters
    ----------
    model : NCTModel
        A configuration-separable (point-transformation) model.
    frame_a, frame_b : mdtraj.Trajectory or ndarray
        End points: one-frame trajectories or positions of the model's atoms (see
        :func:`model_xyz`).
    n_frames : int
        Frames of the path, end points included (at least 2).
    modes : int
        Number ``k`` of slowest latent modes moved, ``1 <= k <= d``.
    others : {"a", "mean"}
        The other ``d - k`` modes stay at frame a's values (``"a"``: the first frame is frame a
        exactly) or at their mean, 0, the centre of each harmonic mode (``"mean"``).

    Returns
    -------
    mdtraj.Trajectory
        ``n_frames`` frames of the model's atoms, nm, superposed on the model's reference.
        The last frame equals frame b where the ``k`` modes hold all that sets b apart.
    """
    d = model.preprocessing.n_dof
    _check_count("n_frames", n_frames, 2)
    _check_count("modes", modes, 1, d)
    if others not in OTHERS:
        raise NCTInputError(f"others must be one of {', '.join(OTHERS)}, got {others!r}")
    Q_a = latent_coordinates(model, frame_a)
    Q_b = latent_coordinates(model, frame_b)
    s = torch.linspace(0.0, 1.0, int(n_frames), dtype=Q_a.dtype, device=Q_a.device)[:, None]
    start = Q_a if others == "a" else torch.zeros_like(Q_a)
    Q = start.repeat(int(n_frames), 1)
    Q[:, :modes] = Q_a[:modes] + s * (Q_b[:modes] - Q_a[:modes])
    return decode_path(model, Q)


def traverse(model: NCTModel, frame: md.Trajectory | np.ndarray, mode: int = 0,
             span: float = 2.0, n_frames: int = 21) -> md.Trajectory:
    """Move one latent mode across ``[-span, span]`` thermal widths around a frame's value.

    Parameters
    ----------
    model : NCTModel
        A configuration-separable (point-transformation) model.
    frame : mdtraj.Trajectory or ndarray
        The starting configuration (see :func:`model_xyz`); every other mode keeps its value.
    mode : int
        Latent mode, 0 for the slowest (the order of ``model.frequencies``).
    span : float
        Half-range in units of the mode's thermal width ``1 / w`` (ps, the standard deviation
        of ``Q`` in the model's harmonic latent density ``exp(-w^2 Q^2 / 2)``).
    n_frames : int
        Frames of the path (at least 2); the middle one (odd ``n_frames``) is the frame itself.

    Returns
    -------
    mdtraj.Trajectory
        ``n_frames`` frames of the model's atoms, nm, superposed on the model's reference.
    """
    d = model.preprocessing.n_dof
    _check_count("mode", mode, 0, d - 1)
    _check_count("n_frames", n_frames, 2)
    if not np.isfinite(span) or span <= 0:
        raise NCTInputError(f"span must be a positive number of thermal widths, got {span}")
    Q0 = latent_coordinates(model, frame)
    width = 1.0 / float(model.frequencies[mode])
    steps = torch.linspace(-span, span, int(n_frames), dtype=Q0.dtype, device=Q0.device)
    Q = Q0.repeat(int(n_frames), 1)
    Q[:, mode] = Q0[mode] + steps * width
    return decode_path(model, Q)
