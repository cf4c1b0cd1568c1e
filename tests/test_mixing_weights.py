"""Importance weights of a model whose flow mixes momenta into positions are computed, not refused.

``nct_md.generate.sample.draw_samples`` documents both branches: configuration-separable models
weigh configurations (momenta exact); other models sample phase space through the inverse flow,
``ln w = -(ln rho(z) + H(p, q) / kT - ln |det B(q)|)``. This checks the second branch against
an independent recomputation from the returned samples: the model's density by the *forward*
map (``log_prob``), the kinetic energy from Cartesian momenta and masses, the potential energy
the sampler reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import perturb

from nct_md.cli import main
from nct_md.flows import SymplecticFlow
from nct_md.flows.experimental import LinearSymplectic
from nct_md.generate import OpenMMEnergy, draw_samples
from nct_md.generate.hamiltonian import model_log_volume
from nct_md.model import NCTModel

DATA = Path(__file__).resolve().parent.parent / "data"
UNCONSTRAINED = sorted((DATA / "alanine-dipeptide-300K-unconstrained").glob("*.h5"))


def test_weights_of_a_momentum_mixing_model(tmp_path):
    out = tmp_path / "all-atom.pt"
    assert main(["train", str(UNCONSTRAINED[0]), "--select", "all", "--stride", "10",
                 "--epochs", "2", "--couplings", "1", "--hidden", "8", "--objective",
                 "configuration", "--out", str(out)]) == 0
    model = NCTModel.load(out).double()
    layer = perturb(LinearSymplectic(model.latent.n).double(), seed=0, scale=0.02)
    mixing = NCTModel(model.preprocessing, SymplecticFlow([*model.flow.layers, layer]),
                      model.latent, model.architecture, model.info)
    assert not mixing.configuration_separable
    with OpenMMEnergy.from_pdb(DATA / "alanine-dipeptide.pdb", 300.0, n_workers=0) as energy:
        samples = draw_samples(mixing, energy, 200, batch_size=64, seed=1)
        kT = energy.kT
    assert np.isfinite(samples.log_weights).all() and np.isfinite(samples.energies).all()

    p, q = torch.from_numpy(samples.p), torch.from_numpy(samples.q)
    masses = np.repeat(model.preprocessing.masses.double().numpy(), 3)  # amu per coordinate
    kinetic = (samples.p ** 2 / (2 * masses)).sum(1) / kT
    with torch.no_grad():
        log_rho = mixing.log_prob(p, q).numpy()
        log_volume = model_log_volume(mixing.preprocessing,
                                      mixing.preprocessing(p, q)[1]).numpy()
    expected = -(log_rho + kinetic + samples.energies / kT - log_volume)
    print("max |ln w - recomputed|:", np.abs(samples.log_weights - expected).max())
    # measured: 2e-4 (of weights near -1e5: this briefly trained Cartesian model clashes atoms)
    assert np.abs(samples.log_weights - expected).max() <= 2e-3
    # the momenta enter the weight (a separable model's weight would leave them out)
    without_momenta = -(log_rho + samples.energies / kT - log_volume)
    assert np.std(samples.log_weights - without_momenta) > 1.0
