"""Out-of-distribution score: flag frames whose CVs the model never learned.

The score of a frame is its negative configuration log-density under the model,

``s(q) = -ln p(q) = sum_k w_k^2 Q_k^2 / 2 - ln |det dQ/dx_q| + const``

(nats, i.e. kT units; model coordinates ``x_q``, in which Cartesian densities differ by one
constant), taken from :func:`nct_md.train.losses.configuration_log_prob`. Its first term is the
latent configurational energy; we keep the flow's volume term too, for two reasons. A frame in
a region the flow squeezes into the latent core (couplings extrapolating beyond the data) has a
typical latent energy but little density, and only the Jacobian sees that. And ``-ln p(q)`` is
exactly what the fit minimised on its training frames, so the spread of those frames' scores is
the model's own measure of its support.

A frame is out of distribution when its score is above :attr:`~nct_md.model_info.OODInfo.
threshold`: the 99.9th percentile of the training frames' scores (weighted, for weighted
frames), set at the end of :meth:`nct_md.estimator.NCT.fit` with the share of validation frames
above it (about 0.1 %), or by :func:`threshold_from` for models saved without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mdtraj as md
import numpy as np
import torch

from nct_md.errors import NCTInputError
from nct_md.model_info import OODInfo
from nct_md.train.split import validation_split

if TYPE_CHECKING:
    from nct_md.md.data import PhaseSpaceData
    from nct_md.model import NCTModel

#: What :attr:`OODInfo.score` names: the model's negative configuration log-density.
SCORE = "-ln p(q)"
#: Percentile of the training frames' scores that is the threshold.
TRAIN_PERCENTILE = 99.9


@dataclass(frozen=True)
class OODScores:
    """Per-frame out-of-distribution scores: ``score`` ``(n,)`` (``-ln p(q)``, nats), ``flag``
    ``(n,)`` (bool, ``score > threshold``) and the model's ``threshold``."""

    score: np.ndarray
    flag: np.ndarray
    threshold: float


def recorded(model: NCTModel) -> OODInfo:
    """The model's :class:`OODInfo`; one clear NCTInputError line for files without one."""
    if model.info.ood is None:
        raise NCTInputError(
            "this model has no out-of-distribution threshold (saved before nct-md recorded one); "
            "retrain it, or set model.info.ood = nct_md.cv.ood.threshold_from(model, "
            "training_trajectories) and save it")
    return model.info.ood


@torch.no_grad()
def position_scores(model: NCTModel, q: torch.Tensor, batch: int = 65_536) -> np.ndarray:
    """``-ln p(q)`` ``(n,)`` float64 of Eckart-frame positions ``q`` ``(n, 3N)`` nm."""
    like = model.latent.log_frequencies
    out = [-model.configuration_log_prob(model.preprocessing.to_model(
        q[start:start + batch].to(dtype=like.dtype, device=like.device)))
        for start in range(0, len(q), batch)]
    return torch.cat(out).cpu().double().numpy() if out else np.zeros(0)


def frame_scores(model: NCTModel, xyz: np.ndarray, batch: int = 65_536) -> np.ndarray:
    """``-ln p(q)`` ``(n,)`` float64 of frames ``(n, N, 3)`` nm of the model's atoms, in the
    model's order and any orientation (superposed first, as for the CVs)."""
    parts = [position_scores(model, model.preprocessing.superpose(xyz[start:start + batch]))
             for start in range(0, len(xyz), batch)]
    return np.concatenate(parts) if parts else np.zeros(0)


def ood_scores(model: NCTModel, xyz: np.ndarray, batch: int = 65_536) -> OODScores:
    """Scores and flags of frames ``(n, N, 3)`` nm of the model's atoms (:func:`frame_scores`)
    against the model's recorded threshold (:func:`recorded`)."""
    threshold = recorded(model).threshold
    score = frame_scores(model, xyz, batch)
    return OODScores(score, score > threshold, threshold)


def weighted_percentile(values: np.ndarray, percentile: float,
                        weights: np.ndarray | None = None) -> float:
    """The smallest value whose cumulative (weighted) share reaches ``percentile`` / 100.

    The inverted empirical distribution function (numpy's ``method="inverted_cdf"``), so at
    most ``100 - percentile`` % of the (weighted) values lie above it.
    """
    order = np.argsort(values)
    cumulative = np.cumsum(np.ones(len(values)) if weights is None else weights[order])
    index = np.searchsorted(cumulative, percentile / 100 * cumulative[-1], side="left")
    return float(values[order][min(index, len(values) - 1)])


def fraction_above(scores: np.ndarray, threshold: float,
                   weights: np.ndarray | None = None) -> float:
    """Share of the (weighted) scores ``(n,)`` above ``threshold``."""
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, np.float64)
    return float(weights[scores > threshold].sum() / weights.sum())


def threshold_from(model: NCTModel, trajs: md.Trajectory | Sequence[md.Trajectory],
                   percentile: float = TRAIN_PERCENTILE,
                   weights: np.ndarray | None = None) -> OODInfo:
    """The :class:`OODInfo` of the model's training trajectories, for model files without one.

    ``trajs`` are the training trajectories over their full topology (atoms found as for
    :meth:`~nct_md.model.NCTModel.transform`); ``weights`` ``(n_frames,)`` one per frame of all
    of them, for biased frames. Set it with ``model.info.ood = threshold_from(model, trajs)``,
    then ``model.save(path, overwrite=True)``. No validation share is recorded.
    """
    if not 0 < percentile < 100:
        raise NCTInputError(f"percentile must be in (0, 100), got {percentile}")
    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    scores = np.concatenate([frame_scores(model, t.xyz[:, model.select_atoms(t.topology)])
                             for t in trajs])
    if weights is not None and np.shape(weights) != scores.shape:
        raise NCTInputError(f"{len(scores)} frames but {np.size(weights)} weights")
    return OODInfo(score=SCORE, threshold=weighted_percentile(scores, percentile, weights),
                   train_percentile=percentile)


def fit_threshold(model: NCTModel, data: PhaseSpaceData, validation: PhaseSpaceData | None,
                  validation_fraction: float, percentile: float = TRAIN_PERCENTILE) -> OODInfo:
    """The :class:`OODInfo` of a fit (:meth:`nct_md.estimator.NCT.fit`): threshold on its
    training frames, share above it of its validation frames (the fit's split of ``data``, or
    ``validation``), both weighted by the frames' weights when they have them."""
    if validation is None:
        train, val = validation_split(data, validation_fraction)
        val_q = data.q[val]
        val_w = None if data.weights is None else data.weights[val]
    else:
        train, val_q, val_w = np.arange(len(data)), validation.q, validation.weights
    train_w = None if data.weights is None else data.weights[train]
    threshold = weighted_percentile(position_scores(model, data.q[train]), percentile, train_w)
    return OODInfo(score=SCORE, threshold=threshold, train_percentile=percentile,
                   validation_fraction_above=fraction_above(position_scores(model, val_q),
                                                            threshold, val_w))
