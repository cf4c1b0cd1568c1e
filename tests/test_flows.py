"""Exact symplecticity, invertibility and separability of every layer (float64 autograd)."""

from __future__ import annotations

import pytest
import torch
from conftest import perturb
from hypothesis import given, settings
from hypothesis import strategies as st

from nct_md.flows import (
    AffineCoupling,
    LinearPointTransform,
    MomentumKick,
    SplineCoupling,
    SymplecticFlow,
    SymplecticScaling,
    alternating_masks,
    point_flow,
)
from nct_md.flows.experimental import LeapfrogFlow, LinearSymplectic, PositionDrift


def make_layer(kind: str, n: int, hidden: int, depth: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if kind == "scaling":
        layer = SymplecticScaling(n)
    elif kind == "linear_point":
        layer = LinearPointTransform(n)
    elif kind == "kick":
        layer = MomentumKick(n)
    elif kind == "drift":
        layer = PositionDrift(n)
    elif kind == "linear_symplectic":
        layer = LinearSymplectic(n, n_shears=2)
    elif kind == "coupling":
        layer = AffineCoupling(alternating_masks(n, 1, gen)[0], hidden, depth)
    elif kind == "spline":
        layer = SplineCoupling(alternating_masks(n, 1, gen)[0], hidden, depth, bins=5, bound=2.0)
    elif kind == "leapfrog":
        layer = LeapfrogFlow(n, n_steps=3, step=0.2, hidden=hidden, depth=depth)
    elif kind == "deep":
        masks = alternating_masks(n, 2, gen)
        layer = SymplecticFlow([
            SymplecticScaling(n), AffineCoupling(masks[0], hidden, depth), LinearSymplectic(n),
            LeapfrogFlow(n, 2, 0.1, hidden, depth), AffineCoupling(masks[1], hidden, depth),
            MomentumKick(n), PositionDrift(n), LinearPointTransform(n), SymplecticScaling(n)])
    else:
        raise ValueError(kind)
    # The deep stack compounds nine random layers; a milder perturbation keeps its condition
    # number (which bounds any float32 round trip) near that of a trained model.
    return perturb(layer.double(), seed, scale=0.1 if kind == "deep" else 0.3)


KINDS = ["scaling", "linear_point", "kick", "drift", "linear_symplectic", "coupling", "spline",
         "leapfrog", "deep"]


def phase_jacobian(layer, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Autograd Jacobian ``d(P, Q)/d(p, q)`` of one sample, shape ``(2n, 2n)``."""
    n = p.shape[-1]

    def fn(x):
        P, Q = layer(x[None, :n], x[None, n:])
        return torch.cat([P[0], Q[0]])

    return torch.autograd.functional.jacobian(fn, torch.cat([p, q]))


def symplectic_form(n: int) -> torch.Tensor:
    eye, zero = torch.eye(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    return torch.cat([torch.cat([zero, -eye], 1), torch.cat([eye, zero], 1)])


@settings(max_examples=6, deadline=None, derandomize=True)
@given(kind=st.sampled_from(KINDS), n=st.integers(2, 7), hidden=st.integers(4, 24),
       depth=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_symplectic_invertible_volume_preserving(kind, n, hidden, depth, seed):
    layer = make_layer(kind, n, hidden, depth, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    p, q = torch.randn(2, n, generator=gen, dtype=torch.float64)
    m = phase_jacobian(layer, p, q)
    j = symplectic_form(n)
    assert (m @ j @ m.T - j).abs().max() <= 1e-9
    assert torch.linalg.slogdet(m).logabsdet.abs() <= 1e-9


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_symplectic(kind):
    n = 5
    layer = make_layer(kind, n, hidden=16, depth=2, seed=3)
    p, q = torch.randn(2, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = phase_jacobian(layer, p, q)
    j = symplectic_form(n)
    assert (m @ j @ m.T - j).abs().max() <= 1e-9
    assert torch.linalg.slogdet(m).logabsdet.abs() <= 1e-9
    # The check can fail: a non-symplectic linear map (plain scaling of q) breaks it.
    bad = torch.block_diag(torch.eye(n, dtype=torch.float64), 2 * torch.eye(n, dtype=torch.float64))
    assert (bad @ j @ bad.T - j).abs().max() > 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_inverse_float64_and_float32(kind):
    n, batch = 6, 64
    layer = make_layer(kind, n, hidden=16, depth=2, seed=7)
    gen = torch.Generator().manual_seed(1)
    p, q = torch.randn(2, batch, n, generator=gen, dtype=torch.float64)
    P, Q = layer(p, q)
    p2, q2 = layer.inverse(P, Q)
    assert torch.allclose(p2, p, atol=1e-10, rtol=0) and torch.allclose(q2, q, atol=1e-10, rtol=0)
    assert not (torch.allclose(P, p) and torch.allclose(Q, q))  # not the identity
    layer32 = layer.float()
    p32, q32 = p.float(), q.float()
    P32, Q32 = layer32(p32, q32)
    assert P32.dtype == torch.float32
    p3, q3 = layer32.inverse(P32, Q32)
    scale = torch.cat([p32, q32]).abs().max()
    assert ((p3 - p32).abs().max() / scale) <= 1e-5 and ((q3 - q32).abs().max() / scale) <= 1e-5


def test_point_transformations_are_configuration_separable():
    n = 6
    flow = perturb(SymplecticFlow([point_flow(n, n_couplings=3), SymplecticScaling(n),
                                     MomentumKick(n)]).double(), seed=2)
    assert flow.configuration_separable
    p, q = torch.randn(2, n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    m = phase_jacobian(flow, p, q)
    assert torch.count_nonzero(m[n:, :n]) == 0  # dQ/dp = 0 exactly
    q_only = flow.transform_positions(q[None])
    assert torch.allclose(q_only, flow(p[None], q[None])[1], atol=1e-12)


@pytest.mark.parametrize("extra", [LinearSymplectic, LeapfrogFlow, PositionDrift])
def test_mixing_layers_are_not_separable(extra):
    n = 4
    flow = perturb(SymplecticFlow([point_flow(n, 2), extra(n)]).double(), seed=5)
    assert not flow.configuration_separable
    m = phase_jacobian(flow, *torch.randn(2, n, dtype=torch.float64))
    assert m[n:, :n].abs().max() > 1e-6
    with pytest.raises(TypeError, match="momenta"):
        flow.transform_positions(torch.zeros(1, n, dtype=torch.float64))


def test_no_grad_outputs_are_detached_and_equal():
    layer = make_layer("deep", 4, 8, 1, seed=9)
    p, q = torch.randn(2, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        P0, Q0 = layer(p, q)
    P1, Q1 = layer(p, q)
    assert not P0.requires_grad and not Q0.requires_grad
    assert torch.allclose(P0, P1) and torch.allclose(Q0, Q1)


def test_recenter_keeps_the_map_exactly_symplectic():
    n = 5
    flow = perturb(SymplecticFlow([LinearPointTransform(n), LinearSymplectic(n)]).double(), 1)
    p, q = torch.randn(2, 7, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    before = flow(p, q)
    flow.recenter()
    after = flow(p, q)
    assert torch.allclose(before[0], after[0], atol=1e-12)
    assert torch.allclose(before[1], after[1], atol=1e-12)
    assert all(layer.generator.abs().max() == 0 for layer in flow.modules()
               if isinstance(layer, LinearPointTransform))
    perturb(flow, 3)  # now A = exp(G) B with B far from the identity
    m = phase_jacobian(flow, p[0], q[0])
    j = symplectic_form(n)
    assert (m @ j @ m.T - j).abs().max() <= 1e-9
    P, Q = flow(p, q)
    assert torch.allclose(flow.inverse(P, Q)[1], q, atol=1e-10)
