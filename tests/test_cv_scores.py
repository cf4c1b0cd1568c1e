"""CV scores against analytic references: kNN MI, VAMP-2 (linear and discretised), kNN
accuracy, basin definitions."""

from __future__ import annotations

import numpy as np
import pytest
from deeptime.decomposition import TICA

from nct_md.cv import reference, scores


def test_mutual_information_of_correlated_gaussians():
    rng = np.random.default_rng(0)
    for rho in (0.0, 0.6, 0.95):
        x = rng.standard_normal(8000)
        y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(8000)
        exact = -0.5 * np.log(1 - rho**2)
        assert abs(scores.mutual_information(x, y) - exact) < 0.05


def test_periodic_mutual_information_respects_the_wrap():
    """MI with an angle matches the exact value and does not depend on where the wrap sits."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 6000)
    sigma = 0.1
    angle = 2 * x + sigma * rng.standard_normal(6000)  # within (-pi, pi): no wrap
    shifted = np.angle(np.exp(1j * (angle + 2.5)))  # the same angle, wrap inside the data
    exact = np.log(4) - 0.5 * np.log(2 * np.pi * np.e * sigma**2)  # h(2x) - h(noise)
    mi = scores.mutual_information(x, angle, periodic_y=True)
    assert abs(mi - exact) < 0.1
    assert abs(scores.mutual_information(x, shifted, periodic_y=True) - mi) < 0.05
    assert scores.mutual_information(x, rng.uniform(-np.pi, np.pi, 6000), periodic_y=True) < 0.05


def ar1(n: int, a: float, rng) -> np.ndarray:
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = a * x[t - 1] + np.sqrt(1 - a**2) * rng.standard_normal()
    return x


def test_vamp2_of_ar1_matches_analytic():
    """For an AR(1) process VAMP-2 = 1 + a^(2 lag) (constant function included)."""
    rng = np.random.default_rng(2)
    a, lag = 0.9, 3
    train = [ar1(20_000, a, rng)[:, None] for _ in range(2)]
    test = [ar1(20_000, a, rng)[:, None] for _ in range(2)]
    assert abs(scores.vamp2(train, test, lag) - (1 + a ** (2 * lag))) < 0.03
    noise = [rng.standard_normal((20_000, 1)) for _ in range(2)]
    assert abs(scores.vamp2(noise, noise, lag) - 1) < 0.01


def two_state_hidden(n: int, switch: float, rng) -> np.ndarray:
    """A coordinate ``(n, 1)`` whose slow two-state process is invisible to linear functions.

    A Markov chain switches state with probability ``switch`` per frame; state 0 sits near 0,
    state 1 near -2 or +2 (random sign each frame), so the state mean is 0 in both.
    """
    state = np.cumsum(rng.random(n) < switch) % 2
    sign = rng.choice([-1.0, 1.0], n)
    return (2.0 * state * sign + 0.3 * rng.standard_normal(n))[:, None]


def test_discrete_vamp2_sees_a_nonlinear_slow_process():
    """The k-means basis finds the hidden process (analytic 1 + (1 - 2 p)^(2 lag)) that the
    linear score misses; noise scores 1; scores lie in [1, 1 + n_components]."""
    rng = np.random.default_rng(5)
    switch, lag = 0.01, 5
    train = [two_state_hidden(20_000, switch, rng) for _ in range(2)]
    test = [two_state_hidden(20_000, switch, rng) for _ in range(2)]
    exact = 1 + (1 - 2 * switch) ** (2 * lag)
    assert abs(scores.discrete_vamp2(train, test, lag, n_components=1) - exact) < 0.1
    assert scores.vamp2(train, test, lag) < 1.05
    noise = [rng.standard_normal((20_000, 1)) for _ in range(4)]
    assert scores.discrete_vamp2(noise[:2], noise[2:], lag, n_components=1) < 1.05
    both = [np.hstack([x, n]) for x, n in zip(train + test, noise, strict=True)]
    score = scores.discrete_vamp2(both[:2], both[2:], lag, n_components=2)
    assert exact - 0.15 < score <= 3 + 1e-9


def test_tica_components_match_deeptime():
    rng = np.random.default_rng(3)
    data = [np.column_stack([ar1(5000, 0.95, rng), rng.standard_normal(5000)])]
    ours = scores.tica_components(data, 2, 1, data)[0]
    ref = TICA(lagtime=2, dim=1).fit(data).fetch_model().transform(data[0])
    assert np.allclose(np.abs(ours), np.abs(ref))
    assert abs(np.corrcoef(ours[:, 0], data[0][:, 0])[0, 1]) > 0.99


def test_knn_balanced_accuracy():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 3000)
    separable = labels[:, None] * 5.0 + rng.standard_normal((3000, 2))
    assert scores.knn_balanced_accuracy(separable[:2000], labels[:2000], separable[2000:],
                                        labels[2000:]) > 0.99
    noise = rng.standard_normal((3000, 2))
    chance = scores.knn_balanced_accuracy(noise[:2000], labels[:2000], noise[2000:],
                                          labels[2000:])
    assert 0.2 < chance < 0.45


@pytest.mark.parametrize("phi, psi, name", [(-150, 150, "C5/beta"), (-75, 145, "C7eq/PII"),
                                            (-70, -40, "alphaR"), (70, -70, "C7ax"),
                                            (60, 40, "alphaL"), (-160, -170, "C5/beta"),
                                            (178, 160, "C5/beta"), (170, -170, "C5/beta"),
                                            (170, -60, "C7ax"), (80, 160, "alphaL")])
def test_ramachandran_basins(phi, psi, name):
    code = reference.ramachandran_basin(np.radians([phi]), np.radians([psi]))[0]
    assert reference.BASINS[code] == name


def test_discrete_vamp2_of_pairs_sees_a_two_state_switch_and_not_noise():
    rng = np.random.default_rng(1)
    state = np.cumsum(rng.random(20_000) < 0.002) % 2  # rare switches
    x = np.stack([state + 0.3 * rng.normal(size=len(state)), rng.normal(size=len(state))], 1)
    half = len(x) // 2
    pairs = [(x[a:b - 10], x[a + 10:b]) for a, b in ((0, half), (half, len(x)))]
    slow = scores.discrete_vamp2_pairs(pairs[0], pairs[1], n_components=1, n_clusters=20)
    noise = [(p[0][:, 1:], p[1][:, 1:]) for p in pairs]
    fast = scores.discrete_vamp2_pairs(noise[0], noise[1], n_components=1, n_clusters=20)
    print(f"two-state {slow:.3f}, noise {fast:.3f}")
    assert slow > 1.55 and fast < 1.01  # measured 1.604 and 1.000


def test_committed_phi_transitions_count_core_to_core_only():
    deg = np.radians
    # C7eq -> over the barrier and back without reaching the core -> C7ax -> C5 across +-pi
    phi = deg(np.array([-80, -60, 0, 10, -70, -75, 60, 70, 10, 100, -170, 179, -178, -90]))
    assert reference.phi_core(phi).tolist() == [-1, -1, 0, 0, -1, -1, 1, 1, 0, 1, 0, 0, 0, -1]
    assert reference.committed_transitions(phi) == 2  # into the positive core and back
    assert reference.committed_transitions(deg(np.array([-170.0, 179.0, -179.0, 178.0]))) == 0


def test_phi_core_delta_f_is_the_weight_ratio_of_the_cores():
    phi = np.radians([-80.0, -70.0, 60.0, 0.0, 179.0])  # two negative, one positive, two neither
    weights = np.array([1.0, 3.0, 0.5, 7.0, 9.0])
    assert reference.phi_core_delta_f(phi, weights) == pytest.approx(-np.log(0.5 / 4.0))
    assert reference.phi_core_delta_f(phi[:2], weights[:2]) is None
