"""nct_md.md.frame, .thermo, .data and .phase: superposition, rigid-body removal, momenta,
EckartFrame, PhaseSpaceData and its builders."""

from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nct_md.errors import NCTInputError
from nct_md.md import frame, io, phase
from nct_md.md.chunk import Chunk
from nct_md.md.thermo import atom_masses, kt


@pytest.fixture
def masses(ala) -> np.ndarray:
    return atom_masses(ala.topology)


def _kabsch_scipy(xyz, reference, masses):
    """Independent per-frame mass-weighted superposition (scipy), for comparison."""
    ref = reference - masses @ reference / masses.sum()
    out = []
    for one in xyz.astype(np.float64):
        centred = one - masses @ one / masses.sum()
        rot, _ = Rotation.align_vectors(ref, centred, weights=masses)
        out.append(rot.apply(centred))
    return np.array(out)


def _rigid_components(data):
    sqrt_m = np.sqrt(np.repeat(data.masses, 3))
    basis = frame.rigid_body_basis(data.reference, data.masses)
    return (data.q.double().numpy() * sqrt_m) @ basis, (data.p.double().numpy() / sqrt_m) @ basis


def test_superpose_matches_scipy(ala, masses, make_frames):
    xyz, _ = make_frames(ala, 40, 1, noise=0.03)
    aligned, rotations = frame.superpose(xyz, ala.xyz[0], masses)
    np.testing.assert_allclose(aligned, _kabsch_scipy(xyz, ala.xyz[0], masses), atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-10)
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1),
                               np.broadcast_to(np.eye(3), rotations.shape), atol=1e-10)
    single, rot0 = frame.superpose(xyz[0], ala.xyz[0], masses)
    np.testing.assert_allclose(single, aligned[0])
    np.testing.assert_allclose(rot0, rotations[0])


def test_superpose_undoes_rigid_motion(ala, masses, rotations):
    rng = np.random.default_rng(3)
    ref = frame.center(ala.xyz[0], masses)[0]
    rot = rotations(25, rng)
    moved = np.einsum("nj,fij->fni", ref, rot) + rng.normal(size=(25, 1, 3))
    aligned, found = frame.superpose(moved, ref, masses)
    np.testing.assert_allclose(aligned, np.broadcast_to(ref, aligned.shape), atol=1e-10)
    np.testing.assert_allclose(found, rot, atol=1e-10)  # x @ R undoes x @ rot.T


def test_eckart_condition_from_superposition_alone(ala, masses, make_frames):
    xyz, _ = make_frames(ala, 30, 2, noise=0.03)
    ref = frame.center(ala.xyz[0], masses)[0]
    aligned, _ = frame.superpose(xyz, ref, masses)
    displacement = (aligned - ref).reshape(30, -1) * np.sqrt(np.repeat(masses, 3))
    basis = frame.rigid_body_basis(ref, masses)
    assert np.abs(displacement @ basis).max() < 1e-9


def test_bases(ala, masses):
    rigid = frame.rigid_body_basis(ala.xyz[0], masses)
    internal = frame.internal_basis(ala.xyz[0], masses)
    assert rigid.shape == (66, 6) and internal.shape == (66, 60)
    full = np.concatenate([rigid, internal], axis=1)
    np.testing.assert_allclose(full.T @ full, np.eye(66), atol=1e-10)
    # translations and rotations of the reference lie in the rigid span
    sqrt_m = np.sqrt(np.repeat(masses, 3))
    shifted = (np.zeros((22, 3)) + [0.3, -0.2, 0.1]).ravel() * sqrt_m
    assert np.abs(internal.T @ shifted).max() < 1e-10
    ref = frame.center(ala.xyz[0], masses)[0]
    spin = np.cross([0.2, 0.5, -0.1], ref).ravel() * sqrt_m
    assert np.abs(internal.T @ spin).max() < 1e-10


def test_linear_molecule_has_five_rigid_directions():
    reference = np.array([[0.0, 0.0, -0.116], [0.0, 0.0, 0.0], [0.0, 0.0, 0.116]])
    masses = np.array([16.0, 12.0, 16.0])
    assert frame.rigid_body_basis(reference, masses).shape == (9, 5)
    assert frame.internal_basis(reference, masses).shape == (9, 4)
    bent = reference + [[0.0, 0.01, 0.0], [0, 0, 0], [0, 0, 0]]
    assert frame.rigid_body_basis(bent, masses).shape == (9, 6)


def test_round_trip_and_rigid_components(ala, make_frames):
    xyz, vel = make_frames(ala, 200, 4, noise=0.02)
    traj = md.Trajectory(xyz, ala.topology, time=np.arange(200.0))
    chunk = Chunk(traj, vel, np.arange(22), "all")
    data = phase.from_trajectories(chunk, temperature=300.0, reference=ala)
    assert data.q.dtype == torch.float32 and data.q.shape == (200, 66)
    back = data.to_trajectory()
    expected = _kabsch_scipy(xyz, ala.xyz[0], data.masses)
    assert np.abs(back.xyz - expected).max() < 1e-5
    q_rigid, p_rigid = _rigid_components(data)
    assert np.abs(q_rigid).max() < 1e-6 and np.abs(p_rigid).max() < 1e-6
    assert data.n_dof == 60 and data.info.rigid_body_dims == 6


def test_training_and_inference_share_one_eckart_frame(ala, make_frames):
    """PhaseSpaceData.q and the model's superposition of the same frames are the same numbers."""
    from nct_md.model import Preprocessing

    xyz, vel = make_frames(ala, 30, 10, noise=0.02)
    data = phase.from_trajectories(Chunk(md.Trajectory(xyz, ala.topology), vel,
                                         np.arange(22), "all"), temperature=300.0)
    eckart = frame.EckartFrame(data.reference, data.masses)
    q, rotations = eckart.positions(xyz)
    assert torch.equal(data.q, torch.from_numpy(q.astype(np.float32)))
    assert torch.equal(data.p, torch.from_numpy(eckart.momenta(vel, rotations)
                                                .astype(np.float32)))
    pre = Preprocessing(data.reference, data.masses, data.temperature)
    assert torch.equal(pre.superpose(xyz), torch.from_numpy(q))
    np.testing.assert_array_equal(pre.basis.numpy(), eckart.internal)
    assert eckart.n_dof == data.n_dof == 60
    weight, bias, inverse_weight, inverse_bias = pre.affine()
    x_q = pre.to_model(torch.from_numpy(q))
    torch.testing.assert_close(torch.from_numpy(q) @ weight + bias, x_q)
    torch.testing.assert_close(x_q @ inverse_weight + inverse_bias, pre.cartesian(x_q))


def test_momenta_are_mass_times_rotated_velocity(ala, masses, rotations):
    rng = np.random.default_rng(5)
    ref = frame.center(ala.xyz[0], masses)[0]
    internal = frame.internal_basis(ref, masses)
    sqrt_m = np.sqrt(np.repeat(masses, 3))
    n = 30
    # internal velocities in the reference frame, then the whole state rotated and moved
    v_ref = ((rng.normal(size=(n, 60)) @ internal.T) / sqrt_m).reshape(n, 22, 3)
    rot = rotations(n, rng)
    xyz = np.einsum("nj,fij->fni", ref, rot) + rng.normal(size=(n, 1, 3))
    v_lab = np.einsum("fnj,fij->fni", v_ref, rot) + rng.normal(size=(n, 1, 3))  # + COM drift
    traj = md.Trajectory(xyz.astype(np.float32), ala.topology)
    data = phase.from_trajectories(traj, temperature=300.0, reference=ref,
                                   velocities=[v_lab.astype(np.float32)])
    _, found = frame.superpose(xyz, ref, masses)
    expected = (v_lab.astype(np.float32) @ found).reshape(n, -1) * np.repeat(masses, 3)
    expected -= np.repeat(masses, 3) * np.tile(  # the COM drift is a rigid-body direction
        (expected.reshape(n, 22, 3).sum(1) / masses.sum()), 22)
    np.testing.assert_allclose(data.p.numpy(), expected, atol=1e-5, rtol=1e-6)
    assert data.has_velocities and data.info.momenta == "velocities"


def test_momenta_from_generic_velocities_differ_only_by_rigid_part(ala, masses, make_frames):
    xyz, vel = make_frames(ala, 20, 6)
    traj = md.Trajectory(xyz, ala.topology)
    data = phase.from_trajectories(traj, temperature=300.0, velocities=[vel])
    _, rot = frame.superpose(xyz, data.reference, masses)
    raw = (vel.astype(np.float64) @ rot).reshape(20, -1) * np.repeat(masses, 3)
    diff = (raw - data.p.double().numpy()) / np.sqrt(np.repeat(masses, 3))
    internal = frame.internal_basis(data.reference, masses)
    assert np.abs(diff @ internal).max() < 1e-4  # removed part is purely rigid-body


def test_maxwell_boltzmann_kinetic_energy(ala, make_frames):
    xyz, _ = make_frames(ala, 100_000, 7, noise=0.005)
    traj = md.Trajectory(xyz, ala.topology)
    data = phase.from_trajectories(traj, temperature=350.0, reference=ala,
                                   generator=torch.Generator().manual_seed(0))
    assert not data.has_velocities and data.info.momenta == "maxwell-boltzmann"
    mean_ke = data.kinetic_energy().double().mean().item()
    expected = 0.5 * data.n_dof * kt(350.0)
    assert abs(mean_ke / expected - 1) < 0.02
    _, p_rigid = _rigid_components(data)
    assert np.abs(p_rigid).max() < 1e-6
    old = data.p.clone()
    data.resample_momenta(torch.Generator().manual_seed(1))
    assert not torch.equal(old, data.p)
    assert abs(data.kinetic_energy().double().mean().item() / expected - 1) < 0.02


def test_resample_is_reproducible_and_keeps_velocities(ala, make_frames):
    xyz, vel = make_frames(ala, 10, 8)
    no_v = phase.from_trajectories(md.Trajectory(xyz, ala.topology), velocities=None)
    a = no_v.resample_momenta(torch.Generator().manual_seed(3)).clone()
    b = no_v.resample_momenta(torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with_v = phase.from_trajectories(md.Trajectory(xyz, ala.topology), velocities=[vel])
    p = with_v.p.clone()
    assert torch.equal(with_v.resample_momenta(), p)
    assert not torch.equal(with_v.resample_momenta(force=True), p)


def test_boundaries_split_and_lagged_pairs(tmp_path, write_h5):
    paths = [write_h5(tmp_path / "a.h5", 12, 1), write_h5(tmp_path / "b.h5", 5, 2)]
    data = phase.load_phase_space(paths, temperature=300.0)
    np.testing.assert_array_equal(data.boundaries, [0, 12, 17])
    assert data.n_traj == 2 and len(data) == 17 and data.has_velocities
    first, second = data.split()
    assert len(first) == 12 and len(second) == 5
    assert torch.equal(second.q, data.q[12:])
    i, j = data.lagged_pairs(3)
    assert len(i) == (12 - 3) + (5 - 3)
    assert np.all(np.searchsorted(data.boundaries, i, "right")
                  == np.searchsorted(data.boundaries, j, "right"))
    assert len(data.lagged_pairs(6)[0]) == 6  # the short trajectory has no pair at lag 6


def test_selection_metadata_and_indices(tmp_path, write_h5, ala):
    path = write_h5(tmp_path / "a.h5", 10, 3)
    data = phase.load_phase_space(path, select="heavy", temperature=300.0)
    heavy = io.resolve_selection(ala.topology, "heavy")
    np.testing.assert_array_equal(data.atom_indices, heavy)
    assert data.info.selection == "heavy" and data.n_atoms == 10
    assert data.q.shape == (10, 30) and data.to_trajectory().n_atoms == 10
    assert data.atom_names[0].endswith("CH3")
    assert data.info.units["p"] == "amu nm/ps"
    trajs = io.load(path, select="heavy")
    narrower = phase.from_trajectories(trajs, select="name CA or name CB or name C")
    assert narrower.info.selection == "(heavy) and (name CA or name CB or name C)"
    names = {ala.topology.atom(i).name for i in narrower.atom_indices}
    assert names == {"CA", "CB", "C"}


def test_streaming_matches_in_memory(tmp_path, write_h5, ala):
    paths = [write_h5(tmp_path / "a.h5", 23, 1), write_h5(tmp_path / "b.h5", 9, 2)]
    whole = phase.load_phase_space(paths, temperature=300.0, reference=ala)
    chunks = list(phase.iter_phase_space(paths, temperature=300.0, reference=ala, chunk=10))
    assert [k for k, _ in chunks] == [0, 0, 0, 1]
    torch.testing.assert_close(torch.cat([c.q for _, c in chunks]), whole.q)
    torch.testing.assert_close(torch.cat([c.p for _, c in chunks]), whole.p)
    np.testing.assert_allclose(np.concatenate([c.times for _, c in chunks]), whole.times)


def test_to_trajectory_accepts_new_positions(ala, make_frames):
    xyz, _ = make_frames(ala, 5, 9)
    data = phase.from_trajectories(md.Trajectory(xyz, ala.topology))
    middle = 0.5 * (data.q[0] + data.q[1])
    traj = data.to_trajectory(middle)
    assert traj.n_frames == 1 and traj.topology.n_atoms == 22
    with pytest.raises(NCTInputError, match="NaN"):
        data.to_trajectory(torch.full((2, 66), float("nan")))


@pytest.mark.parametrize("temperature", [0.0, -10.0, float("nan")])
def test_non_positive_temperature(ala, temperature):
    with pytest.raises(NCTInputError, match="temperature must be a positive"):
        phase.from_trajectories(ala, temperature=temperature)


def test_temperature_required_for_foreign_files(tmp_path, write_h5):
    with pytest.raises(NCTInputError, match="temperature is unknown"):
        phase.load_phase_space(write_h5(tmp_path / "a.h5"))


def test_selection_with_fewer_than_three_atoms(ala):
    with pytest.raises(NCTInputError, match="at least 3"):
        phase.from_trajectories(ala, select="name CA or name CB")


def test_reference_of_wrong_size(ala):
    with pytest.raises(NCTInputError, match="reference has 5 atoms"):
        phase.from_trajectories(ala, reference=np.zeros((5, 3)))
