"""The kinetic objective: VAMP-2 against deeptime, and training that makes the slow CVs slower."""

import dataclasses

import numpy as np
import pytest
import torch
from deeptime.decomposition import VAMP

from nct_md.cli import main
from nct_md.defaults import KINETIC_MARGIN, KINETIC_WEIGHT
from nct_md.errors import NCTInputError
from nct_md.estimator import NCT
from nct_md.md.phase import load_phase_space
from nct_md.model import NCTModel
from nct_md.model_info import KineticInfo
from nct_md.train.kinetic import (
    choose_restart,
    kinetic_pairs,
    lagged_pairs_within,
    restart_weights,
    vamp2,
)
from nct_md.train.split import validation_split


def _deeptime_vamp2(x: np.ndarray, y: np.ndarray) -> float:
    """deeptime's VAMP-2 of instantaneous/lagged pairs, constant function removed."""
    return VAMP().fit((x, y)).fetch_model().score(2) - 1


def test_vamp2_equals_deeptime_on_a_correlated_linear_process():
    rng = np.random.default_rng(0)
    x = np.zeros((50_000, 3))
    for t in range(1, len(x)):
        x[t] = [0.99, 0.9, 0.5] * x[t - 1] + rng.normal(size=3) * [1, 2, 3]
    x[:, 1] += 0.5 * x[:, 0]  # correlated coordinates: the whitening matters
    ours = float(vamp2(torch.as_tensor(x[:-5]), torch.as_tensor(x[5:]), epsilon=1e-12))
    assert ours == pytest.approx(_deeptime_vamp2(x[:-5], x[5:]), abs=1e-10)
    assert 1.0 < ours < 2.0  # two slow processes, one fast


@pytest.fixture(scope="module")
def two_trajectories(ala_data_files):
    return load_phase_space([ala_data_files[1], ala_data_files[4]], select="heavy", stride=2)


def _latent_vamp2(model: NCTModel, data, first, second, k: int = 2) -> float:
    with torch.no_grad():
        x = model.latent_positions(data.q[first].double())[:, :k].numpy()
        y = model.latent_positions(data.q[second].double())[:, :k].numpy()
    return _deeptime_vamp2(x, y)


def test_kinetic_training_makes_the_slowest_coordinates_slower(two_trajectories):
    data = two_trajectories
    settings = dict(n_couplings=2, hidden=32, epochs=4, seed=0, restarts=1, progress=False,
                    dtype=torch.float64)
    plain = NCT(**settings, kinetic_weight=0.0).fit(data).fetch_model()
    kinetic = NCT(**settings, kinetic_weight=20.0, lag_ps=10.0).fit(data).fetch_model()
    record = kinetic.info.training.kinetic
    assert record.weight == 20.0 and record.n_slow == 2
    assert record.lag_frames == 5  # 10 ps at 2 ps per frame (stride 2 of 1 ps frames)
    assert plain.info.training.kinetic is None
    _, val = validation_split(data, 0.2)
    first, second = lagged_pairs_within(data, 5, val)
    assert record.validation_vamp2 == pytest.approx(
        _latent_vamp2(kinetic, data, first, second), abs=1e-6)
    gain = record.validation_vamp2 - _latent_vamp2(plain, data, first, second)
    print(f"validation VAMP-2 gain {gain:.3f}")
    assert gain > 0.05, gain


def test_by_default_the_kinetic_objective_is_used_where_the_data_allow_it(two_trajectories):
    data = two_trajectories
    settings = dict(n_couplings=1, hidden=16, epochs=1, restarts=1, progress=False)
    training = NCT(**{**settings, "restarts": 2}).fit(data).fetch_model().info.training
    restarts = training.restarts
    assert restarts.kinetic_weights == [0.0, KINETIC_WEIGHT]  # likelihood, then kinetic
    assert len(restarts.validation_vamp2_discrete) == 2
    assert all(1.0 <= v <= 3.0 for v in restarts.validation_vamp2_discrete)
    assert training.kinetic.lag_frames == 5
    chosen = restarts.kinetic_weights.index(training.kinetic.weight)
    scores = restarts.validation_vamp2_discrete
    assert chosen == (1 if scores[0] < scores[1] - KINETIC_MARGIN else 0)
    # frames that are not one time series (no times) train on the likelihood alone...
    no_times = dataclasses.replace(data, times=np.full(len(data), np.nan))
    with pytest.warns(UserWarning, match="likelihood alone .* no frame times"):
        assert NCT(**settings).fit(no_times).fetch_model().info.training.kinetic is None
    # ... and so does a separate validation set; an explicit weight refuses both
    with pytest.warns(UserWarning, match=r"likelihood alone .* \(no separate validation set\)"):
        assert NCT(**settings).fit(data, validation=data).fetch_model().info.training.kinetic \
            is None
    with pytest.raises(NCTInputError, match="no frame times"):
        NCT(**settings, kinetic_weight=1.0).fit(no_times)
    with pytest.raises(NCTInputError, match="no separate validation set"):
        NCT(**settings, kinetic_weight=1.0).fit(data, validation=data)


def test_biased_kinetics_takes_the_unweighted_pairs_of_weighted_trajectories(two_trajectories):
    data = two_trajectories
    weighted = dataclasses.replace(data, weights=np.linspace(0.1, 3.0, len(data)))
    train, val = validation_split(data, 0.2)
    plain = kinetic_pairs(data, train, val, 1.0, 10.0, required=True)
    biased = kinetic_pairs(weighted, train, val, 1.0, 10.0, required=True,
                           biased_kinetics=True)
    for a, b in zip(plain[1:], biased[1:], strict=True):  # lag and every pair: the same
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    with pytest.raises(NCTInputError, match="kinetic_weight needs unbiased trajectories"):
        kinetic_pairs(weighted, train, val, 1.0, 10.0, required=True)
    settings = dict(n_couplings=1, hidden=16, epochs=1, restarts=1, progress=False)
    record = NCT(**settings, kinetic_weight=1.0, biased_kinetics=True).fit(
        weighted).fetch_model().info.training
    assert record.kinetic.weight == 1.0 and record.weights is not None


def test_kinetic_settings_and_data_are_checked(two_trajectories, write_h5, tmp_path):
    with pytest.raises(NCTInputError, match="kinetic_weight must be a non-negative"):
        NCT(kinetic_weight=-1.0)
    with pytest.raises(NCTInputError, match="lag_ps 3 is not a positive multiple"):
        NCT(epochs=1, kinetic_weight=1.0, lag_ps=3.0, progress=False).fit(two_trajectories)
    with pytest.raises(NCTInputError, match="shorter than the lag"):
        NCT(epochs=1, kinetic_weight=1.0, lag_ps=100_000.0, progress=False).fit(
            two_trajectories)


def test_cli_trains_with_the_kinetic_objective_and_the_model_keeps_its_record(
        ala_data_files, tmp_path):
    out = tmp_path / "kinetic.pt"
    assert main(["train", str(ala_data_files[1]), str(ala_data_files[4]), "--stride", "4",
                 "--epochs", "1", "--couplings", "1", "--hidden", "16", "--kinetic-weight", "5",
                 "--lag-ps", "8", "--seed", "0", "--out", str(out)]) == 0
    record = NCTModel.load(out).info.training.kinetic
    assert (record.weight, record.lag_frames, record.n_slow) == (5.0, 2, 2)
    assert 0.0 < record.validation_vamp2 <= 2.0
    assert main(["train", str(ala_data_files[1]), "--lag-ps", "3", "--kinetic-weight", "1",
                 "--stride", "4", "--out", str(tmp_path / "bad.pt")]) == 2


def test_restarts_alternate_and_the_kept_fit_is_among_the_slowest():
    assert restart_weights(None, 3) == [0.0, KINETIC_WEIGHT, 0.0]
    assert restart_weights(5.0, 2) == [5.0, 5.0]

    def record(weight: float, vamp: float, discrete: float) -> KineticInfo:
        return KineticInfo(weight, 10, 2, vamp, discrete)

    # validation NLL of fits 0-3; 0 and 2 likelihood-only, 1 and 3 kinetic (objectives
    # -29 - 10 * 1.0 = -39 and -28 - 10 * 1.2 = -40)
    nll = [-30.0, -29.0, -30.5, -28.0]
    # the recorded case of the amber14 vacuum set, seed 1: the likelihood fit with the best NLL
    # (2) has slow CVs 0.1 below the others; the other likelihood fit (0) is kept
    fits = [record(0.0, 0.5, 2.00), record(10.0, 1.0, 2.00), record(0.0, 0.6, 1.90),
            record(10.0, 1.2, 1.99)]
    assert choose_restart(nll, fits, margin=0.02) == 0
    # the recorded case of seed 2: both likelihood fits within the margin, the one with the
    # better NLL (2) 0.005 less slow on validation (and on held-out data); the slower (0) is kept
    fits[2] = record(0.0, 0.6, 1.995)
    assert choose_restart(nll, fits, margin=0.02) == 0
    fits[2] = record(0.0, 0.6, 2.001)
    assert choose_restart(nll, fits, margin=0.02) == 2
    # tri-alanine: the kinetic fits are 0.2 slower; of them the slower on validation (1) is kept
    fits = [record(0.0, 0.5, 2.33), record(10.0, 1.0, 2.54), record(0.0, 0.6, 2.32),
            record(10.0, 1.2, 2.53)]
    assert choose_restart(nll, fits, margin=0.02) == 1
    assert choose_restart(nll, [None] * 4) == 2  # no scores: the lowest NLL
    assert choose_restart(nll[1::2], fits[1::2]) == 0  # kinetic alone, both within: the slower
