"""Training on biased data: per-frame weights, their file format, and metadynamics reweighting.

The acceptance test draws exact samples of a 2-D double well from a *biased* density
``p_b ∝ exp(-(U + V))`` (kT units), embeds them as the internal coordinates of a three-atom
molecule, and fits NCT with weights ``∝ exp(V)``: the model's free-energy difference between the
wells of the *unbiased* ``U`` must match quadrature within 0.05 kT.
"""

from __future__ import annotations

import json
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import scipy.integrate
import torch
from scipy.integrate import quad

from nct_md.cli import main
from nct_md.errors import NCTInputError
from nct_md.estimator import NCT
from nct_md.md.frame import EckartFrame, center
from nct_md.md.phase import from_trajectories, load_phase_space
from nct_md.md.reweight import bias_at, bias_offset, metad_log_weights
from nct_md.md.thermo import atom_masses, kt
from nct_md.model import NCTModel
from nct_md.train.files import read_weights

# U(x, y) = BARRIER (x^2 - 1)^2 + TILT x + STIFFNESS / 2 (y - BEND x^2)^2, bias V(x) (kT units).
# The y-integral of exp(-U) does not depend on x, so x carries the free-energy difference.
BARRIER, TILT, STIFFNESS, BEND = 2.0, 0.4, 4.0, 0.5
SCALE = 0.01  # sqrt(amu) nm per unit of (x, y, z): displacements of about 0.01 nm


def u_x(x: np.ndarray) -> np.ndarray:
    return BARRIER * (x * x - 1) ** 2 + TILT * x


def bias(x: np.ndarray) -> np.ndarray:
    """``V(x)``: lowers the barrier by 0.8 kT and tilts the wells the other way."""
    return -0.6 * x - 0.8 * (x * x - 1) ** 2


def exact_delta_f() -> float:
    """``F(x > 0) - F(x < 0)`` of the unbiased ``U`` (kT), by quadrature."""
    def integral(a, b):
        return scipy.integrate.quad(lambda x: np.exp(-u_x(x)), a, b, epsabs=1e-13)[0]
    return float(-np.log(integral(0, 4) / integral(-4, 0)))


def biased_samples(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Exact draws of ``p_b``: x by rejection from a uniform proposal, y | x Gaussian."""
    grid = np.linspace(-3, 3, 10_001)
    top = np.exp(-(u_x(grid) + bias(grid))).max() * 1.01
    xs, count = [], 0
    while count < n:
        x = rng.uniform(-3, 3, 4 * n)
        x = x[rng.uniform(0, top, len(x)) < np.exp(-(u_x(x) + bias(x)))]
        xs.append(x)
        count += len(x)
    x = np.concatenate(xs)[:n]
    return x, BEND * x * x + rng.normal(size=n) / np.sqrt(STIFFNESS)


@pytest.fixture(scope="module")
def molecule():
    """A bent three-atom molecule (3 internal coordinates): topology, reference, frame."""
    top = md.Topology()
    residue = top.add_residue("MOL", top.add_chain())
    for name in ("C", "N", "O"):
        top.add_atom(name + "1", md.element.get_by_symbol(name), residue)
    masses = atom_masses(top)
    ref = center(np.array([[0.0, 0.0, 0.0], [0.15, 0.0, 0.0], [0.2, 0.13, 0.0]]), masses)[0]
    return top, ref, EckartFrame(ref, masses)


def embed(molecule, coords: np.ndarray) -> md.Trajectory:
    """Frames whose mass-weighted internal coordinates are ``SCALE * coords`` ``(n, 3)``."""
    top, ref, frame = molecule
    sqrt_m = np.sqrt(np.repeat(frame.masses, 3))
    xyz = ref.ravel() + (SCALE * coords) @ frame.internal.T / sqrt_m
    return md.Trajectory(xyz.reshape(-1, 3, 3).astype(np.float32), top)


def model_delta_f(model: NCTModel, molecule, n: int = 400_000) -> float:
    """``F(x > 0) - F(x < 0)`` of the model's configuration density, from ``n`` samples."""
    _, ref, frame = molecule
    sqrt_m = np.sqrt(np.repeat(frame.masses, 3))
    with torch.no_grad():
        x_q, _ = model.sample_configurations(n, torch.Generator().manual_seed(1))
        q = model.preprocessing.cartesian(x_q).double().numpy()
    x = ((q - ref.ravel()) * sqrt_m) @ frame.internal[:, 0] / SCALE
    return float(-np.log(np.mean(x > 0) / np.mean(x < 0)))


def test_weighted_fit_of_biased_samples_gives_the_unbiased_free_energy(molecule):
    rng = np.random.default_rng(0)
    x, y = biased_samples(40_000, rng)
    traj = embed(molecule, np.stack([x, y, rng.normal(size=len(x))], axis=1))
    _, ref, _ = molecule
    settings = dict(objective="configuration", n_couplings=4, hidden=32, depth=2, epochs=10,
                    batch_size=500, lr=3e-3, restarts=1, progress=False)
    weighted = from_trajectories(traj, temperature=300.0, reference=ref, weights=np.exp(bias(x)))
    assert weighted.weights.mean() == pytest.approx(1.0)
    with pytest.warns(UserWarning, match="carry weights"):  # default: no kinetic objective
        model = NCT(**settings).fit(weighted).fetch_model()
    plain = from_trajectories(traj, temperature=300.0, reference=ref)
    unweighted = NCT(**settings, kinetic_weight=0).fit(plain).fetch_model()
    exact = exact_delta_f()
    # measured: weighted -0.008 kT off (data seeds 1-3: +0.016, +0.014, +0.001; the weighted
    # histogram of the samples themselves is off by up to 0.011), unweighted -1.006 kT
    assert abs(model_delta_f(model, molecule) - exact) <= 0.05
    assert abs(model_delta_f(unweighted, molecule) - exact) > 0.8
    record = model.info.training
    assert record.kinetic is None and unweighted.info.training.weights is None
    assert 0.5 * record.n_train_frames < record.weights.effective_train_frames < \
        record.n_train_frames


def test_weights_are_checked_and_refuse_the_kinetic_objective(molecule):
    traj = embed(molecule, np.random.default_rng(0).normal(size=(200, 3)))
    _, ref, _ = molecule
    for weights, message in ((np.ones(199), "199 values for 200 frames"),
                             (np.r_[-1.0, np.ones(199)], "negative values"),
                             (np.r_[np.nan, np.ones(199)], "NaN"), (np.zeros(200), "all zero")):
        with pytest.raises(NCTInputError, match=message):
            from_trajectories(traj, reference=ref, weights=weights)
    data = from_trajectories(traj, reference=ref, weights=np.arange(200.0))
    assert data.weights.mean() == pytest.approx(1.0)
    assert data.trajectory(0).weights == pytest.approx(data.weights)
    with pytest.raises(NCTInputError, match="kinetic_weight needs unbiased trajectories"):
        NCT(objective="configuration", kinetic_weight=1.0, epochs=1, progress=False,
            restarts=1).fit(data)


def test_weights_file_formats(tmp_path):
    (tmp_path / "w.txt").write_text("# per-frame weights\n1\n2.5\n# a comment\n0\n")
    np.testing.assert_array_equal(read_weights(tmp_path / "w.txt"), [1.0, 2.5, 0.0])
    (tmp_path / "log.dat").write_text("# log-weights (ln w)\n0\n-inf\n1.5\n")
    np.testing.assert_allclose(read_weights(tmp_path / "log.dat"), [np.exp(-1.5), 0, 1.0])
    np.save(tmp_path / "w.npy", np.array([0.5, 2.0]))
    np.testing.assert_array_equal(read_weights(tmp_path / "w.npy"), [0.5, 2.0])
    (tmp_path / "two.txt").write_text("1 2\n3 4\n")
    with pytest.raises(NCTInputError, match="shape"):
        read_weights(tmp_path / "two.txt")
    (tmp_path / "word.txt").write_text("1\nabc\n")
    with pytest.raises(NCTInputError, match="not a column of numbers"):
        read_weights(tmp_path / "word.txt")


# --- nct-md train --weights -------------------------------------------------------------------

FAST = ["--stride", "20", "--epochs", "1", "--couplings", "1", "--hidden", "8",
        "--batch-size", "64", "--restarts", "1"]  # 200 frames


def test_train_with_log_weights_records_them(ala_data_files, tmp_path, capsys):
    weights = tmp_path / "w.txt"
    np.savetxt(weights, np.linspace(-2, 0, 200), header="log-weights")
    out = tmp_path / "m.pt"
    assert main(["train", str(ala_data_files[1]), *FAST, "--weights", str(weights),
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no kinetic objective" in err and "carry weights" in err
    record = NCTModel.load(out).info.training
    assert record.kinetic is None and 0 < record.weights.effective_train_frames < 160


@pytest.mark.parametrize("content, needle", [
    ("1\n" * 199, "--weights has 199 values for 200 frames"),
    ("-1\n" + "1\n" * 199, "--weights has negative values"),
    ("nan\n" + "1\n" * 199, "--weights has NaN or infinite values"),
    ("0\n" * 200, "--weights are all zero"),
    ("# log-weights\n" + "-inf\n" * 200, "--weights are all zero"),
])
def test_train_refuses_bad_weights_with_one_line(ala_data_files, tmp_path, capsys, content,
                                                 needle):
    weights = tmp_path / "w.txt"
    weights.write_text(content)
    before = sorted(tmp_path.iterdir())
    assert main(["train", str(ala_data_files[1]), *FAST, "--weights", str(weights),
                 "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert sorted(tmp_path.iterdir()) == before


def test_train_refuses_weights_with_a_kinetic_weight(ala_data_files, tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.ones(200))
    assert main(["train", str(ala_data_files[1]), *FAST, "--weights", str(tmp_path / "w.npy"),
                 "--kinetic-weight", "1", "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--kinetic-weight needs unbiased trajectories" in err[0], err
    assert not (tmp_path / "m.pt").exists()


def test_load_phase_space_takes_weights(ala_data_files):
    data = load_phase_space(ala_data_files[1], select="heavy", stride=20,
                            weights=np.full(200, 3.0))
    np.testing.assert_array_equal(data.weights, np.ones(200))
    assert data.info.momenta == "maxwell-boltzmann"  # biased frames: drawn momenta


# --- metadynamics reweighting -------------------------------------------------------------------


def write_metad(folder: Path, final_bias: np.ndarray, cvs: np.ndarray, lows, highs,
                gamma: float = 6.0, temperature: float = 300.0,
                rbias: np.ndarray | None = None) -> Path:
    """A minimal ``nct-md metad`` folder: metad.json, colvar.csv and free_energy.npy."""
    folder.mkdir()
    (folder / "metad.json").write_text(json.dumps({
        "temperature": temperature, "bias_factor": gamma, "grid_min_ps": list(lows),
        "grid_max_ps": list(highs)}))
    np.save(folder / "free_energy.npy", -gamma / (gamma - 1) * final_bias)
    times = np.arange(1, len(cvs) + 1, dtype=float)
    names = ["time_ps", *[f"cv{j + 1}" for j in range(cvs.shape[1])], "bias_kjmol",
             "rbias_kjmol"]
    rbias = np.zeros(len(cvs)) if rbias is None else rbias
    np.savetxt(folder / "colvar.csv", np.column_stack([times, cvs, np.zeros(len(cvs)), rbias]),
               delimiter=",", header=",".join(names), comments="")
    return folder


def test_final_bias_weights_by_hand(tmp_path):
    """1-D bias 0, 1, 2, 1, 0 kJ/mol on [-1, 1]: frames on grid points and outside it."""
    folder = write_metad(tmp_path / "m", np.array([0.0, 1.0, 2.0, 1.0, 0.0]),
                         np.array([[-1.0], [0.0], [0.5], [3.0]]), [-1.0], [1.0])
    expected = np.array([0.0, 2.0, 1.0, 0.0]) / kt(300.0)
    np.testing.assert_allclose(metad_log_weights(folder), expected - expected.max(), atol=1e-12)
    skipped = metad_log_weights(folder, skip_ps=2.5)
    assert np.isneginf(skipped[:2]).all() and np.isfinite(skipped[2:]).all()
    rbias = np.array([0.5, -1.0, 2.0, 0.0])
    folder = write_metad(tmp_path / "r", np.zeros(5), np.zeros((4, 1)), [-1.0], [1.0],
                         rbias=rbias)
    np.testing.assert_allclose(metad_log_weights(folder, method="rbias"),
                               (rbias - 2.0) / kt(300.0), atol=1e-12)
    with pytest.raises(NCTInputError, match="method must be one of"):
        metad_log_weights(folder, method="c(t)")


def test_bias_offset_against_quadrature_flat_and_separable_biases():
    """c(t): a flat bias is its own offset; a 1-D bias against scipy quadrature of the formula;
    a separable 2-D bias (one axis periodic, OpenMM's layout) is the sum of its parts."""
    temperature, gamma = 300.0, 6.0
    assert bias_offset(np.full(11, 7.0), temperature, gamma, [False]) == pytest.approx(7.0)

    def bump(s):
        return 12.0 * np.exp(-0.5 * ((s - 0.4) / 0.3) ** 2) + 4.0 * np.exp(-0.5 * (s / 0.8) ** 2)

    scale = (gamma - 1.0) * kt(temperature)
    exact = kt(temperature) * np.log(
        quad(lambda s: np.exp(gamma * bump(s) / scale), -3, 3)[0]
        / quad(lambda s: np.exp(bump(s) / scale), -3, 3)[0])
    axis = np.linspace(-3, 3, 601)
    # measured 3e-3 kJ/mol (0.001 kT, the grid's end points): far below any dF that matters
    assert bias_offset(bump(axis), temperature, gamma, [False]) == pytest.approx(exact, abs=5e-3)
    angle = np.linspace(-np.pi, np.pi, 73)  # periodic: the last point repeats the first
    wave = 5.0 * (1 + np.cos(angle - 1.0))
    grid = bump(axis)[None, :] + wave[:, None]  # axis 0 is CV 2 (the angle), axis 1 is CV 1
    assert bias_offset(grid, temperature, gamma, [False, True]) == pytest.approx(
        bias_offset(bump(axis), temperature, gamma, [False])
        + bias_offset(wave[:-1], temperature, gamma, [False]), abs=1e-9)


def test_final_bias_weights_match_a_sum_of_gaussians_in_two_dimensions(tmp_path):
    """OpenMM's layout (axis 0 is the last CV) against the Gaussians evaluated directly."""
    lows, highs, widths = [-3.0, -2.0], [3.0, 2.0], (0.4, 0.3)
    centres, heights = [(-1.0, 0.5), (0.5, -0.2), (1.2, 1.0)], (5.0, 3.0, 4.0)

    def gaussians(s1, s2):
        return sum(h * np.exp(-0.5 * (((s1 - c1) / widths[0]) ** 2 + ((s2 - c2) / widths[1]) ** 2))
                   for (c1, c2), h in zip(centres, heights, strict=True))

    axis1, axis2 = np.linspace(lows[0], highs[0], 76), np.linspace(lows[1], highs[1], 67)
    grid = gaussians(axis1[None, :], axis2[:, None])  # shape (67, 76): reversed CV order
    cvs = np.random.default_rng(0).uniform([-2.5, -1.5], [2.5, 1.5], size=(500, 2))
    direct = gaussians(cvs[:, 0], cvs[:, 1])
    # measured: 8e-5 kJ/mol at OpenMM's grid spacing (a fifth of the width); axes swapped: 4.4
    np.testing.assert_allclose(bias_at(cvs, grid, lows, highs), direct, atol=1e-3)
    folder = write_metad(tmp_path / "m", grid, cvs, lows, highs)
    expected = direct / kt(300.0)
    np.testing.assert_allclose(metad_log_weights(folder), expected - expected.max(), atol=1e-3)
