"""All-atom Hamiltonian, fine-tuning against OpenMM, and the `nct-md sample` command."""

from __future__ import annotations

import json
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from nct_md.cli import main
from nct_md.errors import NCTInputError
from nct_md.estimator import NCT
from nct_md.generate import diagnostics
from nct_md.generate.boltzmann import fine_tune_model
from nct_md.generate.hamiltonian import PhaseSpaceHamiltonian
from nct_md.generate.openmm_energy import OpenMMEnergy, system_from_pdb
from nct_md.md.phase import load_phase_space
from nct_md.model import NCTModel

DATA = Path(__file__).resolve().parent.parent / "data"
UNCONSTRAINED = sorted((DATA / "alanine-dipeptide-300K-unconstrained").glob("*.h5"))
PDB = DATA / "alanine-dipeptide.pdb"


@pytest.fixture(scope="module")
def data():
    return load_phase_space(UNCONSTRAINED, stride=5)


@pytest.fixture(scope="module")
def model_file(data, tmp_path_factory) -> Path:
    """A quickly fitted all-atom model (22 atoms, d = 60), saved to a file."""
    model = NCT(n_couplings=2, hidden=16, epochs=2, progress=False).fit(data).fetch_model()
    path = tmp_path_factory.mktemp("gen") / "ala-all.pt"
    model.save(path)
    return path


def test_hamiltonian_in_model_units(model_file, data):
    model = NCTModel.load(model_file).double()
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=0) as energy:
        hamiltonian = PhaseSpaceHamiltonian(model, energy)
        x_p, x_q = model.preprocessing(data.p[:8].double(), data.q[:8].double())
        h = hamiltonian(x_p, x_q)
        # kinetic part: rigid-body-free momenta give exactly |x_p|^2 / 2 in kT
        p, q = model.preprocessing.inverse(x_p, x_q)
        assert torch.allclose(hamiltonian.kinetic(p), 0.5 * x_p.square().sum(1))
        u = energy.evaluate(q.numpy())[0] / energy.kT
        # U agrees exactly; the kinetic part to ~4e-8 relative (~1e-6 kT of ~30 kT: the
        # preprocessing's kT and masses were computed in float32 before .double()), which h,
        # of order 1 kT after U cancels most of it, must not be compared relatively
        assert np.allclose(h.detach().numpy(), 0.5 * x_p.square().sum(1).numpy() + u, rtol=0,
                           atol=1e-5)
    with OpenMMEnergy.from_pdb(PDB, 350.0, n_workers=0) as hot, \
            pytest.raises(NCTInputError, match="350"):
        PhaseSpaceHamiltonian(model, hot)
    with OpenMMEnergy(system_from_pdb(PDB, constraints="hbonds"), 300.0, n_workers=0) as con, \
            pytest.raises(NCTInputError, match="constraints"):
        PhaseSpaceHamiltonian(model, con)


def test_fine_tune_records_hamiltonian_and_free_energy(model_file, data):
    model = NCTModel.load(model_file)
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=1, clip_above=1e4) as energy:
        result = fine_tune_model(model, energy, steps=3, data=data, batch_size=32,
                                 ml_weight=1.0, kl_weight=0.1, lr=1e-5, n_eval=64)
    assert len(result.history) == 3 and np.isfinite(result.free_energy.variational)
    assert "unconstrained" in model.info.constraints_handling
    assert model.info.hamiltonian.ml_weight == 1.0


def test_chirality_of_the_shipped_structure_and_data():
    assert diagnostics.l_chirality(md.load(str(PDB))).all()
    mirrored = md.load(str(PDB))
    mirrored.xyz[:, :, 0] *= -1
    assert not diagnostics.l_chirality(mirrored).any()


def test_kl_and_ess_helpers():
    assert diagnostics.kish_ess(np.zeros(10)) == pytest.approx(10)
    assert diagnostics.kish_ess(np.array([0.0, -np.inf, -np.inf])) == pytest.approx(1)
    rng = np.random.default_rng(0)
    phi, psi = rng.uniform(-180, 180, (2, 5000))
    w = np.ones(5000) / 5000
    kl = diagnostics.ramachandran_kl(phi, psi, phi, psi, w)
    assert kl["full"] == pytest.approx(0, abs=1e-9)
    shifted = diagnostics.ramachandran_kl(phi, psi, phi * 0.5, psi, w)
    assert shifted["full"] > 0.5
    # the floor of exact samples falls with the effective sample size
    small = diagnostics.kl_noise_floor(phi, psi, {"phi_negative": 100, "phi_positive": 100})
    large = diagnostics.kl_noise_floor(phi, psi, {"phi_negative": 5000, "phi_positive": 5000})
    assert small["within_basins"] > 2 * large["within_basins"] > 0
    assert np.isnan(diagnostics.kl_noise_floor(phi, psi, {"phi_negative": 0})["phi_negative"])


def test_sample_cli_writes_frames_weights_and_summary(model_file, tmp_path):
    out = tmp_path / "samples.h5"
    code = main(["sample", str(model_file), "--n", "64", "--out", str(out), "--workers", "1",
                 "--batch-size", "32", "--reference", str(UNCONSTRAINED[0]),
                 "--reference-stride", "20"])
    assert code == 0
    traj = md.load(str(out))
    assert traj.n_frames == 64 and traj.n_atoms == 22
    log_w = np.load(tmp_path / "samples.logw.npy")
    assert log_w.shape == (64,)
    summary_dir = tmp_path / "samples_summary"
    summary = json.loads((summary_dir / "summary.json").read_text())
    assert summary["n_samples"] == 64
    assert 0 <= summary["finite_energy_fraction"] <= 1
    assert 1 <= summary["kish_ess"] <= 64
    assert set(summary["ramachandran_kl_nats"]) >= {"full", "within_basins"}
    assert set(summary["ramachandran_kl_floor_nats"]) >= {"within_basins", "phi_negative"}
    assert (summary_dir / "energy_histograms.png").stat().st_size > 0
    assert (summary_dir / "phi_psi_profiles.png").stat().st_size > 0
    # the frames are whole molecules OpenMM evaluates to the energies behind the weights
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=0) as energy:
        e = energy.evaluate(traj.xyz)[0]
    assert np.isfinite(e).mean() == pytest.approx(summary["finite_energy_fraction"])


def test_sample_cli_rejects_bad_input(model_file, tmp_path, capsys):
    assert main(["sample", str(model_file), "--n", "0", "--out", str(tmp_path / "a.h5")]) == 2
    assert main(["sample", str(model_file), "--n", "5", "--out", str(tmp_path / "a.xyz")]) == 2
    assert main(["sample", str(tmp_path / "none.pt"), "--n", "5",
                 "--out", str(tmp_path / "a.pdb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("nct-md sample: error") for line in err)
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def internal_model(data) -> NCTModel:
    """An all-atom generator over internal coordinates, configuration likelihood (float64)."""
    return NCT(n_couplings=2, hidden=16, epochs=2, progress=False, internal_coordinates=True,
               objective="configuration", dtype=torch.float64).fit(data).fetch_model()


def test_internal_coordinate_model_saves_and_samples_consistently(internal_model, data,
                                                                   tmp_path):
    model = internal_model
    assert model.info.training.objective == "configuration"
    x_q = model.preprocessing.to_model(data.q[:16].double())
    path = tmp_path / "ic.pt"
    model.save(path)
    loaded = NCTModel.load(path)
    assert torch.allclose(loaded.configuration_log_prob(x_q), model.configuration_log_prob(x_q),
                          atol=1e-10)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        samples, log_rho = model.sample_configurations(32, generator)
        assert torch.allclose(model.configuration_log_prob(samples), log_rho, atol=1e-8)
    assert model.cvs(data.q[:4].double()).shape == (4, 2)


def test_configuration_weights_and_maxwell_boltzmann_momenta(internal_model):
    """draw_samples' weights equal -(ln rho(q) + U/kT - ln|det B|) from OpenMM directly."""
    from nct_md.generate.sample import draw_samples
    from nct_md.md.frame import eckart_log_volume

    model = internal_model
    pre = model.preprocessing
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=0) as energy:
        samples = draw_samples(model, energy, 400, batch_size=200, seed=3)
        u = energy.evaluate(samples.q.reshape(len(samples), -1, 3))[0] / energy.kT
    q = torch.as_tensor(samples.q)
    x_p, x_q = pre(torch.as_tensor(samples.p), q)
    with torch.no_grad():
        log_rho = model.configuration_log_prob(x_q).numpy()
    log_volume = eckart_log_volume(q, pre.reference, pre.masses).numpy()
    finite = np.isfinite(samples.log_weights)
    assert finite.all()
    np.testing.assert_allclose(samples.log_weights, -(log_rho + u - log_volume), atol=1e-6)
    # momenta: exactly Maxwell-Boltzmann, 1/2 kT per internal degree of freedom
    kinetic = 0.5 * x_p.square().numpy()
    assert abs(kinetic.mean() - 0.5) < 4 * kinetic.std() / np.sqrt(kinetic.size)


def test_fine_tune_with_the_configuration_objective(internal_model, data):
    import copy

    model = copy.deepcopy(internal_model)
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=1, clip_above=1e4) as energy:
        result = fine_tune_model(model, energy, steps=3, data=data, batch_size=32,
                                 ml_weight=1.0, kl_weight=1.0, lr=1e-4, n_eval=64,
                                 objective="configuration")
    assert len(result.history) == 3 and np.isfinite(result.free_energy.reweighted)
    assert model.info.hamiltonian.objective == "configuration"


def test_train_cli_internal_coordinates(tmp_path):
    out = tmp_path / "ic.pt"
    assert main(["train", str(UNCONSTRAINED[0]), "--select", "all", "--stride", "10",
                 "--epochs", "1", "--couplings", "2", "--hidden", "16", "--objective",
                 "configuration", "--internal-coordinates", "--out", str(out)]) == 0
    model = NCTModel.load(out)
    assert model.architecture["internal_coordinates"]
    assert model.info.training.objective == "configuration"
    assert main(["export", str(out), "--format", "torchscript",
                 "--out", str(tmp_path / "cv.pt")]) == 2
