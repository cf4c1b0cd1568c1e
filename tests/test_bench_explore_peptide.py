"""``bench.explore_peptide``: a smoke run on a shipped alanine-dipeptide trajectory (vacuum, a
tiny model), its JSON, table and refusals."""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest
from conftest import ALA_PDB, DATA

from bench import explore_peptide
from nct_md.cv.reference import committed_transitions, phi_core, phi_psi
from nct_md.errors import NCTInputError

TRAJ = DATA / "alanine-dipeptide-300K" / "phi-neg-c7eq-1.h5"
#: 50 ps start, 1 x 5 ps biased, a tiny model
SMOKE = ["--trajectory", str(TRAJ), "--pdb", str(ALA_PDB), "--forcefield", "amber99sbildn",
         "--solvent", "vacuum", "--start-ns", "0.05", "--iterations", "1",
         "--ns-per-iteration", "0.005", "--train", "n_couplings=1", "hidden=16", "depth=1",
         "epochs=1", "restarts=1", "kinetic_weight=0", "batch_size=32"]


def test_smoke_run_reports_loop_and_plain_continuation(tmp_path):
    out = tmp_path / "peptide.json"
    printed = explore_peptide.main([*SMOKE, "--out", str(out)])
    result = json.loads(out.read_text())
    assert result == json.loads(json.dumps(printed))
    assert [it["iteration"] for it in result["loop"]] == [0, 1]
    first = result["loop"][1]
    assert first["ns"]["biased_total"] == pytest.approx(0.005)
    assert first["ood"]["n_frames"] == 5 and list(first["residues"]) == ["ALA2"]
    # plain MD of the same length: the trajectory's next 5 frames, measured independently
    phi = phi_psi(md.load(str(TRAJ))[50:55])[0].astype(np.float64)
    (plain,) = result["plain"]["residues"]
    assert result["plain"]["ns"] == pytest.approx(0.005)
    assert plain["committed_transitions"] == committed_transitions(phi)
    assert (plain["phi_positive_core_first_visit_ps"] is None) == (not (phi_core(phi) == 1).any())
    lines = result["table"].splitlines()
    assert lines[0].startswith("| run | biased ns | ALA2: first Phi>0 core, ps |")
    assert lines[-1].startswith("| plain MD, same start, 0.005 ns more | 0 |")


def test_refuses_a_start_with_phi_positive_and_a_short_trajectory(tmp_path):
    positive = DATA / "alanine-dipeptide-300K" / "phi-pos-c7ax-1.h5"
    with pytest.raises(NCTInputError, match="already visit Phi > 0"):
        explore_peptide.main([*SMOKE, "--trajectory", str(positive),
                              "--out", str(tmp_path / "a.json")])
    with pytest.raises(NCTInputError, match="holds 4000 frames"):
        explore_peptide.main([*SMOKE, "--start-ns", "4", "--out", str(tmp_path / "b.json")])
    assert not list(tmp_path.iterdir())  # nothing written
