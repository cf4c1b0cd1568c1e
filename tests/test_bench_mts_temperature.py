"""``bench.mts_temperature``: a smoke run of both integrators, its JSON and its refusals."""

from __future__ import annotations

import json

import pytest

from bench import mts_temperature
from nct_md.errors import NCTInputError


def test_smoke_run_writes_both_integrators(tmp_path):
    out = tmp_path / "mts.json"
    result = mts_temperature.main(["--ps", "5", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    middle, mts = result["runs"]
    assert (middle["integrator"], middle["interval"]) == ("LangevinMiddleIntegrator", 1)
    assert (mts["integrator"], mts["interval"]) == ("MTSLangevinIntegrator", 5)
    for run in result["runs"]:
        assert 200 < run["temperature_k"] < 400 and run["potential_sem_kjmol"] > 0
    assert result["temperature_difference_k"] == pytest.approx(
        mts["temperature_k"] - middle["temperature_k"])
    with pytest.raises(NCTInputError, match="exists"):
        mts_temperature.main(["--ps", "5", "--out", str(out)])
