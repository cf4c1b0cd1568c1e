"""The slow-CV bench's scoring of one method: every lag, the acceptance lag in the main field."""

from pathlib import Path

import pytest

from bench.bench_slow_cvs import LAG_PS, LAGS_PS, run_set
from nct_md.demo import split_trajectories
from nct_md.errors import NCTInputError

DATA = Path(__file__).parents[1] / "data"


@pytest.mark.filterwarnings("ignore")
def test_tica_row_is_scored_at_every_lag(tmp_path):
    train, test = split_trajectories(DATA)
    (row,) = run_set("ala2", train[:2], test[:1], 0, ["tica"], tmp_path)
    by_lag = row["vamp2_discrete_by_lag"]
    assert list(by_lag) == [f"{ps:g}" for ps in LAGS_PS]
    assert by_lag[f"{LAG_PS:g}"] == row["vamp2_discrete"]
    assert all(1.0 <= v <= 3.0 for v in by_lag.values())
    assert by_lag["1"] > by_lag["10"]  # the held-out kinetics decay with the lag
    assert 0.0 <= row["basin_accuracy"] <= 1.0 and len(row["mi_psi"]) == 2


@pytest.mark.filterwarnings("ignore")
def test_resolution_of_the_score_is_the_spread_over_kmeans_seeds(tmp_path):
    from bench import vamp2_resolution

    train, test = split_trajectories(DATA)
    out = vamp2_resolution.spread(train[:2], test[:1])
    assert list(out) == [f"{ps:g}" for ps in (*LAGS_PS, 2 * LAGS_PS[-1])]
    for lag in out.values():
        assert len(lag["by_kmeans_seed"]) == len(vamp2_resolution.KMEANS_SEEDS)
        assert 1.0 <= lag["min"] <= lag["max"] <= 3.0
    assert out["1"]["min"] > out["20"]["max"]
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    with pytest.raises(NCTInputError, match="exists"):
        vamp2_resolution.main([str(tmp_path), "--out", str(existing)])
    assert existing.read_text() == "{}"
