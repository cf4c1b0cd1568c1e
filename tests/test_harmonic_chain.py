"""The harmonic chain learned from its Hamiltonian matches the analytic normal modes."""

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


@pytest.fixture(scope="module")
def chain8(tmp_path_factory):
    out = tmp_path_factory.mktemp("chain") / "chain.json"
    assert main(["harmonic-chain", "--n", "8", "--seed", "0", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_chain_n8_frequencies_free_energy_and_modes(chain8):
    assert set(chain8) >= {"n", "learned", "analytic", "free_energy", "free_energy_exact"}
    learned, analytic = np.array(chain8["learned"]), np.array(chain8["analytic"])
    assert chain8["n"] == 8 and np.all(np.diff(learned) > 0)
    assert np.allclose(analytic, analytic_frequencies(8))
    assert np.max(np.abs(learned / analytic - 1)) <= 0.01
    assert abs(chain8["free_energy"] - exact_free_energy(8)) <= 0.02
    assert min(chain8["slow_mode_cosines"]) >= 0.99


def test_cli_rejects_bad_input(tmp_path, capsys):
    assert main(["harmonic-chain", "--n", "1", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--n must be at least 2" in err[0]
    assert main(["harmonic-chain", "--n", "4", "--out", str(tmp_path / "x.txt")]) == 2
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit) as exc:
        main(["harmonic-chain", "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
