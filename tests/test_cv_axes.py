"""Kinetic CV axes: the slowest directions among the slowest latent positions, found and used
everywhere."""

import copy

import numpy as np
import pytest
import scipy.linalg
import torch

from nct_md.defaults import KINETIC_MARGIN
from nct_md.estimator import NCT
from nct_md.export import cv_module
from nct_md.md.phase import load_phase_space
from nct_md.model import NCTModel
from nct_md.train.cv_axes import kinetic_axes, tica_axes
from nct_md.train.files import _print_summary


def _two_state_plane(direction_deg: float, n: int = 40_000, lag: int = 5, seed: int = 0):
    """Pairs ``(n - lag, 2)`` of a plane holding a rare two-state jump along ``direction_deg``
    and fast noise of the same size across it; the columns scaled by 3 and 0.5 (latent
    coordinates are not standardised). Returns ``first, second, state``."""
    rng = np.random.default_rng(seed)
    state = np.where(np.cumsum(rng.random(n) < 2e-3) % 2 == 0, -1.0, 1.0)
    noise = np.zeros(n)
    for t in range(1, n):
        noise[t] = 0.3 * noise[t - 1] + rng.normal()
    noise /= noise.std()
    a = np.radians(direction_deg)
    plane = (np.outer(state, [np.cos(a), np.sin(a)]) + np.outer(noise, [-np.sin(a), np.cos(a)])
             ) * [3.0, 0.5]
    return plane[:-lag], plane[lag:], state[:-lag]


@pytest.mark.parametrize("direction", [35.0, 120.0])
def test_cv1_follows_the_slow_process_and_cv2_is_the_farther_latent_axis(direction):
    first, second, state = _two_state_plane(direction)
    axes = kinetic_axes(first, second, lag_frames=5)
    matrix = np.asarray(axes.matrix)
    assert np.allclose(np.linalg.norm(matrix, axis=0), 1.0)
    corr = [abs(np.corrcoef(x, state)[0, 1]) for x in (first @ matrix[:, 0], *first.T)]
    # CV1 reads the slow state better than either latent axis (the noise across it is as large
    # as the jump), and scores within the margin of the slowest direction, well above the axes
    assert corr[0] > max(corr[1:]) + 0.03, corr
    assert axes.best_score - KINETIC_MARGIN <= axes.score <= axes.best_score
    assert axes.score > max(axes.latent_axis_scores) + 0.1
    farther = 1 if abs(np.cos(np.radians(axes.angle_deg))) > 0.5 else 0
    assert matrix[:, 1].tolist() == [float(farther == 0), float(farther == 1)]


def test_the_latent_axes_stay_when_no_direction_is_clearly_slower():
    first, second, _ = _two_state_plane(0.0)
    axes = kinetic_axes(first, second, lag_frames=5)
    assert axes.angle_deg == 0.0
    assert np.asarray(axes.matrix).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_tica_axes_are_the_leading_generalised_eigenvectors_and_follow_the_slow_process():
    # a rare two-state jump spread over latent coordinates 2-4 (not the two slowest), fast
    # noise on every coordinate; coordinates of different sizes
    rng = np.random.default_rng(1)
    n, lag, k = 40_000, 5, 6
    state = np.where(np.cumsum(rng.random(n) < 2e-3) % 2 == 0, -1.0, 1.0)
    noise = np.zeros((n, k))
    for t in range(1, n):
        noise[t] = 0.3 * noise[t - 1] + rng.normal(size=k)
    latent = (noise + np.outer(state, [0, 0, 0.6, -0.5, 0.4, 0])) * [3, 2, 1.5, 1, 1, 0.5]
    first, second = latent[:-lag], latent[lag:]
    axes = tica_axes(first, second, lag)
    matrix = np.asarray(axes.matrix)
    assert axes.method == "tica" and axes.lag_frames == lag and matrix.shape == (k, 2)
    assert np.allclose(np.linalg.norm(matrix, axis=0), 1.0)
    # independent reference: the reversible generalised eigenproblem C_tau v = l C_0 v
    both = np.concatenate([first, second])
    x, y = first - both.mean(0), second - both.mean(0)
    c0, ct = (x.T @ x + y.T @ y) / (2 * len(x)), (x.T @ y + y.T @ x) / (2 * len(x))
    values, vectors = scipy.linalg.eigh(ct, c0)
    reference = vectors[:, ::-1][:, :2] / np.linalg.norm(vectors[:, ::-1][:, :2], axis=0)
    assert np.abs(np.abs((matrix * reference).sum(0)) - 1).max() < 1e-8
    assert np.allclose(axes.autocorrelations, values[::-1][:2], atol=1e-8)
    corr = [abs(np.corrcoef(c, state[:-lag])[0, 1]) for c in (first @ matrix[:, 0], *first.T)]
    assert corr[0] > max(corr[1:]) + 0.1, corr


@pytest.fixture(scope="module")
def fitted(ala_data_files):
    """Fits of the same data by their CV axes: ``"plane"`` (a default single fit: likelihood
    only, scored on time-ordered pairs), ``"tica"`` (the kinetic objective), ``"plain"``
    (``kinetic_weight=0``: no kinetic record, no axes); and the ``"data"``."""
    data = load_phase_space([ala_data_files[1], ala_data_files[4]], select="heavy", stride=2)
    settings = dict(n_couplings=1, hidden=16, epochs=1, restarts=1, progress=False)
    weights = {"plane": None, "tica": 10.0, "plain": 0.0}
    return {name: NCT(**settings, kinetic_weight=w).fit(data).fetch_model()
            for name, w in weights.items()} | {"data": data}


@pytest.mark.parametrize("method", ["plane", "tica"])
def test_a_fit_on_trajectories_sets_the_axes_and_every_cv_path_uses_them(fitted, tmp_path,
                                                                          method):
    model, plain, data = fitted[method], fitted["plain"], fitted["data"]
    assert plain.info.cv_axes is None  # the paper's CVs: the slowest latent positions
    assert torch.equal(plain.cv_matrix(3), torch.eye(plain.preprocessing.n_dof,
                                                     dtype=torch.float64)[:, :3])
    axes = model.info.cv_axes
    matrix = np.asarray(axes.matrix)
    k = 2 if method == "plane" else min(8, model.preprocessing.n_dof)
    assert axes.method == method and axes.lag_frames == 5 and matrix.shape == (k, 2)
    q = data.q[::50].double()
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        latent = model64.latent_positions(q).numpy()
        cvs = model64.cvs(q, 3).numpy()
    expected = latent[:, :3].copy()
    expected[:, :2] = latent[:, :k] @ matrix
    assert np.abs(cvs - expected).max() < 1e-12
    exported = cv_module(model64, n_cvs=3, dtype=torch.float64)(q).detach().numpy()
    assert np.abs(exported - cvs).max() < 1e-6  # the export superposes the frames again
    model.save(tmp_path / "m.pt")
    assert NCTModel.load(tmp_path / "m.pt").info.cv_axes == axes


@pytest.mark.parametrize("method", ["plane", "tica"])
def test_cv_frequencies_are_one_over_the_cvs_latent_spread(fitted, method):
    model, plain = fitted[method], fitted["plain"]
    assert np.allclose(plain.cv_frequencies(3), plain.frequencies[:3])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        Q = model.latent.sample_positions(200_000, generator=generator).double()
    Q = Q[:, model.latent.slow_order()]
    spread = (Q @ model.cv_matrix(2)).std(0).numpy()
    assert np.allclose(1.0 / spread, model.cv_frequencies(2), rtol=0.01)


@pytest.mark.parametrize("method, says", [("plane", "the slow latent plane's kinetic axis"),
                                          ("tica", "the leading TICA directions of the")])
def test_train_prints_how_the_cvs_are_read(fitted, capsys, tmp_path, method, says):
    _print_summary(fitted[method], tmp_path / "m.pt")
    assert says in capsys.readouterr().out
