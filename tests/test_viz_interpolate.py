"""Latent interpolation and traversal (nct_md.viz.latent_paths)."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from nct_md.cv.reference import phi_psi
from nct_md.errors import NCTInputError
from nct_md.estimator import NCT
from nct_md.md.phase import load_phase_space
from nct_md.model import NCTModel
from nct_md.viz import decode_path, interpolate, latent_coordinates, traverse

DATA = Path(__file__).resolve().parent.parent / "data"
FILES = sorted((DATA / "alanine-dipeptide-300K").glob("*.h5"))
#: RMSD (nm) below which two frames count as the same: float32 round trips through the model and
#: the rigid-body projection leave ~1e-4 nm, thermal differences are ~1e-2 nm.
SAME_NM = 5e-4


@pytest.fixture(scope="module")
def model():
    """A quickly trained heavy-atom alanine-dipeptide model (mechanics only, not quality)."""
    data = load_phase_space(FILES, select="heavy", stride=4)
    return NCT(n_couplings=2, hidden=16, epochs=3, progress=False, seed=0).fit(data).fetch_model()


@pytest.fixture(scope="module")
def frames() -> md.Trajectory:
    """Every 20th frame of all shipped trajectories, all 22 atoms."""
    return md.join([md.load(str(f), stride=20) for f in FILES])


def _widths(model) -> torch.Tensor:
    return torch.as_tensor(1.0 / model.frequencies)


def _latent_path(model, path: md.Trajectory) -> torch.Tensor:
    return torch.stack([latent_coordinates(model, path[i]) for i in range(path.n_frames)]).double()


def _rmsd_nm(a: md.Trajectory, b: md.Trajectory) -> float:
    return float(md.rmsd(a, b)[0])


def test_slow_modes_move_in_a_straight_line_others_stay(model, frames):
    a, b = frames[3], frames[-7]
    k, n = 2, 7
    path = interpolate(model, a, b, n_frames=n, modes=k)
    Q = _latent_path(model, path) / _widths(model)  # in thermal widths
    Q_a = latent_coordinates(model, a).double() / _widths(model)
    Q_b = latent_coordinates(model, b).double() / _widths(model)
    s = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
    np.testing.assert_allclose(Q[:, :k], Q_a[:k] + s * (Q_b[:k] - Q_a[:k]), atol=2e-3)
    np.testing.assert_allclose(Q[:, k:], Q_a[k:].expand(n, -1), atol=2e-3)
    assert (Q_b[:k] - Q_a[:k]).abs().max() > 0.1  # the ends do differ


def test_path_frames_topology_and_frame(model, frames):
    path = interpolate(model, frames[0], frames[-1], n_frames=5, modes=3)
    assert path.n_frames == 5
    assert [f"{x.residue}-{x.name}" for x in path.topology.atoms] == model.atom_names
    assert path.topology.n_bonds == model.topology.n_bonds
    masses = model.preprocessing.masses.numpy()
    com = np.einsum("fni,n->fi", path.xyz, masses / masses.sum())
    np.testing.assert_allclose(com, 0, atol=1e-5)
    # already superposed (mass-weighted) on the reference: superposing again moves nothing
    aligned, rotations = model.preprocessing.frame.superpose(path.xyz)
    np.testing.assert_allclose(rotations, np.broadcast_to(np.eye(3), rotations.shape), atol=1e-4)
    np.testing.assert_allclose(aligned, path.xyz, atol=1e-5)


def test_ends_reproduce_frames(model, frames):
    atoms = model.select_atoms(frames.topology)
    a, b = frames[10].atom_slice(atoms), frames[-20].atom_slice(atoms)
    d = model.preprocessing.n_dof
    path = interpolate(model, frames[10], frames[-20], n_frames=4, modes=2)
    assert _rmsd_nm(path[0], a) < SAME_NM  # others = "a": the first frame is frame a
    assert _rmsd_nm(path[-1], b) > 10 * SAME_NM  # fast modes still frame a's
    full = interpolate(model, frames[10], frames[-20], n_frames=4, modes=d)
    assert _rmsd_nm(full[0], a) < SAME_NM and _rmsd_nm(full[-1], b) < SAME_NM


def test_others_mean_puts_other_modes_at_zero(model, frames):
    k = 2
    path = interpolate(model, frames[1], frames[-2], n_frames=4, modes=k, others="mean")
    Q = _latent_path(model, path) / _widths(model)
    np.testing.assert_allclose(Q[:, k:], 0, atol=2e-3)
    Q_a = latent_coordinates(model, frames[1]).double() / _widths(model)
    np.testing.assert_allclose(Q[0, :k], Q_a[:k], atol=2e-3)


def test_frame_inputs_are_equivalent(model, frames):
    full = frames[5]
    subset = full.atom_slice(model.select_atoms(full.topology))
    expected = latent_coordinates(model, full)
    for frame in (subset, subset.xyz[0], subset.xyz):
        torch.testing.assert_close(latent_coordinates(model, frame), expected)


def test_traverse_steps_in_thermal_widths(model, frames):
    mode, span, n = 1, 1.5, 5
    path = traverse(model, frames[7], mode=mode, span=span, n_frames=n)
    Q = _latent_path(model, path) / _widths(model)
    Q0 = latent_coordinates(model, frames[7]).double() / _widths(model)
    np.testing.assert_allclose(Q[:, mode] - Q0[mode], np.linspace(-span, span, n), atol=2e-3)
    others = [i for i in range(Q.shape[1]) if i != mode]
    np.testing.assert_allclose(Q[:, others], Q0[others].expand(n, -1), atol=2e-3)
    atoms = model.select_atoms(frames.topology)
    assert _rmsd_nm(path[n // 2], frames[7].atom_slice(atoms)) < SAME_NM


def test_decode_path_shape(model):
    Q = torch.zeros(3, model.preprocessing.n_dof, dtype=model.latent.log_frequencies.dtype)
    path = decode_path(model, Q)
    assert path.n_frames == 3 and path.n_atoms == len(model.atom_names)
    np.testing.assert_allclose(path.xyz[0], path.xyz[2], atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"modes": 0}, "modes"), ({"modes": 25}, "modes"), ({"modes": 1.5}, "modes"),
    ({"n_frames": 1}, "n_frames"), ({"others": "b"}, "others"),
])
def test_interpolate_rejects_bad_options(model, frames, kwargs, match):
    with pytest.raises(NCTInputError, match=match):
        interpolate(model, frames[0], frames[1], **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": -1}, "mode"), ({"mode": 24}, "mode"), ({"span": 0.0}, "span"),
    ({"span": float("nan")}, "span"), ({"n_frames": 0}, "n_frames"),
])
def test_traverse_rejects_bad_options(model, frames, kwargs, match):
    with pytest.raises(NCTInputError, match=match):
        traverse(model, frames[0], **kwargs)


def test_bad_frames_are_rejected(model, frames):
    with pytest.raises(NCTInputError, match="one frame"):
        interpolate(model, frames[:2], frames[3])
    with pytest.raises(NCTInputError, match="shape"):
        interpolate(model, np.zeros((9, 3)), frames[3])
    with pytest.raises(NCTInputError, match="NaN"):
        interpolate(model, np.full((10, 3), np.nan), frames[3])
    water = md.Topology()
    residue = water.add_residue("HOH", water.add_chain())
    for name, symbol in (("O", "O"), ("H1", "H"), ("H2", "H")):
        water.add_atom(name, md.element.get_by_symbol(symbol), residue)
    with pytest.raises(NCTInputError, match="topology"):
        interpolate(model, md.Trajectory(np.zeros((1, 3, 3)), water), frames[3])


# -- acceptance: a well-trained model, C7eq -> alphaR with k = 2 ------------------------------

def _wrap(degrees: np.ndarray) -> np.ndarray:
    return (np.asarray(degrees) + 180.0) % 360.0 - 180.0


#: Basin centres (Phi, Psi) in degrees.
BASINS = {"C7eq": (-83.0, 75.0), "C5": (-150.0, 155.0), "alphaR": (-70.0, -40.0)}


def _representative(model, traj: md.Trajectory, phi: np.ndarray, psi: np.ndarray,
                    basin: str, modes: int) -> int:
    """Frame within 15 degrees of the basin centre whose fast latent modes are most relaxed.

    "Most relaxed": the smallest harmonic energy sum_{i >= modes} (w_i Q_i)^2 / 2 of the modes
    the path keeps fixed, i.e. the basin's most typical member as the model sees it.
    """
    centre_phi, centre_psi = BASINS[basin]
    inside = np.flatnonzero(np.hypot(_wrap(phi - centre_phi), _wrap(psi - centre_psi)) < 15.0)
    Q = model.transform(traj[inside], n_cvs=model.preprocessing.n_dof)
    fast = ((Q[:, modes:] * model.frequencies[modes:]) ** 2).sum(1)
    return int(inside[np.argmin(fast)])


@pytest.fixture(scope="module")
def trained_model():
    """The shipped heavy-atom model (made by `make demo`'s training command, data/README.md)."""
    return NCTModel.load(DATA / "alanine-dipeptide-heavy.pt")


@pytest.fixture(scope="module")
def all_frames() -> md.Trajectory:
    return md.join([md.load(str(f)) for f in FILES])


@pytest.mark.parametrize("start", ["C7eq"])
def test_acceptance_basin_to_alphar_with_two_modes(start, trained_model, all_frames):
    """k = 2: the ends within 10 degrees in Phi and Psi, bonds within 10 % along the path."""
    model, k = trained_model, 2
    phi, psi = np.degrees(phi_psi(all_frames))
    a = _representative(model, all_frames, phi, psi, start, k)
    b = _representative(model, all_frames, phi, psi, "alphaR", k)
    path = interpolate(model, all_frames[a], all_frames[b], n_frames=20, modes=k)
    path_phi, path_psi = np.degrees(phi_psi(path))
    errors = np.abs(_wrap([path_phi[0] - phi[a], path_psi[0] - psi[a],
                           path_phi[-1] - phi[b], path_psi[-1] - psi[b]]))
    bonds = np.array([[x.index, y.index] for x, y in model.topology.bonds])
    reference = model.to_trajectory(model.preprocessing.reference.reshape(1, -1))
    ratio = md.compute_distances(path, bonds) / md.compute_distances(reference, bonds)
    print(f"{start} frame {a} -> alphaR frame {b}: end errors (phi_a, psi_a, phi_b, psi_b) "
          f"{np.round(errors, 2)} deg; bond lengths {ratio.min():.3f}..{ratio.max():.3f} x ref")
    assert errors.max() <= 10.0
    assert np.abs(ratio - 1).max() <= 0.10
