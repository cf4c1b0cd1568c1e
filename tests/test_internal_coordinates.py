"""Internal coordinates and configuration densities, against mdtraj and autograd Jacobians."""

from __future__ import annotations

import math

import mdtraj as md
import numpy as np
import pytest
import torch
from conftest import DATA, perturb

from nct_md.flows import (
    AffineCoupling,
    InternalCoordinates,
    LinearPointTransform,
    MomentumKick,
    SplineCoupling,
    SymplecticFlow,
    SymplecticScaling,
    alternating_masks,
)
from nct_md.md.frame import eckart_log_volume, kabsch
from nct_md.md.phase import load_phase_space
from nct_md.md.zmatrix import zmatrix
from nct_md.model import Preprocessing

UNCONSTRAINED = sorted((DATA / "alanine-dipeptide-300K-unconstrained").glob("*.h5"))


@pytest.fixture(scope="module")
def fitted():
    """An internal-coordinate layer fitted (float64) to two strided unconstrained trajectories."""
    data = load_phase_space([UNCONSTRAINED[0], UNCONSTRAINED[4]], stride=10)
    pre = Preprocessing(data.reference, data.masses, data.temperature)
    x_q = pre.to_model(data.q.double())
    layer = InternalCoordinates(zmatrix(data.topology), pre.n_dof, kabsch,
                                eckart_log_volume).double()
    layer.set_frame(*pre.affine(), pre.reference, pre.masses)
    y = layer.fit(x_q)
    return data, pre, layer, x_q, y


def test_zmatrix_places_every_atom_after_its_references(ala):
    rows = zmatrix(ala.topology)
    assert sorted(rows[:, 0]) == list(range(ala.n_atoms))
    placed = set()
    for m, (i, *refs) in enumerate(rows):
        needed = list(refs[:min(m, 3)])
        assert all(r in placed for r in needed) and len(set(needed)) == len(needed)
        assert all(r == -1 for r in refs[min(m, 3):])
        placed.add(i)
    bonds = {frozenset((a.index, b.index)) for a, b in ala.topology.bonds}
    assert all(frozenset((i, j)) in bonds for i, j, _, _ in rows[1:])


def test_zmatrix_refuses_a_disconnected_graph():
    broken = md.Topology()
    chain = broken.add_chain()
    res = broken.add_residue("X", chain)
    atoms = [broken.add_atom(f"C{i}", md.element.carbon, res) for i in range(5)]
    broken.add_bond(atoms[0], atoms[1])
    broken.add_bond(atoms[2], atoms[3])
    with pytest.raises(ValueError, match="not connected"):
        zmatrix(broken)


def test_internal_coordinates_match_mdtraj(fitted):
    data, _, layer, x_q, _ = fitted
    xyz = layer.cartesian(x_q[:20])
    bonds, angles, torsions = layer._raw(xyz)
    traj = md.Trajectory(xyz.numpy(), data.topology)
    rows = layer.rows.numpy()
    np.testing.assert_allclose(bonds.numpy(), md.compute_distances(traj, rows[1:, :2]), atol=1e-6)
    np.testing.assert_allclose(angles.numpy(), md.compute_angles(traj, rows[2:, :3]), atol=1e-5)
    diff = torsions.numpy() - md.compute_dihedrals(traj, rows[3:])
    assert np.abs(np.angle(np.exp(1j * diff))).max() < 1e-5


def test_round_trip_and_standardisation(fitted):
    _, _, layer, x_q, y = fitted
    assert torch.allclose(y.mean(0), torch.zeros(y.shape[1], dtype=y.dtype), atol=1e-10)
    assert torch.allclose(y.std(0), torch.ones(y.shape[1], dtype=y.dtype), atol=1e-10)
    back, log_det_inverse = layer.inverse_positions(y)
    assert (back - x_q).abs().max() < 1e-9
    _, log_det = layer.positions_log_det(x_q)
    assert (log_det + log_det_inverse).abs().max() < 1e-9


def test_log_det_is_the_autograd_jacobian_up_to_a_constant(fitted):
    """The closed form (r^2 sin(a), Eckart volume, logit) equals slogdet(dy/dx_q) + constant."""
    _, _, layer, x_q, _ = fitted
    frames = x_q[::25][:12]
    jac = layer._jacobian(frames)
    difference = torch.linalg.slogdet(jac)[1] - layer.positions_log_det(frames)[1]
    assert float(difference.max() - difference.min()) < 1e-8


def test_eckart_volume_is_the_rigid_body_jacobian(fitted):
    """|det d(x)/d(t, w, x_q)| of x = R(w) q(x_q) + t at w = 0 is |det B(q)| times a constant."""
    _, pre, _, x_q, _ = fitted
    n = pre.n_dof

    def cartesian(v: torch.Tensor) -> torch.Tensor:
        t, w, internal = v[:3], v[3:6], v[6:]
        q = pre.inverse(torch.zeros(1, n, dtype=v.dtype), internal[None])[1].reshape(-1, 3)
        skew = torch.zeros(3, 3, dtype=v.dtype)
        skew[0, 1], skew[0, 2], skew[1, 2] = -w[2], w[1], -w[0]
        rotation = torch.linalg.matrix_exp(skew - skew.T)
        return ((q @ rotation.T + t) * pre.masses[:, None].sqrt()).reshape(-1)

    frames = x_q[::40][:6]
    volumes = []
    for frame in frames:
        jac = torch.autograd.functional.jacobian(
            cartesian, torch.cat([torch.zeros(6, dtype=frame.dtype), frame]))
        volumes.append(torch.linalg.slogdet(jac)[1])
    q = pre.inverse(torch.zeros_like(frames), frames)[1]
    difference = torch.stack(volumes) - eckart_log_volume(q, pre.reference, pre.masses)
    assert float(difference.max() - difference.min()) < 1e-8
    assert float(eckart_log_volume(q, pre.reference, pre.masses).std()) > 1e-3  # not constant


def test_momentum_lift_is_symplectic(fitted):
    _, _, layer, x_q, _ = fitted
    n = x_q.shape[1]
    p = torch.randn(1, n, dtype=x_q.dtype, generator=torch.Generator().manual_seed(0))

    def fn(x):
        P, Q = layer(x[None, :n], x[None, n:])
        return torch.cat([P[0], Q[0]])

    jac = torch.autograd.functional.jacobian(fn, torch.cat([p[0], x_q[3]]))
    eye, zero = torch.eye(n, dtype=x_q.dtype), torch.zeros(n, n, dtype=x_q.dtype)
    form = torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)])
    assert (jac @ form @ jac.T - form).abs().max() < 1e-8
    P, Q = layer(p, x_q[3:4])
    back_p, back_q = layer.inverse(P, Q)
    assert (back_p - p).abs().max() < 1e-8 and (back_q - x_q[3:4]).abs().max() < 1e-9


@pytest.mark.parametrize("kind", ["coupling", "spline", "linear", "scaling", "kick", "stack"])
def test_configuration_log_det_matches_autograd(kind):
    n = 5
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    layer = {"coupling": lambda: AffineCoupling(alternating_masks(n, 1, gen)[0], 8, 2),
             "spline": lambda: SplineCoupling(alternating_masks(n, 1, gen)[0], 8, 2, bins=6,
                                              bound=2.0),
             "linear": lambda: LinearPointTransform(n),
             "scaling": lambda: SymplecticScaling(n),
             "kick": lambda: MomentumKick(n),
             "stack": lambda: SymplecticFlow([
                 AffineCoupling(mask, 8, 2) for mask in alternating_masks(n, 3, gen)]
                 + [LinearPointTransform(n), SymplecticScaling(n)])}[kind]()
    perturb(layer.double(), 2)
    q = torch.randn(4, n, dtype=torch.float64, generator=gen)
    Q, log_det = layer.positions_log_det(q)
    assert torch.allclose(Q, layer.transform_positions(q))
    for k in range(len(q)):
        jac = torch.autograd.functional.jacobian(lambda x: layer.transform_positions(x[None])[0],
                                                 q[k])
        assert abs(float(torch.linalg.slogdet(jac)[1] - log_det[k].detach())) < 1e-10
    back, log_det_inverse = layer.inverse_positions(Q)
    assert torch.allclose(back, q, atol=1e-10)
    assert torch.allclose(log_det_inverse, -log_det, atol=1e-10)


def test_momentum_integral_gives_the_configuration_density():
    """ln p(q) = ln \\int p(p, q) dp for a linear flow (Gaussian integral in closed form)."""
    from nct_md.latent import HarmonicLatent
    from nct_md.train.losses import ConfigurationDensity

    n = 3
    torch.manual_seed(0)
    flow = perturb(SymplecticFlow([LinearPointTransform(n), SymplecticScaling(n)]).double(), 0)
    latent = HarmonicLatent(n, torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)).double()
    q = torch.randn(2, n, dtype=torch.float64)
    # P = A^{-T} p, so int exp(-|P|^2/2) dp = (2 pi)^{n/2} |det A|
    A = torch.autograd.functional.jacobian(lambda x: flow.transform_positions(x[None])[0], q[0])
    _, Q = flow(torch.zeros_like(q), q)
    w = latent.frequencies
    expected = (-0.5 * (w * Q).square().sum(1) - latent.log_partition()
                + 0.5 * n * math.log(2 * math.pi) + torch.linalg.slogdet(A)[1])
    assert torch.allclose(ConfigurationDensity(flow, latent)(q), expected, atol=1e-12)
