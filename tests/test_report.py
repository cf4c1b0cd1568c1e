"""`nct-md report`: the report.json contract and its plots."""

from __future__ import annotations

import json

import numpy as np

from nct_md.cli import main


def test_report_contract_and_plots(small_model_file, ala_data_files, tmp_path, capsys):
    out = tmp_path / "report"
    held = [str(ala_data_files[1]), str(ala_data_files[5])]
    assert main(["report", str(small_model_file), *held, "--lag-ps", "10", "--out",
                 str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["lag_ps"] == 10.0 and report["n_frames"] == 8000
    w = np.array(report["frequencies_per_ps"])
    assert len(w) == 24 and np.all(np.diff(w) >= 0) and np.all(w > 0)
    assert set(report["mutual_information"]) == {"cv1", "cv2", "cv3", "cv4"}
    for values in report["mutual_information"].values():
        assert set(values) == {"phi", "psi"} and all(v >= 0 for v in values.values())
    vamp = report["vamp2"]
    assert set(vamp["nct"]) == set(vamp["tica"]) == {"1", "2", "3", "4"}
    # VAMP-2 includes the constant function: between 1 and 1 + k
    for k in range(1, 5):
        assert 1.0 <= vamp["nct"][str(k)] <= 1 + k + 1e-6
        assert 1.0 <= vamp["tica"][str(k)] <= 1 + k + 1e-6
    assert vamp["tica"]["2"] >= vamp["tica"]["1"] - 1e-3
    discrete = report["vamp2_discrete"]
    assert "k-means" in discrete["protocol"] and "held-out" in discrete["protocol"]
    for method in ("nct", "tica"):
        assert set(discrete[method]) == {"1", "2", "3", "4"}
        assert all(1.0 <= discrete[method][str(k)] <= 1 + k + 1e-6 for k in range(1, 5))
    assert 1.0 <= vamp["phipsi"] <= 5.0
    accuracy = report["basin_classification"]
    assert 0 <= accuracy["nct_cv1_cv2"] <= 1 and 0 <= accuracy["tica_2"] <= 1
    assert "training trajectories" in report["protocol"]
    for name in ("spectrum", "fes_cv1_cv2", "ramachandran_by_cv", "cv_timeseries"):
        assert (out / f"{name}.png").stat().st_size > 5000
    assert "VAMP-2 NCT" in capsys.readouterr().out


def test_report_without_training_files_uses_blocks(small_model_file, ala_data_files, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(small_model_file), str(ala_data_files[3]), "--train",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "blocks" in report["protocol"]


def test_report_rejects_bad_lag(small_model_file, ala_data_files, tmp_path):
    assert main(["report", str(small_model_file), str(ala_data_files[3]), "--lag-ps", "0.5",
                 "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r" / "report.json").exists()
