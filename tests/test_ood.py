"""Out-of-distribution score (:mod:`nct_md.cv.ood`): threshold, flags, CLI columns, old files.

A tiny model is fitted to two Phi < 0 trajectories (C5 and C7eq); frames of the Phi > 0 (C7ax)
state, noisy frames and frames with a stretched bond must be flagged far more often than the
0.1 % of training frames the threshold lets through.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from nct_md.cli import main
from nct_md.cv.ood import (
    SCORE,
    frame_scores,
    position_scores,
    threshold_from,
    weighted_percentile,
)
from nct_md.errors import NCTInputError
from nct_md.estimator import NCT
from nct_md.md.phase import load_phase_space
from nct_md.model import ModelInfo, NCTModel
from nct_md.train.split import validation_split

HERE = Path(__file__).resolve().parent
ALA = HERE.parent / "data" / "alanine-dipeptide-300K"
TRAIN = [ALA / "phi-neg-c5.h5", ALA / "phi-neg-c7eq-1.h5"]
OLD_FILES = [HERE / "data" / "model_v0_1.pt", HERE.parent / "data" / "alanine-dipeptide-heavy.pt"]


@pytest.fixture(scope="module")
def fitted():
    """``(model, data)``: a quick heavy-atom fit to the C5 and C7eq trajectories (stride 4)."""
    data = load_phase_space(TRAIN, select="heavy", stride=4)
    model = NCT(n_couplings=2, hidden=16, epochs=2, restarts=1, kinetic_weight=0,
                progress=False).fit(data).fetch_model()
    return model, data


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ood") / "model.pt"
    fitted[0].save(path)
    return path


def _heavy(traj: md.Trajectory, model: NCTModel) -> np.ndarray:
    return traj.xyz[:, model.select_atoms(traj.topology)]


def test_the_fit_records_the_threshold_on_training_and_validation_frames(fitted, model_file):
    model, data = fitted
    info = model.info.ood
    assert info.score == SCORE and info.train_percentile == 99.9
    train, val = validation_split(data, 0.2)
    scores = position_scores(model, data.q[train])
    assert info.threshold == pytest.approx(np.percentile(scores, 99.9, method="inverted_cdf"))
    above = float(np.mean(scores > info.threshold))
    assert 0 < above <= 0.001  # by construction: 1 of 1600 frames
    expected = float(np.mean(position_scores(model, data.q[val]) > info.threshold))
    assert info.validation_fraction_above == pytest.approx(expected)
    assert info.validation_fraction_above < 0.01
    again = NCTModel.load(model_file).info.ood  # saved with the model
    assert again == info


def test_the_score_is_the_latent_energy_minus_the_flow_log_volume(fitted):
    """-ln p(q) = sum w^2 Q^2 / 2 - ln|det dQ/dx_q| + sum(ln sqrt(2 pi) - ln w), from the CVs,
    the frequencies and an autograd Jacobian."""
    double = copy.deepcopy(fitted[0]).double()
    traj = md.load(str(ALA / "phi-pos-c7ax-1.h5"), stride=500)
    xyz = _heavy(traj, double)
    q = double.preprocessing.superpose(xyz)
    Q = double.latent_positions(q)  # slowest first, as the frequencies
    w = torch.as_tensor(double.frequencies)
    energy = 0.5 * ((w * Q) ** 2).sum(1)
    x_q = double.preprocessing.to_model(q)
    log_det = torch.stack([torch.linalg.slogdet(torch.autograd.functional.jacobian(
        lambda x: double.flow.transform_positions(x[None])[0], x))[1] for x in x_q])
    constant = float((0.5 * math.log(2 * math.pi) - w.log()).sum())
    expected = (energy - log_det + constant).detach().numpy()
    np.testing.assert_allclose(frame_scores(double, xyz), expected, rtol=1e-9, atol=1e-8)


def test_other_states_and_damaged_frames_are_flagged(fitted):
    model = fitted[0]
    held_out = md.load(str(ALA / "phi-neg-c7eq-2.h5"), stride=4)  # same states, other run
    other = md.load(str(ALA / "phi-pos-c7ax-1.h5"), stride=4)  # Phi > 0: never seen
    cvs, ood = model.transform(other, 3, return_ood=True)
    np.testing.assert_array_equal(cvs, model.transform(other, 3))
    assert ood.score.shape == ood.flag.shape == (other.n_frames,)
    np.testing.assert_array_equal(ood.flag, ood.score > model.info.ood.threshold)
    in_rate = model.transform(held_out, return_ood=True)[1].flag.mean()
    assert in_rate < 0.01 and ood.flag.mean() > 0.3  # measured 0.0 and 0.55
    rng = np.random.default_rng(0)
    noisy = held_out.xyz + rng.normal(scale=0.05, size=held_out.xyz.shape).astype(np.float32)
    assert model.transform(md.Trajectory(noisy, held_out.topology),
                           return_ood=True)[1].flag.mean() > 0.99
    stretched = held_out.xyz.copy()  # CA-CB bond 0.08 nm longer, half again its length
    ca, cb = (held_out.topology.select(f"resSeq 2 and name {n}")[0] for n in ("CA", "CB"))
    bond = stretched[:, cb] - stretched[:, ca]
    stretched[:, cb] += 0.08 * bond / np.linalg.norm(bond, axis=1, keepdims=True)
    assert model.transform(md.Trajectory(stretched, held_out.topology),
                           return_ood=True)[1].flag.mean() > 0.99


@pytest.mark.parametrize("suffix", [".csv", ".npz", ".dat"])
def test_cvs_ood_columns(model_file, tmp_path, capsys, suffix):
    model = NCTModel.load(model_file)
    files = [ALA / "phi-neg-c7eq-2.h5", ALA / "phi-pos-c7ax-1.h5"]
    out = tmp_path / f"cvs{suffix}"
    assert main(["cvs", str(model_file), *map(str, files), "--ood", "--chunk", "700",
                 "--out", str(out)]) == 0
    expected = np.concatenate([model.transform(md.load(str(f)), 2, return_ood=True)[1].score
                               for f in files])
    if suffix == ".csv":
        header = out.read_text().splitlines()[0]
        assert header == "traj,time_ps,cv1,cv2,ood_score,ood"
        table = np.loadtxt(out, delimiter=",", skiprows=1)
        score, flag = table[:, 4], table[:, 5]
    elif suffix == ".npz":
        with np.load(out) as arrays:
            assert arrays["cvs"].shape == (len(expected), 2)
            score, flag = arrays["ood_score"], arrays["ood"]
    else:
        tables = [np.loadtxt(out.with_name(f"cvs.traj{k}.dat")) for k in range(2)]
        fields = out.with_name("cvs.traj0.dat").read_text().splitlines()[0]
        assert fields == "#! FIELDS time cv1 cv2 ood_score ood"
        score, flag = np.concatenate(tables)[:, 3], np.concatenate(tables)[:, 4]
    np.testing.assert_allclose(score, expected, rtol=1e-6)
    assert set(np.unique(flag)) <= {0, 1}
    np.testing.assert_array_equal(flag == 1, score > model.info.ood.threshold)
    printed = capsys.readouterr().out
    assert f"{int(flag.sum())} of {len(flag)} frames out of distribution" in printed


def test_npy_output_refuses_ood(model_file, tmp_path, capsys):
    out = tmp_path / "cvs.npy"
    assert main(["cvs", str(model_file), str(TRAIN[0]), "--ood", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".csv or .npz" in err and not out.exists()


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda p: p.name)
def test_old_model_files_load_without_a_threshold(path, tmp_path, capsys):
    model = NCTModel.load(path)
    assert model.info.ood is None and "ood" not in model.info.to_json()
    traj = md.load(str(ALA / "phi-neg-c5.h5"), stride=100)
    with pytest.raises(NCTInputError, match="no out-of-distribution threshold.*retrain.*"
                                            "threshold_from"):
        model.transform(traj, return_ood=True)
    out = tmp_path / "cvs.csv"
    assert main(["cvs", str(path), str(ALA / "phi-neg-c5.h5"), "--ood", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "threshold_from" in err and not out.exists()


def test_threshold_from_training_trajectories(tmp_path):
    model = NCTModel.load(OLD_FILES[0])  # trained on phi-neg-c5.h5 at stride 20
    traj = md.load(str(ALA / "phi-neg-c5.h5"), stride=20)
    model.info.ood = threshold_from(model, traj)
    assert model.info.ood.validation_fraction_above is None
    scores = frame_scores(model, _heavy(traj, model))
    assert model.info.ood.threshold == pytest.approx(np.percentile(scores, 99.9,
                                                                   method="inverted_cdf"))
    model.save(tmp_path / "with_ood.pt")
    again = NCTModel.load(tmp_path / "with_ood.pt")
    assert again.info.ood == model.info.ood
    assert again.transform(traj, return_ood=True)[1].flag.mean() <= 0.001
    weights = np.where(scores > np.median(scores), 0.0, 1.0)  # weight only the lower half
    low = threshold_from(model, [traj[:100], traj[100:]], weights=weights)
    assert low.threshold <= np.median(scores)
    with pytest.raises(NCTInputError, match="weights"):
        threshold_from(model, traj, weights=np.ones(3))


def test_weighted_percentile_is_numpys_inverted_cdf():
    rng = np.random.default_rng(1)
    values, weights = rng.normal(size=500), rng.exponential(size=500)
    for percentile in (50.0, 99.0, 99.9):
        assert weighted_percentile(values, percentile, weights) == np.percentile(
            values, percentile, weights=weights, method="inverted_cdf")
        assert weighted_percentile(values, percentile) == np.percentile(
            values, percentile, method="inverted_cdf")


def test_model_info_json_round_trip_with_ood(fitted):
    info = fitted[0].info
    spec = info.to_json()
    assert set(spec["ood"]) == {"score", "threshold", "train_percentile",
                                "validation_fraction_above"}
    assert ModelInfo.from_json(spec) == info
