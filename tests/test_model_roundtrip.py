"""Spline-coupling and internal-coordinate models come back from their file unchanged.

A model fitted in memory, saved and loaded gives bit-identical outputs: latent positions (CVs),
configuration and phase-space log-densities, and samples drawn with the same seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nct_md.estimator import NCT
from nct_md.md.phase import load_phase_space
from nct_md.model import NCTModel

UNCONSTRAINED = sorted((Path(__file__).resolve().parent.parent / "data" /
                        "alanine-dipeptide-300K-unconstrained").glob("*.h5"))


@pytest.fixture(scope="module")
def data():
    """Every atom of two unconstrained trajectories, every 20th frame."""
    return load_phase_space(UNCONSTRAINED[:2], select="all", stride=20)


@pytest.mark.parametrize("coupling, internal", [("spline", False), ("affine", True),
                                                ("spline", True)],
                         ids=["spline", "internal", "internal-spline"])
def test_saved_model_gives_identical_outputs(data, tmp_path, coupling, internal):
    model = NCT(n_couplings=2, hidden=8, epochs=1, coupling=coupling,
                internal_coordinates=internal, objective="configuration",
                progress=False).fit(data).fetch_model()
    model.save(tmp_path / "m.pt")
    loaded = NCTModel.load(tmp_path / "m.pt")
    assert loaded.architecture == model.architecture
    assert loaded.architecture["coupling"] == coupling
    assert bool(loaded.architecture.get("internal_coordinates")) == internal
    assert [type(layer) for layer in loaded.flow.layers] == \
        [type(layer) for layer in model.flow.layers]
    before, after = model.state_dict(), loaded.state_dict()
    assert list(before) == list(after)
    assert all(torch.equal(before[k], after[k]) for k in before)

    p, q = data.p[:64], data.q[:64]
    x_q = model.preprocessing(p, q)[1]

    @torch.no_grad()
    def outputs(m: NCTModel) -> dict[str, torch.Tensor]:
        samples, log_rho = m.sample_configurations(16, torch.Generator().manual_seed(3))
        return {"latent positions": m.latent_positions(q),
                "configuration log-density": m.configuration_log_prob(x_q),
                "phase-space log-density": m.log_prob(p, q),
                "samples": samples, "sample log-density": log_rho}

    for (name, a), b in zip(outputs(model).items(), outputs(loaded).values(), strict=True):
        assert torch.isfinite(a).all(), name
        assert torch.equal(a, b), name
    assert np.array_equal(model.frequencies, loaded.frequencies)
