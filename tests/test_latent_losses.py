"""HarmonicLatent against torch.distributions; losses against analytic answers."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch

from nct_md.flows import SymplecticFlow, SymplecticScaling, point_flow
from nct_md.latent import HarmonicLatent
from nct_md.train import free_energy_estimate, negative_log_likelihood, variational_free_energy


def test_log_prob_matches_independent_gaussians():
    w = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    latent = HarmonicLatent(3, w).double()
    kT = 2.5
    P, Q = torch.randn(2, 10, 3, dtype=torch.float64)
    ref = (torch.distributions.Normal(0.0, math.sqrt(kT)).log_prob(P).sum(1)
           + torch.distributions.Normal(0.0, math.sqrt(kT) / w).log_prob(Q).sum(1))
    assert torch.allclose(latent.log_prob(P, Q, kT), ref, atol=1e-12)


def test_sampling_moments_and_ordering():
    w = torch.tensor([2.0, 0.5, 1.0])
    latent = HarmonicLatent(3, w)
    with torch.no_grad():
        P, Q = latent.sample(200_000, kT=1.5, generator=torch.Generator().manual_seed(0))
    assert np.allclose(P.var(0).numpy(), 1.5, rtol=0.02)
    assert np.allclose((Q.var(0) * w**2).numpy(), 1.5, rtol=0.02)
    assert latent.slow_order().tolist() == [1, 2, 0]
    assert np.allclose(latent.sorted_frequencies().numpy(), [0.5, 1.0, 2.0])


def test_free_energy_summary_against_numpy():
    work = torch.tensor([0.1, -0.3, 0.7, 0.2], dtype=torch.float64)
    est = free_energy_estimate(work)
    x = work.numpy()
    weights = np.exp(-x)
    assert math.isclose(est.variational, x.mean())
    assert math.isclose(est.stderr, x.std(ddof=1) / 2)
    assert math.isclose(est.reweighted, -np.log(weights.mean()))
    assert math.isclose(est.ess, weights.sum() ** 2 / (weights**2).sum() / 4)


def oscillator(w0: torch.Tensor):
    return lambda p, q: 0.5 * (p.square() + (w0 * q).square()).sum(1)


def test_variational_free_energy_exact_at_optimum_with_zero_gradient():
    """At the exact map the estimate equals -ln Z for every sample and the gradient is 0."""
    w0 = torch.tensor([0.4, 1.3], dtype=torch.float64)
    flow = SymplecticFlow([SymplecticScaling(2)]).double()
    latent = HarmonicLatent(2, w0).double()
    loss, est = variational_free_energy(flow, latent, oscillator(w0), 64)
    exact = float(torch.log(w0 / (2 * math.pi)).sum())
    assert math.isclose(est.variational, exact, abs_tol=1e-12) and est.stderr < 1e-12
    loss.backward()
    grads = [p.grad for p in [*flow.parameters(), *latent.parameters()]]
    assert all(g.abs().max() < 1e-12 for g in grads)
    # ...and away from the optimum the same loss has a gradient and a larger value.
    with torch.no_grad():
        latent.log_frequencies.add_(0.2)
    loss2, est2 = variational_free_energy(flow, latent, oscillator(w0), 4096)
    loss2.backward()
    assert latent.log_frequencies.grad.abs().max() > 1e-3
    assert est2.variational > exact + 1e-3


def test_maximum_likelihood_recovers_frequencies():
    """Fit correlated Gaussian phase-space samples (full batch); compare with the closed-form
    maximum-likelihood frequencies of the samples and with the exact normal modes.

    A linear point transformation ``Q = A q``, ``P = A^-T p`` fits the sample covariances
    exactly: ``cov(p) = A^T A`` and ``cov(q)^-1 = A^T W^2 A``, so the maximum-likelihood ``w^2``
    are the generalized eigenvalues of ``(cov(q)^-1, cov(p))``."""
    gen = torch.Generator().manual_seed(0)
    n = 4
    k = torch.tensor([[2.0, -1, 0, 0], [-1, 2, -1, 0], [0, -1, 2, -1], [0, 0, -1, 2]],
                     dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(k)
    n_samples = 20_000
    p = torch.randn(n_samples, n, generator=gen, dtype=torch.float64)
    q = (torch.randn(n_samples, n, generator=gen, dtype=torch.float64) / evals.sqrt()) @ evecs.T
    flow = point_flow(n, n_couplings=0).double()
    latent = HarmonicLatent(n).double()
    params = [*flow.parameters(), *latent.parameters()]
    opt = torch.optim.Adam(params, lr=0.03)
    for _ in range(800):
        opt.zero_grad()
        negative_log_likelihood(flow, latent, p, q).backward()
        opt.step()
    learned = latent.sorted_frequencies().detach().numpy()
    cov_p, cov_q = (p.T @ p).numpy() / n_samples, (q.T @ q).numpy() / n_samples
    ml = np.sqrt(scipy.linalg.eigh(np.linalg.inv(cov_q), cov_p, eigvals_only=True))
    # measured: 4e-13 from the closed form; 1.3% from the exact modes (sampling error)
    assert np.allclose(learned, ml, rtol=1e-8, atol=0)
    assert np.allclose(learned, evals.sqrt().numpy(), rtol=0.03, atol=0)
