"""Scores of CVs: mutual information with angles, VAMP-2 (deeptime), TICA baseline, kNN basins.

VAMP-2 comes in two flavours: of the CVs themselves (linear functions of them) and of a fixed
nonlinear basis of them (one-hot k-means states, "MSM-style"), which compares CV spaces without
favouring coordinates whose slow process happens to be linear in them.

Time-lagged scores take lists of per-trajectory arrays and never join trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from deeptime.clustering import KMeans
from deeptime.decomposition import TICA, VAMP
from deeptime.numeric import ZeroRankError
from scipy.spatial import cKDTree
from scipy.special import digamma

Trajs = Sequence[np.ndarray]


def mutual_information(x: np.ndarray, y: np.ndarray, k: int = 5, periodic_y: bool = False,
                       max_samples: int = 20_000, seed: int = 0) -> float:
    """Kraskov-Stoegbauer-Grassberger (algorithm 1) kNN estimate of I(X; Y) in nats.

    Parameters
    ----------
    x : ndarray ``(n,)`` or ``(n, dx)``
    y : ndarray ``(n,)`` or ``(n, dy)``; an angle in radians when ``periodic_y``
        Periodic angles are embedded as ``(cos y, sin y)`` so distances respect the wrap.
    k : int
        Neighbours in the joint space.
    max_samples : int
        Evenly strided subsample above this size (the estimator is O(n log n) but memory-bound).
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64)
    y = np.stack([np.cos(y), np.sin(y)], axis=1) if periodic_y else y.reshape(len(y), -1)
    if len(x) > max_samples:
        idx = np.random.default_rng(seed).choice(len(x), max_samples, replace=False)
        x, y = x[idx], y[idx]
    # scale each variable to unit spread so the max-norm treats them alike; tiny jitter breaks
    # ties (KSG assumes continuous variables)
    rng = np.random.default_rng(seed)
    x = x / (x.std(0) + 1e-300) + 1e-10 * rng.standard_normal(x.shape)
    y = y / (y.std(0) + 1e-300) + 1e-10 * rng.standard_normal(y.shape)
    n = len(x)
    joint = np.hstack([x, y])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]
    radius = np.nextafter(eps, 0)  # strictly closer than the k-th neighbour
    n_x = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1
    n_y = cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True) - 1
    mi = digamma(k) + digamma(n) - np.mean(digamma(n_x + 1) + digamma(n_y + 1))
    return float(max(mi, 0.0))


def vamp2(train: Trajs, test: Trajs, lag: int) -> float:
    """Cross-validated VAMP-2 score (constant function included) of features.

    A VAMP model is fitted on the ``train`` trajectories and scored on covariances of ``test``
    (deeptime's ``score(2, test_model=...)``). Each element is ``(n_frames, n_features)``.
    """
    return _cross_validated_vamp2([np.asarray(t, np.float64) for t in train],
                                  [np.asarray(t, np.float64) for t in test], lag)


def _cross_validated_vamp2(train: Trajs | tuple, test: Trajs | tuple, lag: int | None,
                           dim: int | None = None) -> float:
    """VAMP-2 of a deeptime VAMP model fitted on ``train``, scored on ``test``'s covariances.

    ``train`` and ``test`` are lists of trajectories (``lag`` in frames) or, with ``lag=None``,
    ``(instantaneous, lagged)`` pairs of arrays.
    Held-out data that do not vary at all in these features (e.g. every frame in one k-means
    state) carry only the constant function: their score is exactly 1.
    """
    fit = VAMP(lagtime=lag, epsilon=1e-10).fit(train).fetch_model()
    try:
        held = VAMP(lagtime=lag, epsilon=1e-10).fit(test).fetch_model()
        return float(fit.score(2, test_model=held, dim=dim))
    except ZeroRankError:
        return 1.0


def _one_hot_states(train: list[np.ndarray], n_clusters: int, seed: int):
    """The map ``(n, d) -> (n, n_clusters)`` one-hot k-means states fitted on ``train`` frames.

    Each coordinate is standardised with the ``train`` mean and spread; deeptime ``KMeans``
    (``n_clusters`` centres, k-means++ seeded with ``seed``, one thread) is fitted on the joined
    ``train`` frames (clustering ignores time order).
    """
    joined = np.concatenate([np.asarray(t, np.float64).reshape(len(t), -1) for t in train])
    mean, std = joined.mean(0), joined.std(0) + 1e-300
    kmeans = KMeans(n_clusters, fixed_seed=seed, n_jobs=1).fit(
        (joined - mean) / std, n_jobs=1).fetch_model()
    eye = np.eye(n_clusters)
    return lambda x: eye[kmeans.transform((np.asarray(x, np.float64).reshape(len(x), -1) - mean)
                                          / std, n_jobs=1)]


def discrete_vamp2(train: Trajs, test: Trajs, lag: int, n_components: int,
                   n_clusters: int = 100, seed: int = 0) -> float:
    """Cross-validated VAMP-2 of one-hot k-means states of the coordinates (constant included).

    Every frame becomes the one-hot indicator ``(n_frames, n_clusters)`` of its nearest k-means
    centre (:func:`_one_hot_states`, fitted on ``train``). A VAMP model of these indicators is
    fitted on ``train`` and scored on ``test`` (trajectories kept separate) with the constant
    function plus its ``n_components`` leading singular functions, so the score lies in
    ``[1, 1 + n_components]``.

    Each element of ``train`` and ``test`` is ``(n_frames, n_coordinates)``; ``lag`` in frames.
    """
    states = _one_hot_states(list(train), n_clusters, seed)
    return _cross_validated_vamp2([states(t) for t in train], [states(t) for t in test], lag,
                                  n_components)


def discrete_vamp2_pairs(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                         n_components: int, n_clusters: int = 100, seed: int = 0) -> float:
    """:func:`discrete_vamp2` of time-lagged pairs: ``(x_t, x_{t+lag})``, each ``(n_pairs, d)``.

    The states are fitted on both frames of the ``train`` pairs; the VAMP model on the
    ``train`` pairs and scored on the ``test`` pairs.
    """
    states = _one_hot_states(list(train), n_clusters, seed)
    return _cross_validated_vamp2(tuple(map(states, train)), tuple(map(states, test)), None,
                                  n_components)


def binned_vamp2_pairs(first: np.ndarray, second: np.ndarray, n_bins: int = 20) -> float:
    """VAMP-2 (constant plus the leading singular function, in ``[1, 2]``) of one coordinate.

    ``first[i]`` and ``second[i]`` are the coordinate at ``t`` and ``t + lag`` (each
    ``(n_pairs,)``); every value becomes the one-hot indicator of its bin among ``n_bins``
    equally populated intervals of the joined values, and a deeptime VAMP model of the
    indicators is fitted and scored on the same pairs. Near 2: the coordinate splits the data
    into states that the dynamics rarely leaves within the lag; near 1: it decorrelates within
    the lag. A measure for ranking coordinates of one data set, not a held-out score.
    """
    edges = np.quantile(np.concatenate([first, second]), np.linspace(0, 1, n_bins + 1)[1:-1])
    eye = np.eye(n_bins)
    pairs = tuple(eye[np.digitize(x, edges)] for x in (first, second))
    return _cross_validated_vamp2(pairs, pairs, None, 1)


def tica_components(train: Trajs, lag: int, dim: int, apply_to: Trajs) -> list[np.ndarray]:
    """Fit TICA (deeptime) on ``train``; the ``dim`` leading components of each ``apply_to``."""
    tica = TICA(lagtime=lag, dim=dim).fit([np.asarray(t, np.float64) for t in train]).fetch_model()
    return [tica.transform(np.asarray(t, np.float64)) for t in apply_to]


def knn_balanced_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                          test_y: np.ndarray, k: int = 15) -> float:
    """Balanced accuracy of a k-nearest-neighbour majority vote (features standardised on train).

    Balanced accuracy is the mean recall over the classes present in ``test_y``.
    """
    mean, std = train_x.mean(0), train_x.std(0) + 1e-300
    tree = cKDTree((train_x - mean) / std)
    _, idx = tree.query((test_x - mean) / std, k=k)
    votes = np.asarray(train_y)[idx.reshape(len(test_x), -1)]
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    counts = np.stack([(votes == c).sum(1) for c in range(n_classes)], axis=1)
    predicted = counts.argmax(1)
    recalls = [np.mean(predicted[test_y == c] == c) for c in np.unique(test_y)]
    return float(np.mean(recalls))
