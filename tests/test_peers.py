"""Peer slow-CV learners (bench/peers.py) on a hopping system whose slow coordinate is known."""

from __future__ import annotations

import numpy as np
import pytest

from bench.peers import VALID_FRACTION, fit_peer, split_pairs

D, LAG, FRAMES = 8, 5, 2000
EPOCHS = 100  # held-out |r| >= 0.995 over 4 data x 3 network seeds (measured); 40 is too few


def hopping(n_traj: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Trajectories (FRAMES, D) in nm and their slow coordinate s = +-1 (FRAMES,).

    s switches sign with probability 0.005 per frame; the features are s plus 0.3 Gaussian noise
    and D - 1 fast Gaussian dims of std 2, scaled by 0.1 nm and mixed by a fixed random rotation.
    The best linear CV reaches |r| = 1 / sqrt(1 + 0.3**2) = 0.958 with s; a nonlinear one beats it.
    """
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(np.random.default_rng(123).normal(size=(D, D)))
    trajs, slow = [], []
    for _ in range(n_traj):
        s = np.where(np.cumsum(rng.random(FRAMES) < 0.005) % 2 == 0, 1.0, -1.0)
        s *= rng.choice([-1.0, 1.0])
        fast = 2.0 * rng.normal(size=(FRAMES, D - 1))
        x = np.column_stack([s + 0.3 * rng.normal(size=FRAMES), fast])
        trajs.append(0.1 * x @ rot.T)
        slow.append(s)
    return trajs, slow


@pytest.fixture(scope="module")
def data() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(3 training trajectories, held-out features (FRAMES, D), its slow coordinate (FRAMES,))."""
    train, _ = hopping(3, seed=0)
    held, slow = hopping(1, seed=100)
    return train, held[0], slow[0]


def _needs(method: str) -> None:
    if method == "deep_tica":
        pytest.importorskip("mlcolvar")


@pytest.mark.parametrize("method", ["deep_tica", "vampnet"])
def test_cv1_finds_the_slow_coordinate(data, method: str) -> None:
    _needs(method)
    train, held, slow = data
    transform, record = fit_peer(method, train, lag=LAG, n_cvs=2, seed=0, max_epochs=EPOCHS)
    cvs = transform(held)
    assert cvs.shape == (FRAMES, 2) and cvs.dtype == np.float64
    assert abs(np.corrcoef(cvs[:, 0], slow)[0, 1]) >= 0.98
    assert record["method"] == method and 0 < record["epochs"] <= EPOCHS and record["seconds"] > 0
    assert record["settings"]["n_train_pairs"] == 3 * (round(FRAMES * (1 - VALID_FRACTION)) - LAG)


@pytest.mark.parametrize("method", ["deep_tica", "vampnet"])
def test_fixed_seed_is_deterministic(data, method: str) -> None:
    _needs(method)
    train, held, _ = data
    runs = [fit_peer(method, train, lag=LAG, n_cvs=1, seed=s, max_epochs=3)[0](held)
            for s in (0, 0, 1)]
    assert runs[0].shape == (FRAMES, 1)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_pairs_stay_within_trajectories_and_time_blocks() -> None:
    trajs = [np.arange(100.0)[:, None] + 1000.0 * i for i in range(3)]
    (x0, xt), (v0, vt) = split_pairs(trajs, lag=4)
    assert np.all(xt - x0 == 4) and np.all(vt - v0 == 4)
    assert len(x0) == 3 * (80 - 4) and len(v0) == 3 * (20 - 4)
    assert np.all(x0 % 1000 < 80) and np.all(xt % 1000 < 80) and np.all(v0 % 1000 >= 80)


def test_unknown_method_is_refused(data) -> None:
    with pytest.raises(ValueError, match="unknown peer method"):
        fit_peer("tica", data[0], lag=LAG)
