"""``bench.bench_explore``: a smoke run of all four arms at the smallest settings (vacuum, a few
ps, a tiny NCT model), its JSON and table, and the TICA CV that OpenMM biases."""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest
import torch
from conftest import ALA_PDB
from deeptime.decomposition import TICA

from bench import bench_explore
from bench import explore_arms as arms
from bench.explore_arms import TICAFrame
from nct_md.errors import NCTInputError

#: every arm at the smallest settings that still run it: 10 ps plain, 1 x 3 ps biased
SMOKE = ["--seeds", "0", "--plain-ns", "0.01", "--iterations", "1", "--ns-per-iteration",
         "0.003", "--reference-ns", "0.005", "--tica-lag-ps", "1", "--solvent", "vacuum",
         "--save-every-ps", "0.1", "--equilibrate-ps", "0.2", "--platform", "Reference",
         "--pdb", str(ALA_PDB), "--train", "n_couplings=1", "hidden=16", "depth=1", "epochs=1",
         "restarts=1", "kinetic_weight=0", "batch_size=64"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "explore.json"
    printed = bench_explore.main([*SMOKE, "--out", str(out)])
    return {"out": out, "printed": printed, "json": json.loads(out.read_text())}


def test_json_has_every_arm_seed_and_setting(smoke):
    result = smoke["json"]
    assert result == json.loads(json.dumps(smoke["printed"]))
    settings = result["settings"]
    assert settings["iterations"] == 1 and settings["fresh_ns"] == 0.003
    assert settings["train"]["hidden"] == 16 and settings["nct_bias"]["pace"] == 250
    assert settings["ideal"] == {"height": 1.2, "width_rad": 0.35, "bias_factor": 6.0,
                                 "pace_ps": 1.0}
    assert result["starts"]["0"]["positive_core_frames"] == 0
    assert list(result["seeds"]) == list(bench_explore.DEFAULT_ARMS)
    for arm, seeds in result["seeds"].items():
        (row,) = seeds
        assert row["seed"] == 0 and row["wall_s"] > 0, arm
        assert {"first_positive_core_biased_ps", "delta_f_kt", "fresh"} <= set(row)
        fresh = row["fresh"]
        assert fresh["rate_per_ns"] == pytest.approx(fresh["committed_transitions"] / fresh["ns"])
        stats = result["arms"][arm]
        assert stats["rate_per_ns"]["values"] == [fresh["rate_per_ns"]]
    assert result["seeds"]["plain"][0]["fresh"]["ns"] == pytest.approx(0.013)
    assert [r["iteration"] for r in result["seeds"]["nct"][0]["iterations"]] == [0, 1]
    reference = result["reference"]
    assert reference["ns"] == 0.005 and len(reference["blocks_kt"]) == 5
    assert reference["fes_delta_f_kt"] is not None
    assert "nct_reaches_positive_core_within_500_ps" in result["acceptance"]


def test_table_shows_the_arms_side_by_side(smoke):
    lines = smoke["json"]["table"].splitlines()
    assert lines[0].startswith("| arm | first Phi>0-core visit")
    assert [line.split("|")[1].strip() for line in lines[2:6]] == [
        "NCT loop", "TICA loop", "Phi/Psi metad (ideal)", "plain MD"]
    assert "Reference ((Phi, Psi) well-tempered metadynamics, 0.005 ns)" in lines[-1]


def test_biased_variables_are_the_intended_cvs(smoke):
    work = smoke["out"].with_name("explore-runs") / "seed-0"
    ideal = np.loadtxt(work / "ideal" / "run" / "colvar.csv", delimiter=",", skiprows=1)
    header = (work / "ideal" / "run" / "colvar.csv").read_text().splitlines()[0].split(",")
    assert header == ["time_ps", "cv1", "cv2", "bias_kjmol", "rbias_kjmol", "temperature_k",
                      "phi_rad", "psi_rad"]
    np.testing.assert_allclose(np.angle(np.exp(1j * (ideal[:, 1:3] - ideal[:, 6:8]))), 0,
                               atol=1e-4)
    folder = work / "tica" / "iter-01"
    module = torch.jit.load(str(folder / "tica_cv.pt"))
    traj = md.load(str(folder / "trajectory.h5"))
    x = torch.from_numpy(traj.xyz[:, list(module.atom_indices)].reshape(len(traj), -1)
                         .astype(np.float64))
    colvar = np.loadtxt(folder / "colvar.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(module(x).numpy(), colvar[:, 1:3], atol=1e-4)


def test_tica_module_equals_tica_of_superposed_heavy_atoms(smoke):
    start = smoke["out"].with_name("explore-runs") / "seed-0" / "start.h5"
    frame, traj = TICAFrame(start, 300.0), md.load(str(start))
    module, components = frame.fit([traj], lag=5)
    expected = TICA(lagtime=5, dim=2, epsilon=arms.TICA_EPSILON_NM2).fit(
        [frame.positions(traj)]).fetch_model().transform(frame.positions(traj))
    np.testing.assert_allclose(components, expected, atol=1e-10)
    x = torch.from_numpy(traj.xyz[:, frame.atom_indices].reshape(len(traj), -1)
                         .astype(np.float64))
    np.testing.assert_allclose(module(x).numpy(), expected, atol=1e-5)
    values, jacobian = torch.jit.script(module).jacobian(x[:2])
    x_grad = x[:2].clone().requires_grad_(True)
    autograd = torch.autograd.grad(module(x_grad)[:, 1].sum(), x_grad)[0]
    np.testing.assert_allclose(jacobian[:, 1].numpy(), autograd.numpy(), atol=1e-10)


def test_existing_output_is_refused(smoke):
    with pytest.raises(NCTInputError, match="exists"):
        bench_explore.parse([*SMOKE, "--out", str(smoke["out"])])


def test_delta_f_estimators_and_summary():
    phi = np.array([-1.5, -1.5, -1.5, 1.0, 0.0, 3.0])  # 3 negative-core, 1 positive-core frame
    assert arms.delta_f(phi, np.zeros(6)) == pytest.approx(np.log(3))
    assert arms.delta_f(phi, np.log([1, 1, 1, 3, 1, 1])) == pytest.approx(0.0)
    assert arms.delta_f(phi[:3], np.zeros(3)) is None
    blocks = arms.block_delta_f(np.tile(phi, 4), np.zeros(24), n_blocks=4, skip_fraction=0.0)
    assert blocks["blocks_kt"] == pytest.approx([np.log(3)] * 4) and blocks["block_sem_kt"] == 0
    # a flat surface: dF is minus the log of the cores' width ratio (1.7 rad over 2.0 rad)
    assert arms.fes_delta_f(np.zeros((721, 721)), 2.5) == pytest.approx(-np.log(1.7 / 2.0),
                                                                        abs=0.01)
    row = {"first_positive_core_biased_ps": 100.0, "delta_f_kt": 2.0,
           "fresh": {"rate_per_ns": 8.0}}
    tica = row | {"first_positive_core_biased_ps": None, "fresh": {"rate_per_ns": 2.0}}
    results = {"nct": [row, row | {"delta_f_kt": 3.0}], "tica": [tica, tica],
               "ideal": [row | {"fresh": {"rate_per_ns": 10.0}}] * 2}
    reference = {"ns": 10.0, "delta_f_kt": 2.2, "block_sem_kt": 0.1, "block_mean_kt": 2.2,
                 "fes_delta_f_kt": 2.3}
    summary = bench_explore.summarise(results, reference, biased_ns=1.5)
    nct = summary["arms"]["nct"]["delta_f_kt"]
    assert nct["mean"] == 2.5 and nct["sem"] == pytest.approx(0.5)
    assert nct["minus_reference_kt"] == pytest.approx(0.3)
    assert nct["error_kt"] == pytest.approx(np.hypot(0.5, 0.1))
    assert summary["acceptance"] == {
        "nct_reaches_positive_core_within_500_ps": True, "biased_ns_at_most_5": True,
        "nct_rate_over_ideal": 0.8, "nct_rate_at_least_0.5x_ideal": True,
        "nct_rate_over_tica": 4.0, "nct_rate_at_least_2.0x_tica": True,
        "nct_delta_f_within_0.5_kt": True}
    text = bench_explore.table(summary, reference)
    assert "| NCT loop | 100 (100, 100) | 8.0 (8.0, 8.0) | 2.50 +- 0.50 | +0.30 +- 0.51 |" in text
    assert "| TICA loop | - (-, -) | 2.0 (2.0, 2.0) |" in text


def test_runs_of_other_seeds_merge_into_one_record(smoke, tmp_path):
    other = json.loads(smoke["out"].read_text())
    for rows in other["seeds"].values():
        rows[0]["seed"] = 1
    other["settings"]["seeds"] = [1]
    second = tmp_path / "seed1.json"
    second.write_text(json.dumps(other))
    merged = bench_explore.main(["--merge", str(tmp_path / "all.json"), str(smoke["out"]),
                                 str(second)])
    assert merged["settings"]["seeds"] == [0, 1]
    assert [r["seed"] for r in merged["seeds"]["nct"]] == [0, 1]
    assert merged["arms"]["nct"]["rate_per_ns"]["values"] == 2 * smoke["json"]["arms"]["nct"][
        "rate_per_ns"]["values"]
    assert merged["reference"] == smoke["json"]["reference"]
    other["settings"]["iterations"] = 2
    second.write_text(json.dumps(other))
    with pytest.raises(NCTInputError, match="iterations"):
        bench_explore.merge([smoke["out"], second], tmp_path / "bad.json")


def test_an_arm_that_fails_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    def blow_up(*args):
        raise RuntimeError("Traceback of TorchScript ...\nRuntimeError: linalg.eigh: failed")

    monkeypatch.setattr(bench_explore, "tica_arm", blow_up)
    argv = [*SMOKE, "--arms", "tica", "plain", "--reference-ns", "0"]
    result = bench_explore.main([*argv, "--out", str(tmp_path / "run.json")])
    assert result["failed"] == [{"arm": "tica", "seed": 0,
                                 "error": "RuntimeError: linalg.eigh: failed"}]
    assert result["arms"]["tica"]["rate_per_ns"]["median"] is None
    assert result["seeds"]["plain"][0]["fresh"]["rate_per_ns"] is not None
    assert "Failed (left out of the statistics): TICA loop seed 0" in result["table"]


def test_ideal_arm_with_the_loops_bias(tmp_path):
    """``--arms ideal_loop_bias``: one fresh (Phi, Psi) run with the loops' height, bias factor
    and pace, the bias every step."""
    smoke = [*SMOKE, "--arms", "ideal_loop_bias"]
    smoke[smoke.index("--reference-ns") + 1] = "0"
    result = bench_explore.main([*smoke, "--out", str(tmp_path / "same.json")])
    (row,) = result["seeds"]["ideal_loop_bias"]
    assert row["first_positive_core_biased_ps"] is None and row["fresh"]["ns"] == 0.003
    folder = tmp_path / "same-runs" / "seed-0" / "ideal_loop_bias" / "fresh"
    metad = json.loads((folder / "metad.json").read_text())
    assert {k: metad[k] for k in ("height_kjmol", "bias_factor", "pace_steps", "bias_interval")
            } == {"height_kjmol": 2.0, "bias_factor": 10.0, "pace_steps": 250, "bias_interval": 1}
    table = np.loadtxt(folder / "colvar.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(np.angle(np.exp(1j * (table[:, 1:3] - table[:, 6:8]))), 0,
                               atol=1e-4)
    assert "Phi/Psi metad, the loops' bias" in result["table"]
