"""``nct_md.explore`` / ``nct-md explore``: a tiny vacuum loop on alanine dipeptide, resume, and
bad inputs (one line, exit 2, nothing written)."""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest
from conftest import ALA_PDB

from nct_md.cli import main
from nct_md.cv.reference import BASINS
from nct_md.errors import NCTInputError
from nct_md.explore import explore
from nct_md.explore.runs import Run, combined_weights, population_weights
from nct_md.explore.states import count_states
from nct_md.model import NCTModel

#: every stage at the smallest settings that still run it: 10 ps plain, 2 x 3 ps biased
TINY = {"solvent": "vacuum", "plain_ns": 0.01, "ns_per_iteration": 0.003, "n_states": 4,
        "train": {"n_couplings": 1, "epochs": 1, "restarts": 1, "kinetic_weight": 0,
                  "hidden": 16, "depth": 1, "batch_size": 64},
        "metad": {"pace": 100}, "simulation": {"save_every_ps": 0.1}, "equilibrate_ps": 0.2,
        "platform": "Reference", "progress": False}


def _lines(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "explore.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """A loop killed after iteration 1 (with a stale staging folder and a half-written
    iteration 2 left behind), then resumed to 2 iterations."""
    out = tmp_path_factory.mktemp("explore") / "run"
    first = explore(ALA_PDB, out, iterations=1, **TINY)
    model = out / "iter-01" / "model.pt"
    before = {"records": _lines(out), "model": (model.stat().st_mtime_ns, model.read_bytes())}
    for stale in (out / ".iter-02.stage-killed", out / "iter-02"):
        stale.mkdir()
        (stale / "junk").write_text("half-written")
    final = explore(ALA_PDB, out, iterations=2, resume=True, **TINY)
    return {"out": out, "first": first, "before": before, "final": final}


def test_files_and_json_of_each_iteration(loop):
    out, records = loop["out"], loop["final"]
    assert records == _lines(out) and [r["iteration"] for r in records] == [0, 1, 2]
    assert (out / "iter-00" / "plain.h5").is_file() and records[0]["files"] == ["iter-00/plain.h5"]
    assert records[0]["ood"] is None and records[0]["states"] is None
    assert records[2]["ns"] == pytest.approx({"plain": 0.01, "biased": 0.003,
                                              "biased_total": 0.006, "total": 0.016})
    assert [r["n_frames"]["total"] for r in records] == [100, 130, 160]
    for iteration in (1, 2):
        folder, record = out / f"iter-{iteration:02d}", records[iteration]
        metad = folder / "metad"
        for name in ("trajectory.h5", "colvar.csv", "free_energy.npy", "metad.json", "bias"):
            assert (metad / name).exists(), name
        assert json.loads((metad / "metad.json").read_text())["outputs"]["colvar.csv"] == str(
            metad / "colvar.csv")
        model = NCTModel.load(folder / "model.pt")
        traj = md.load(str(metad / "trajectory.h5"))
        table = np.loadtxt(folder / "cvs.csv", delimiter=",", skiprows=1)
        header = (folder / "cvs.csv").read_text().splitlines()[0]
        assert header == "time_ps,biased_ps,cv1,cv2,ood_score,ood_flag" and len(table) == 30
        np.testing.assert_allclose(table[:, 2:4], model.transform(traj, 2), atol=1e-5)
        np.testing.assert_allclose(table[:, 1] - table[:, 0], 3.0 * (iteration - 1), atol=1e-6)
        ood = record["ood"]
        assert ood["threshold"] == pytest.approx(model.info.ood.threshold)
        assert ood["n_flagged"] == int(table[:, 5].sum()) and ood["n_frames"] == 30
        states = record["states"]
        assert 1 <= states["n_visited"] <= 4 and "k-means" in states["method"]
        assert states["n_new"] == sum(s["new"] for s in states["visited"])
        assert record["model"]["path"] == f"iter-{iteration:02d}/model.pt"
    # iteration 1 trained on plain MD only (velocities); iteration 2 on weighted frames
    assert NCTModel.load(out / "iter-01" / "model.pt").info.training.weights is None
    assert NCTModel.load(out / "iter-02" / "model.pt").info.training.weights is not None
    residue = records[2]["residues"][0]
    assert residue["residue"] == "ALA2" and list(residue["basin_first_visit_biased_ps"]) == list(
        BASINS)
    assert 0.0 in residue["basin_first_visit_biased_ps"].values()  # plain MD visits a basin
    delta_f = records[2]["free_energy"]["delta_f_phi_kt"]
    assert (delta_f is None) == (residue["phi_positive_core_first_visit_biased_ps"] is None)


def test_killed_loop_resumes_without_redoing_iteration_1(loop):
    out, before = loop["out"], loop["before"]
    assert [r["iteration"] for r in loop["first"]] == [0, 1]
    assert loop["final"][:2] == before["records"]
    model = out / "iter-01" / "model.pt"
    assert (model.stat().st_mtime_ns, model.read_bytes()) == before["model"]
    assert not (out / ".iter-02.stage-killed").exists() and not (out / "iter-02" / "junk").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # a resumed run that is complete does nothing
    again = out / "iter-02" / "model.pt"
    stamp = again.stat().st_mtime_ns
    assert explore(ALA_PDB, out, iterations=2, resume=True,
                   **TINY) == loop["final"]
    assert again.stat().st_mtime_ns == stamp
    with pytest.raises(NCTInputError, match=r"other than .*\(seed\)"):
        explore(ALA_PDB, out, iterations=3, resume=True, seed=1, **TINY)


def test_biased_rounds_keep_the_kinetic_objective_when_asked(tmp_path):
    train = {**TINY["train"], "kinetic_weight": 1.0, "lag_ps": 0.2, "biased_kinetics": True}
    explore(ALA_PDB, tmp_path / "run", iterations=2, **{**TINY, "train": train})
    # round 2 fits the plain start and round 1's biased run, weighted, and the kinetic
    # objective on the unweighted lagged pairs of both
    training = NCTModel.load(tmp_path / "run" / "iter-02" / "model.pt").info.training
    assert training.weights is not None and training.kinetic.weight == 1.0
    assert training.kinetic.lag_frames == 2


def test_start_trajectories_replace_plain_md(tmp_path, ala_pdb, write_h5):
    start = write_h5(tmp_path / "start.h5", n_frames=60)
    out = tmp_path / "run"
    records = explore(ala_pdb, out, start=[start], iterations=1, **TINY)
    copy = out / "iter-00" / "start-00.h5"
    assert records[0]["files"] == ["iter-00/start-00.h5"]
    assert copy.read_bytes() == start.read_bytes()  # copied whole, velocities included
    assert records[0]["ns"]["plain"] == pytest.approx(0.03)  # 60 frames 0.5 ps apart
    assert records[1]["ns"]["total"] == pytest.approx(0.033)


def test_weights_and_new_states():
    plain = Run(None, 0, np.zeros(3), np.zeros(3))
    biased = Run(None, 1, np.array([0.0, 0.0, -np.inf, -np.inf]), np.arange(1.0, 5.0))
    w = combined_weights([plain, biased])
    np.testing.assert_allclose(w, [1, 1, 1, 1, 1, 0, 0])  # each run sums to its Kish ESS
    # populations: the plain start (one basin, not the equilibrium between basins) leaves
    np.testing.assert_allclose(population_weights([plain, biased]), [0, 0, 0, 1, 1, 0, 0])
    np.testing.assert_allclose(population_weights([plain]), [1, 1, 1])
    labels = np.array([0, 0, 0, 0, 1, 2, 2, 3, 3, 3])
    iteration = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 1])
    biased_ps = np.array([0, 0, 0, 1, 2, 3, 4, 0, 5, 6.0])
    new = np.array([False] * 3 + [True] + [True, False, False] + [False, True, False])
    states = count_states(labels, iteration, biased_ps, np.ones(10), new)
    # state 1: all its frames flagged; 0 and 3: a flagged frame among others; 2: none flagged
    assert states["n_visited"] == 4 and [s["new"] for s in states["visited"]] == [
        False, True, False, False] and states["n_new"] == 1
    assert [s["first_visit_biased_ps"] for s in states["visited"]] == [0.0, 2.0, 3.0, 0.0]


def _cli_error(capsys, *args) -> str:
    assert main(["explore", *map(str, args), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err


def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path, ala_pdb, ala, write_h5, capsys):
    out = tmp_path / "out"
    base = ("--pdb", ala_pdb, "--solvent", "vacuum", "--out", out)
    assert "--iterations must be a positive integer" in _cli_error(capsys, *base,
                                                                    "--iterations", 0)
    wrong = tmp_path / "part.h5"
    with md.formats.HDF5TrajectoryFile(str(wrong), "w") as handle:
        handle.topology = ala.topology.subset(range(12))
        handle.write(ala.xyz[:, :12])
    err = _cli_error(capsys, *base, "--start", wrong)
    assert f"start trajectory {wrong} does not match" in err and "12 atoms, the PDB 22" in err
    ala.atom_slice(range(12)).save_pdb(str(tmp_path / "part.pdb"))
    err = _cli_error(capsys, "--pdb", tmp_path / "part.pdb", "--out", out)
    assert "cannot parameterise" in err
    assert not out.exists()
    out.mkdir()
    err = _cli_error(capsys, *base)
    assert f"output folder {out} exists; pass --resume" in err and not list(out.iterdir())
    with pytest.raises(NCTInputError, match="not an nct-md explore folder"):
        explore(ala_pdb, out, resume=True, **TINY)
    with pytest.raises(NCTInputError, match="train has unknown keys"):
        explore(ala_pdb, tmp_path / "x", **{**TINY, "train": {"epoch": 1}})
    with pytest.raises(NCTInputError, match="kinetic_weight > 0 needs unbiased"):
        explore(ala_pdb, tmp_path / "x", **{**TINY, "train": {"kinetic_weight": 1.0}})
    assert not (tmp_path / "x").exists()
