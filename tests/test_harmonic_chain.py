"""The harmonic chain learned from its Hamiltonian matches the analytic normal modes.

The variational free energy has its minimum, the exact ``-ln Z``, at the exact normal-mode map
and its gradient noise vanishes there, so training reaches the analytic answer to sampling
precision. Measured (n = 8, seeds 0-3): free energy within 5e-6 kT, frequencies within 6e-5
relative, slow-mode subspace cosines within 2e-8 of 1; n = 16: 2.4e-5 kT, 7e-5, 5e-8; n = 8
with 2 nonlinear couplings: 2e-6 kT, 5e-5, 2e-8. Tolerances sit a few times above these.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nct_md.cli import main
from nct_md.systems.harmonic_chain import (
    analytic_frequencies,
    exact_free_energy,
    normal_modes,
    stiffness_matrix,
)


def test_analytic_reference_is_consistent():
    """The closed forms agree with a numerical eigen-decomposition of the stiffness matrix."""
    n = 9
    evals, evecs = np.linalg.eigh(stiffness_matrix(n))
    assert np.allclose(np.sqrt(evals), analytic_frequencies(n))
    modes = normal_modes(n)
    assert np.allclose(np.abs(modes.T @ evecs), np.eye(n), atol=1e-10)
    assert np.isclose(exact_free_energy(n), np.sum(0.5 * np.log(evals) - np.log(2 * np.pi)))


#: Free energy (kT), relative frequency and 1 - cosine tolerances (see the module docstring).
FREE_ENERGY_KT, FREQUENCY, COSINE = 1e-4, 3e-4, 1e-6


def run_chain(folder, n: int, *extra: str) -> dict:
    out = folder / f"chain{n}.json"
    assert main(["harmonic-chain", "--n", str(n), "--seed", "0", *extra, "--out", str(out)]) == 0
    return json.loads(out.read_text())


def check_exact(result: dict, n: int) -> None:
    """The JSON of ``nct-md harmonic-chain`` against the closed forms, at the tolerances above."""
    assert set(result) >= {"n", "learned", "analytic", "free_energy", "free_energy_exact"}
    learned, analytic = np.array(result["learned"]), np.array(result["analytic"])
    assert result["n"] == n and np.all(np.diff(learned) > 0)
    assert np.allclose(analytic, analytic_frequencies(n), rtol=1e-12, atol=0)
    assert result["free_energy_exact"] == pytest.approx(exact_free_energy(n), abs=1e-12)
    assert np.max(np.abs(learned / analytic - 1)) <= FREQUENCY
    assert abs(result["free_energy"] - exact_free_energy(n)) <= FREE_ENERGY_KT
    assert abs(result["free_energy_reweighted"] - exact_free_energy(n)) <= FREE_ENERGY_KT
    assert result["free_energy_stderr"] <= FREE_ENERGY_KT
    assert result["max_relative_error"] == pytest.approx(np.max(np.abs(learned / analytic - 1)))
    assert len(result["slow_mode_cosines"]) == 3
    assert min(result["slow_mode_cosines"]) >= 1 - COSINE


def test_chain_n8_frequencies_free_energy_and_modes(tmp_path):
    check_exact(run_chain(tmp_path, 8), 8)


@pytest.mark.slow
@pytest.mark.parametrize("n, extra", [(16, []), (8, ["--couplings", "2"])],
                         ids=["n16", "n8-couplings2"])
def test_longer_chains_and_nonlinear_flows_reach_the_exact_answer(tmp_path, n, extra):
    """n = 16 (4,000 steps) and n = 8 through 2 affine couplings (which must learn to vanish)."""
    check_exact(run_chain(tmp_path, n, *extra), n)


def test_cli_rejects_bad_input(tmp_path, capsys):
    assert main(["harmonic-chain", "--n", "1", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--n must be at least 2" in err[0]
    assert main(["harmonic-chain", "--n", "4", "--out", str(tmp_path / "x.txt")]) == 2
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit) as exc:
        main(["harmonic-chain", "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
