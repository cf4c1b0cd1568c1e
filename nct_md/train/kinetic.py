"""The kinetic objective: make the slowest latent coordinates kinetically slow.

The likelihood fixes the flow only up to maps that preserve the harmonic latent density, so
among equally likely flows it cannot tell a slow coordinate from a merely soft one. Where the
data are time-ordered trajectories, :func:`vamp2` of the ``k`` slowest latent positions at
``t`` and ``t + lag`` (Noé and Wu's VAMP-2 score without the constant function) measures how
much of the slow dynamics they capture; training maximises it together with the likelihood
(``NCT(kinetic_weight=...)``), so the flow stays exactly symplectic and its density usable.

By default restarts alternate between the likelihood alone and the kinetic objective
(:func:`restart_weights`), and :func:`choose_restart` keeps, among the fits whose slowest
latent positions are as slow as any fit's on validation pairs (discretised VAMP-2,
:func:`discrete_score`), the likelihood fit where there is one and the kinetic fit otherwise,
and of those the one whose slowest latent positions score highest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from nct_md.cv.scores import discrete_vamp2_pairs
from nct_md.defaults import KINETIC_MARGIN, KINETIC_WEIGHT
from nct_md.errors import NCTInputError
from nct_md.md.data import PhaseSpaceData
from nct_md.model_info import KineticInfo

Tensor = torch.Tensor


def _inverse_sqrt(c: Tensor, epsilon: float) -> Tensor:
    """``C^{-1/2}`` of a symmetric positive semi-definite ``(k, k)`` matrix, eigenvalues floored."""
    values, vectors = torch.linalg.eigh(c)
    return (vectors * values.clamp_min(epsilon).rsqrt()) @ vectors.T


def vamp2(x: Tensor, y: Tensor, epsilon: float = 1e-6) -> Tensor:
    """VAMP-2 score (constant function excluded) of instantaneous ``x`` and lagged ``y``.

    ``x``, ``y``: ``(B, k)``, row ``b`` of ``y`` the frame ``lag`` after row ``b`` of ``x``.
    Returns ``||C00^{-1/2} C01 C11^{-1/2}||_F^2`` of the mean-free covariances, a scalar in
    ``[0, k]`` (differentiable; ``epsilon`` floors the covariances' eigenvalues).
    """
    x = x - x.mean(0)
    y = y - y.mean(0)
    n = len(x) - 1
    koopman = _inverse_sqrt(x.T @ x / n, epsilon) @ (x.T @ y / n) @ _inverse_sqrt(y.T @ y / n,
                                                                                   epsilon)
    return (koopman ** 2).sum()


def lagged_pairs_within(data: PhaseSpaceData, lag: int, frames: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, i + lag)`` of one trajectory whose two frames are both among ``frames``."""
    first, second = data.lagged_pairs(lag)
    keep = np.isin(first, frames) & np.isin(second, frames)
    if keep.sum() < 2:
        raise NCTInputError(
            f"fewer than 2 time-lagged pairs (lag {lag} frames) inside the training or "
            "validation frames; the kinetic objective needs trajectories much longer than the "
            "lag (lower lag_ps, or set kinetic_weight=0)")
    return first[keep], second[keep]


class KineticPairs(NamedTuple):
    """The kinetic objective of a fit: weight, lag (frames), training and validation pairs.

    ``train_first[i]``, ``train_second[i]``: frame indices (into all frames of the data) of a
    pair ``lag`` apart inside the training frames; ``val_*`` likewise inside the validation
    frames.
    """

    weight: float
    lag: int
    train_first: torch.Tensor
    train_second: torch.Tensor
    val_first: torch.Tensor
    val_second: torch.Tensor


def kinetic_pairs(data: PhaseSpaceData, train: np.ndarray, val: np.ndarray | None,
                  weight: float, lag_ps: float, required: bool, separate_validation: bool = False,
                  world: int = 1, biased_kinetics: bool = False) -> KineticPairs | None:
    """The kinetic objective of weight ``weight`` for frames ``train`` / ``val`` of ``data``.

    ``required`` (an explicit weight): data that do not allow it (no frame times, mixed
    spacings, trajectories shorter than the lag, per-frame weights of biased sampling unless
    ``biased_kinetics``, a ``separate_validation`` set, ``world > 1`` training processes) are
    refused, and weight 0
    needs no pairs (None). Not ``required`` (the default, :func:`restart_weights`): such data
    give None with a warning that says why, and weight 0 still gets pairs, so the likelihood
    fit is scored like the kinetic one.
    """
    if weight == 0 and required:
        return None
    try:
        if data.weights is not None and not biased_kinetics:
            raise NCTInputError(
                "kinetic_weight needs unbiased trajectories, and these frames carry weights "
                "(biased sampling, whose dynamics are not the unbiased kinetics); use a "
                "kinetic weight of 0")
        if separate_validation or world > 1:
            raise NCTInputError(
                "kinetic_weight needs the validation frames held out of the data (no "
                "separate validation set) and a single training process")
        lag = data.lag_frames(lag_ps)
        pairs = [torch.as_tensor(a) for frames in (train, val)
                 for a in lagged_pairs_within(data, lag, frames)]
    except NCTInputError as exc:
        if required:
            raise
        warnings.warn(f"training on the likelihood alone (no kinetic objective): {exc}",
                      stacklevel=4)
        return None
    return KineticPairs(weight, lag, *pairs)


def restart_weights(weight: float | None, restarts: int) -> list[float]:
    """The kinetic weight of each restart.

    A number: that weight for every restart. None (the default): the likelihood alone (0) for
    the first restart and every other one after it, :data:`~nct_md.defaults.KINETIC_WEIGHT`
    for the others (where the data allow it), so :func:`choose_restart` can compare the two.
    """
    if weight is not None:
        return [weight] * restarts
    return [0.0 if k % 2 == 0 else KINETIC_WEIGHT for k in range(restarts)]


def choose_restart(nll: list[float], kinetic: list[KineticInfo | None],
                   margin: float = KINETIC_MARGIN) -> int:
    """Index of the fit to keep among restarts.

    ``nll``: each fit's validation NLL (nats/frame); ``kinetic``: its kinetic record (None
    without one; weight 0 for a likelihood-only fit scored the same way). When every fit has a
    discretised VAMP-2 on the validation pairs, the candidates are the fits within ``margin``
    of the best one (their slowest CVs are as slow as any fit's); the likelihood-only fits among
    them are preferred (the paper's CVs), the kinetic ones only when no likelihood-only fit comes
    close, and of the preferred fits the one with the highest score is kept (restarts of one
    objective are told apart by how slow their CVs are, not by likelihood). Without those
    scores: the lowest validation objective (NLL, minus weight * VAMP-2 with a kinetic
    objective).
    """
    fits = range(len(nll))
    if all(k is not None and k.validation_vamp2_discrete is not None for k in kinetic):
        best = max(k.validation_vamp2_discrete for k in kinetic)
        fits = [i for i in fits if kinetic[i].validation_vamp2_discrete >= best - margin]
        plain = [i for i in fits if kinetic[i].weight == 0]
        return max(plain or fits, key=lambda i: kinetic[i].validation_vamp2_discrete)
    return min(fits, key=lambda k: nll[k] - (kinetic[k].weight * kinetic[k].validation_vamp2
                                             if kinetic[k] else 0.0))


@torch.no_grad()
def discrete_score(latent: Callable[[Tensor], Tensor], q: Tensor, pairs: KineticPairs,
                   n_slow: int) -> float:
    """Discretised VAMP-2 (:func:`nct_md.cv.scores.discrete_vamp2_pairs`) of the ``n_slow``
    slowest latent positions ``latent(q)[:, :n_slow]``: states and VAMP model fitted on the
    training pairs, scored on the validation pairs; ``q`` holds every frame of the data."""
    def slow(first: Tensor, second: Tensor) -> tuple[np.ndarray, np.ndarray]:
        return tuple(latent(q[i])[:, :n_slow].double().cpu().numpy() for i in (first, second))

    return discrete_vamp2_pairs(slow(pairs.train_first, pairs.train_second),
                                slow(pairs.val_first, pairs.val_second), n_slow)
