"""The benchmarks' re-implementation of the original NCT (bench/original_nct.py) against
independent references: autograd Jacobians for the momentum lift, symplecticity and the
coupling log-determinant, and one training step on a fixed batch."""

import torch
from torch.autograd.functional import jacobian

from bench.original_nct import OriginalNCT, optimiser, training_step

N = 4


def tiny_model() -> OriginalNCT:
    """A small float64 instance moved off the identity (the scales start at zero)."""
    generator = torch.Generator().manual_seed(1)
    model = OriginalNCT(N, n_couplings=4, hidden=8, generator=generator).double()
    with torch.no_grad():
        for net in model.flow.scale_nets:
            net[-1].scale.normal_(0.0, 0.5, generator=generator)
    return model


def phase_point(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    p, q = torch.randn(2, 1, N, generator=generator, dtype=torch.float64)
    return p, q


def test_lifted_momenta_are_the_inverse_transpose_jacobian_times_p():
    model, (p, q) = tiny_model(), phase_point()
    J = jacobian(lambda x: model.positions(x[None])[0], q[0])
    P, Q = model(p, q)
    expected = torch.linalg.solve(J.T, p[0])
    torch.testing.assert_close(Q[0], model.positions(q)[0])
    torch.testing.assert_close(P[0], expected, rtol=1e-10, atol=1e-12)


def test_phase_space_map_is_symplectic():
    model, (p, q) = tiny_model(), phase_point(3)

    def phase_map(x: torch.Tensor) -> torch.Tensor:
        P, Q = model(x[None, :N], x[None, N:])
        return torch.cat([P[0], Q[0]])

    J = jacobian(phase_map, torch.cat([p[0], q[0]]))
    eye, zero = torch.eye(N, dtype=torch.float64), torch.zeros(N, N, dtype=torch.float64)
    omega = torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)])
    torch.testing.assert_close(J.T @ omega @ J, omega, rtol=0, atol=1e-5)


def test_coupling_log_det_is_the_autograd_log_det():
    model, (_, q) = tiny_model(), phase_point(4)
    Q, log_det = model.flow.to_latent(q)
    J = jacobian(lambda x: model.flow.to_latent(x[None])[0][0], q[0])
    torch.testing.assert_close(log_det[0], torch.linalg.slogdet(J)[1])
    q_back, log_det_back = model.flow.to_data(Q)
    torch.testing.assert_close(q_back, q)
    torch.testing.assert_close(log_det_back, -log_det)


def test_one_training_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = OriginalNCT()  # the benchmark's size: 30 coordinates, 8 couplings, width 128
    p, q = torch.randn(2, 200, 30)
    adam = optimiser(model)
    before = training_step(model, adam, p, q)
    assert float(model.negative_log_likelihood(p, q).detach()) < before
