"""Formulas defined once, checked against independent computations.

Log importance weights (sampling, free energies, losses), Phi/Psi, and the OpenMM System that
``nct-md simulate``, ``nct-md metad`` and the generator energies build.
"""

from __future__ import annotations

import math
from pathlib import Path

import mdtraj as md
import numpy as np
import openmm
import pytest
import torch
from openmm import app

from nct_md.cv.reference import backbone_torsions, phi_psi
from nct_md.errors import NCTInputError
from nct_md.export.metad import run_metadynamics
from nct_md.flows import SymplecticFlow, SymplecticScaling
from nct_md.generate.boltzmann import estimate_free_energy
from nct_md.generate.openmm_energy import system_from_pdb
from nct_md.latent import HarmonicLatent
from nct_md.md import simulate as simulate_module
from nct_md.md.simulate import read_structure, simulate
from nct_md.md.system import build_system, check_choices
from nct_md.model import NCTModel
from nct_md.train.losses import (
    configuration_free_energy,
    configuration_log_prob,
    log_weights,
    sample_configurations,
    sample_phase_space,
    variational_free_energy,
)

DATA = Path(__file__).resolve().parent.parent / "data"
W_MODEL = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
W_TARGET = torch.tensor([0.7, 1.0, 3.0], dtype=torch.float64)


class Harmonic:
    """``U(q) = sum (w q)^2 / 2`` in kT, with ``ln Z = sum ln(sqrt(2 pi) / w)``."""

    def __init__(self, w: torch.Tensor):
        self.w = w

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((self.w * q) ** 2).sum(1)

    def log_z(self) -> float:
        return float((0.5 * math.log(2 * math.pi) - self.w.log()).sum())


def _identity_pair(w: torch.Tensor) -> tuple[SymplecticFlow, HarmonicLatent]:
    return SymplecticFlow([]).double(), HarmonicLatent(len(w), w.clone()).double()


# --- log importance weights --------------------------------------------------------------------


def test_log_weights_of_an_exact_model_are_the_log_partition_function():
    """Model = target: ln w = ln Z of the target, for every sample (configurations and phase
    space), and every estimator built on log_weights returns -ln Z with zero spread."""
    flow, latent = _identity_pair(W_MODEL)
    potential = Harmonic(W_MODEL)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        q, log_p = sample_configurations(flow, latent, 256, 1.0, gen)
        log_w = log_weights(log_p, potential(q))
        np.testing.assert_allclose(log_w.numpy(), potential.log_z(), atol=1e-12)
        p, q, log_p = sample_phase_space(flow, latent, 256, 1.0, gen)
        log_w = log_weights(log_p, 0.5 * (p ** 2).sum(1) + potential(q))
        log_z = potential.log_z() + 0.5 * len(W_MODEL) * math.log(2 * math.pi)
        np.testing.assert_allclose(log_w.numpy(), log_z, atol=1e-12)
        assert math.isclose(float(latent.log_partition()), log_z, abs_tol=1e-12)

    loss, est = configuration_free_energy(flow, latent, potential, 128, generator=gen)
    assert math.isclose(float(loss.detach()), -potential.log_z(), abs_tol=1e-12)
    assert est.stderr < 1e-12 and math.isclose(est.ess, 1.0)

    def hamiltonian(p, q):
        return 0.5 * (p ** 2).sum(1) + potential(q)

    loss, est = variational_free_energy(flow, latent, hamiltonian, 128, generator=gen)
    assert math.isclose(float(loss.detach()), -log_z, abs_tol=1e-12)
    est = estimate_free_energy(flow, latent, potential, 100, batch_size=32, generator=gen,
                               objective="configuration")
    assert math.isclose(est.variational, -potential.log_z(), abs_tol=1e-12)
    assert math.isclose(est.reweighted, -potential.log_z(), abs_tol=1e-12)


def test_log_weights_against_scipy_gaussian_densities():
    """A scaled Gaussian model vs another harmonic target: ln w = -(ln N(q) + U(q) - ln V)."""
    from scipy.stats import norm

    flow = SymplecticFlow([SymplecticScaling(3)]).double()
    with torch.no_grad():
        flow.layers[0].log_scale.copy_(torch.tensor([0.3, -0.2, 0.1]))
    latent = HarmonicLatent(3, W_MODEL.clone()).double()
    potential = Harmonic(W_TARGET)
    with torch.no_grad():
        q, log_p = sample_configurations(flow, latent, 64, 1.0, torch.Generator().manual_seed(1))
        assert torch.allclose(configuration_log_prob(flow, latent, q), log_p, atol=1e-12)
        log_volume = torch.linspace(-1.0, 1.0, 64, dtype=torch.float64)
        log_w = log_weights(log_p, potential(q), log_volume).numpy()
    # q = Q s with s = exp(log_scale) and Q ~ N(0, 1 / w^2): q ~ N(0, (s / w)^2)
    scale = torch.exp(flow.layers[0].log_scale.detach()).numpy()
    sigma = scale / W_MODEL.numpy()
    expected_log_p = norm.logpdf(q.numpy(), scale=sigma).sum(1)
    expected = -(expected_log_p + potential(q).numpy() - log_volume.numpy())
    np.testing.assert_allclose(log_w, expected, atol=1e-10)


# --- Phi / Psi ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DATA / "alanine-dipeptide.pdb",
                                  DATA / "alanine-dipeptide-300K" / "phi-pos-c7ax-1.h5"])
def test_phi_psi_are_mdtraj_torsions_in_radians(path):
    traj = md.load(str(path), stride=20) if path.suffix == ".h5" else md.load(str(path))
    phi, psi = phi_psi(traj)
    assert phi.shape == psi.shape == (traj.n_frames,)
    np.testing.assert_array_equal(phi, md.compute_phi(traj)[1][:, 0])
    np.testing.assert_array_equal(psi, md.compute_psi(traj)[1][:, 0])
    assert np.all(np.abs(phi) <= np.pi) and np.all(np.abs(psi) <= np.pi)
    torsions = backbone_torsions(traj)
    assert torsions["phi"].dtype == np.float64
    np.testing.assert_array_equal(torsions["psi"], psi.astype(np.float64))


def test_phi_psi_refuses_a_topology_without_backbone(ala):
    cap = ala.atom_slice(ala.topology.select("resname ACE"))
    with pytest.raises(NCTInputError, match="no residue with both Phi and Psi"):
        phi_psi(cap)
    assert backbone_torsions(cap) == {}


# --- the OpenMM System -------------------------------------------------------------------------


def _forces(system: openmm.System) -> list[str]:
    """Each force serialized, in order (its class, parameters and every particle's terms)."""
    return [openmm.XmlSerializer.serialize(f) for f in system.getForces()]


@pytest.mark.parametrize(("forcefield", "solvent", "constraints"),
                         [("amber99sbildn", "obc", "hbonds"), ("amber14", "vacuum", "none")])
def test_system_matches_a_direct_openmm_build(ala_pdb, forcefield, solvent, constraints):
    """build_system (and the generator energies' system_from_pdb) = ForceField.createSystem."""
    from nct_md.md.choices import FORCEFIELDS

    protein, obc = FORCEFIELDS[forcefield]
    files = [protein, obc] if solvent == "obc" else [protein]
    pdb = app.PDBFile(str(ala_pdb))
    direct = app.ForceField(*files).createSystem(
        pdb.topology, nonbondedMethod=app.NoCutoff,
        constraints=app.HBonds if constraints == "hbonds" else None)
    ours = build_system(read_structure(ala_pdb, "PDB"), forcefield, solvent, constraints)
    assert _forces(ours) == _forces(direct)
    assert ours.getNumConstraints() == direct.getNumConstraints()
    assert _forces(system_from_pdb(ala_pdb, forcefield, solvent, constraints)) == _forces(direct)


def test_non_periodic_callers_refuse_explicit_water():
    with pytest.raises(NCTInputError, match="needs a periodic box"):
        check_choices("amber14", "tip3p", "none", periodic=False)
    with pytest.raises(NCTInputError, match="unknown solvent 'gbsa'; use one of obc, vacuum$"):
        check_choices("amber14", "gbsa", "none", periodic=False)
    check_choices("amber14", "tip3p", "none")


def test_metad_and_simulate_build_the_same_system(ala_pdb, tmp_path, monkeypatch):
    """For the same options both drivers hand OpenMM the same force terms."""
    built: dict[str, list[str]] = {}

    def spy(name):
        def build(*args, **kwargs):
            system = build_system(*args, **kwargs)
            built[name] = _forces(system)  # before metadynamics adds its bias force
            return system
        return build

    import nct_md.export.metad as metad_module

    monkeypatch.setattr(simulate_module, "build_system", spy("simulate"))
    monkeypatch.setattr(metad_module, "build_system", spy("metad"))
    options = dict(forcefield="amber99sbildn", solvent="obc", constraints="hbonds",
                   save_every_ps=0.01, seed=1, platform="Reference")
    simulate(ala_pdb, tmp_path / "md.h5", ns=1e-5, equilibrate_ps=0.0, progress=False,
             **options)
    model = NCTModel.load(DATA / "alanine-dipeptide-heavy.pt")
    result = run_metadynamics(model, ala_pdb, tmp_path / "metad", ns=1e-5, n_biased=1,
                              pace=1, progress=False, **options)
    assert built["metad"] == built["simulate"] and len(built["metad"]) >= 4
    assert result["n_frames"] == 1 and "phi_sign_changes" in result
