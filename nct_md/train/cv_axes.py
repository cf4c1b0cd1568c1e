"""Kinetic CV axes: the directions among the slowest latent positions that CV1 and CV2 follow.

Where the data are time-ordered trajectories, the kept fit's CVs are read along directions
chosen on time-lagged pairs of the training frames (:func:`fit_cv_axes`):

- A likelihood fit (the paper's model): the two slowest latent positions ``Q1``, ``Q2`` span a
  plane that holds the slow processes, but each of them may mix several (on alanine dipeptide
  one of them often carries Phi together with Psi). :func:`kinetic_axes` scores every
  direction of the plane by how metastable the single coordinate along it is (:func:`nct_md.
  cv.scores.binned_vamp2_pairs` at the kinetic lag) and takes CV1 along a direction scoring
  within :data:`~nct_md.defaults.KINETIC_MARGIN` of the best one, the one closest to a latent
  axis (so that where the data cannot tell directions apart, the latent coordinates stay); CV2
  is the latent axis farther from CV1. The CVs span the same plane as ``Q1``, ``Q2``.
- A fit with the kinetic objective: the objective makes the slowest latent positions slow, but
  on larger molecules the slow processes stay spread over several of the low-frequency ones.
  :func:`tica_axes` takes CV1 and CV2 along the two leading TICA directions of the
  :data:`~nct_md.defaults.KINETIC_READOUT` slowest latent positions.

Every axis is a unit vector of latent coordinates, so the CVs keep the model's units (ps).
"""

from __future__ import annotations

import numpy as np
import torch
from deeptime.decomposition import TICA

from nct_md.cv.scores import binned_vamp2_pairs
from nct_md.defaults import KINETIC_MARGIN, KINETIC_READOUT
from nct_md.md.data import PhaseSpaceData
from nct_md.model import NCTModel
from nct_md.model_info import CVAxes, KineticInfo

#: directions scored: angles of the standardised plane in steps of this many degrees
STEP_DEG = 1.0


def kinetic_axes(first: np.ndarray, second: np.ndarray, lag_frames: int,
                 margin: float = KINETIC_MARGIN) -> CVAxes:
    """The CV axes of the two slowest latent positions at ``t`` (``first``) and ``t + lag``
    (``second``), each ``(n_pairs, 2)`` in ps (module docstring).

    Directions are angles ``a`` in ``[0, 180)`` degrees of the plane with each coordinate
    divided by its standard deviation over the pairs; CV1's direction is the one within
    ``margin`` of the best score whose distance to the nearer axis, ``min(|sin a|, |cos a|)``, is
    smallest.
    """
    spread = np.concatenate([first, second]).std(0)
    angles = np.radians(np.arange(0.0, 180.0, STEP_DEG))
    units = np.stack([np.cos(angles), np.sin(angles)], axis=1) / spread  # (n_angles, 2)
    scores = np.array([binned_vamp2_pairs(first @ u, second @ u) for u in units])
    near_best = np.flatnonzero(scores >= scores.max() - margin)
    off_axis = np.minimum(np.abs(np.sin(angles)), np.abs(np.cos(angles)))
    chosen = near_best[np.argmin(off_axis[near_best])]
    cv1 = units[chosen] / np.linalg.norm(units[chosen])
    other = int(np.argmin(np.abs([np.cos(angles[chosen]), np.sin(angles[chosen])])))
    matrix = np.zeros((2, 2))
    matrix[:, 0], matrix[other, 1] = cv1, 1.0
    axis_scores = [float(scores[0]), float(scores[len(angles) // 2])]
    return CVAxes(matrix=matrix.tolist(), lag_frames=int(lag_frames),
                  angle_deg=float(np.degrees(angles[chosen])), score=float(scores[chosen]),
                  best_score=float(scores.max()), latent_axis_scores=axis_scores)


def tica_axes(first: np.ndarray, second: np.ndarray, lag_frames: int) -> CVAxes:
    """The CV axes of a kinetic fit from the ``k`` slowest latent positions at ``t``
    (``first``) and ``t + lag`` (``second``), each ``(n_pairs, k)`` in ps: the two leading
    directions of a reversible TICA (deeptime) of the pairs, each scaled to a unit vector and
    signed so that its largest coefficient is positive."""
    tica = TICA(dim=2).fit((first, second)).fetch_model()
    matrix = tica.instantaneous_coefficients[:, :2]
    matrix = matrix / np.linalg.norm(matrix, axis=0)
    matrix = matrix * np.sign(matrix[np.abs(matrix).argmax(0), [0, 1]])
    return CVAxes(matrix=matrix.tolist(), lag_frames=int(lag_frames), method="tica",
                  autocorrelations=[float(s) for s in tica.singular_values[:2]])


@torch.no_grad()
def fit_cv_axes(model: NCTModel, data: PhaseSpaceData, kinetic: KineticInfo,
                batch: int = 65_536) -> CVAxes:
    """The CV axes of ``model`` over every time-lagged pair (``kinetic.lag_frames`` apart,
    within one trajectory) of ``data``: :func:`tica_axes` of the
    :data:`~nct_md.defaults.KINETIC_READOUT` slowest latent positions where the fit used the
    kinetic objective (``kinetic.weight > 0``), else :func:`kinetic_axes` of the two slowest."""
    kinetic_fit, lag_frames = kinetic.weight > 0, kinetic.lag_frames
    k = min(KINETIC_READOUT, model.preprocessing.n_dof) if kinetic_fit else 2
    like = model.latent.log_frequencies
    slow = torch.cat([model.latent_positions(data.q[start:start + batch].to(like))[:, :k]
                      for start in range(0, len(data), batch)]).double().cpu().numpy()
    i, j = data.lagged_pairs(lag_frames)
    return (tica_axes if kinetic_fit else kinetic_axes)(slow[i], slow[j], lag_frames)
