"""NCT CVs inside OpenMM: PythonForce CVs in a CustomCVForce, Metadynamics, ``nct-md metad``."""

from __future__ import annotations

import json
import pickle

import mdtraj as md
import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from nct_md.cli import main
from nct_md.export import (
    add_cv_force,
    bias_variables,
    cv_forces,
    cv_module,
    default_bias,
    metad,
    phi_sign_changes,
    run_metadynamics,
    save_torchscript,
    torch_forces,
)
from nct_md.export.metad import bias_interval_for
from nct_md.export.openmm_force import _EVALUATORS, CVComponent, CVEvaluator, CVTerm
from nct_md.md.langevin import mts_langevin_integrator
from nct_md.md.reweight import bias_offset
from nct_md.model import NCTModel


@pytest.fixture(scope="module")
def model(small_model_file) -> NCTModel:
    return NCTModel.load(small_model_file)


@pytest.fixture(scope="module")
def cv_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("cvs") / "cvs.pt"
    save_torchscript(model, path, n_cvs=2)
    return path


@pytest.fixture
def structure(ala_pdb) -> app.PDBFile:
    return app.PDBFile(str(ala_pdb))


def make_system(structure: app.PDBFile) -> openmm.System:
    ff = app.ForceField("amber99sbildn.xml", "amber99_obc.xml")
    return ff.createSystem(structure.topology, nonbondedMethod=app.NoCutoff,
                           constraints=app.HBonds)


def make_context(system: openmm.System, structure: app.PDBFile, steps: int = 200,
                 seed: int = 1) -> openmm.Context:
    """A Reference-platform context run for ``steps`` 1 fs steps (a thermal, varied structure)."""
    integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.001)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(structure.positions)
    context.setVelocitiesToTemperature(300, seed)
    integrator.step(steps)
    return context


def positions(context: openmm.Context) -> np.ndarray:
    return context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(
        unit.nanometer)


def model_cvs(model: NCTModel, structure: app.PDBFile, xyz: np.ndarray) -> np.ndarray:
    traj = md.Trajectory(xyz[None], md.Topology.from_openmm(structure.topology))
    return model.transform(traj, n_cvs=2)[0]


def test_custom_cv_force_values_equal_the_model(model, cv_file, structure):
    system = make_system(structure)
    force = add_cv_force(system, cv_file, "0")
    context = make_context(system, structure)
    for _ in range(3):
        context.getIntegrator().step(100)
        values = np.asarray(force.getCollectiveVariableValues(context))
        np.testing.assert_allclose(values, model_cvs(model, structure, positions(context)),
                                   rtol=0, atol=1e-5)


def test_bias_forces_are_minus_the_energy_gradient(model, structure):
    """Forces of ``E = 3 cv1 - 2 cv2`` (group 1) against central differences of E (float64)."""
    system = make_system(structure)
    force = add_cv_force(system, cv_module(model, dtype=torch.float64), "3*cv1 - 2*cv2")
    force.setForceGroup(1)
    context = make_context(system, structure)
    xyz = positions(context)
    state = context.getState(getForces=True, groups={1})
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    atoms = model.select_atoms(md.Topology.from_openmm(structure.topology))
    others = np.setdiff1d(np.arange(len(xyz)), atoms)
    assert np.all(forces[others] == 0) and np.abs(forces[atoms]).max() > 1.0

    def energy(shifted):
        context.setPositions(shifted)
        return context.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(
            unit.kilojoule_per_mole)

    h = 1e-4
    for atom in atoms[[0, 4, 9]]:
        for axis in range(3):
            step = np.zeros_like(xyz)
            step[atom, axis] = h
            numeric = -(energy(xyz + step) - energy(xyz - step)) / (2 * h)
            assert abs(numeric - forces[atom, axis]) < 1e-5 * max(1.0, abs(numeric))


def test_forces_survive_pickle_and_xml_serialization(model, cv_file, structure):
    system = make_system(structure)
    add_cv_force(system, cv_file, "0")
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    cv = next(f for f in copy.getForces() if isinstance(f, openmm.CustomCVForce))
    context = make_context(copy, structure)
    np.testing.assert_allclose(cv.getCollectiveVariableValues(context),
                               model_cvs(model, structure, positions(context)), atol=1e-5)


def test_pickled_terms_share_or_rebuild_the_evaluator(cv_file):
    term = CVTerm(CVEvaluator(torch.jit.load(str(cv_file))), 1)
    clone = pickle.loads(pickle.dumps(term))
    assert clone.evaluator is term.evaluator and clone.index == 1
    _EVALUATORS.pop(term.evaluator.key)  # as in another process: rebuilt from the bytes
    rebuilt = pickle.loads(pickle.dumps(term))
    assert rebuilt.evaluator is not term.evaluator
    xyz = np.random.default_rng(0).normal(scale=0.3, size=(term.evaluator.n_atoms, 3))
    for a, b in zip(rebuilt.evaluator(xyz), term.evaluator(xyz), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bias_variables_and_defaults(model, cv_file):
    lows, highs, widths = default_bias(model, 2)
    w = model.frequencies[:2]
    np.testing.assert_allclose(highs, 6 / w)
    np.testing.assert_allclose(lows, -6 / w)
    np.testing.assert_allclose(widths, 0.3 / w)
    variables = bias_variables(cv_file, lows, highs, widths)
    assert [v.minValue for v in variables] == lows and [v.biasWidth for v in variables] == widths
    assert all(isinstance(v.force, openmm.PythonForce) for v in variables)
    with pytest.raises(ValueError, match="bias 1 to 2 CVs"):
        bias_variables(cv_file, lows * 2, highs * 2, widths * 2)


def test_torch_force_component(model, cv_file, structure):
    """The module TorchForce would run: all-particle positions -> one CV."""
    xyz = np.asarray(structure.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    expected = model_cvs(model, structure, xyz)
    for index in range(2):
        component = torch.jit.script(CVComponent(torch.jit.load(str(cv_file)), index))
        value = component(torch.from_numpy(xyz.astype(np.float32)))
        assert value.shape == () and abs(float(value) - expected[index]) < 1e-5


def test_torch_forces_need_openmm_torch(cv_file):
    try:
        import openmmtorch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError):
            torch_forces(cv_file)
    else:
        assert len(torch_forces(cv_file)) == 2


def test_phi_sign_changes():
    assert phi_sign_changes(np.array([-1.0, -0.5, 0.2, 0.3, -0.1, -3.0])) == 2
    assert phi_sign_changes(np.array([-1.0, -2.0])) == 0


def test_metadynamics_20_ps(model, ala_pdb, tmp_path, monkeypatch):
    # a heating limit below 0 makes the thermostat's own temperature a warning: its plumbing
    monkeypatch.setattr(metad, "HEATING_LIMIT", -0.5)
    with pytest.warns(RuntimeWarning, match="the bias heats the system"):
        result = run_metadynamics(model, ala_pdb, tmp_path, ns=0.02, pace=250, progress=False)
    assert result["n_frames"] == 20 and result["ns_per_day"] > 0
    table = np.loadtxt(tmp_path / "colvar.csv", delimiter=",", skiprows=1)
    header = (tmp_path / "colvar.csv").read_text().splitlines()[0].split(",")
    assert header == ["time_ps", "cv1", "cv2", "bias_kjmol", "rbias_kjmol", "temperature_k",
                      "phi_rad", "psi_rad"]
    assert table.shape == (20, 8)
    # c(t) = bias - rbias: positive once Gaussians are down (module reweight)
    offset = table[:, 3] - table[:, 4]
    assert (offset > 0).all()
    # 51 degrees of freedom at 300 K: each frame within ~20 %, 20 frames within ~5 %
    assert result["mean_temperature_k"] == pytest.approx(table[:, 5].mean())
    assert 255 < result["mean_temperature_k"] < 345
    np.testing.assert_allclose(table[:, 0], np.arange(1, 21))
    bias = table[:, 3]
    # Gaussians are deposited where the system is: the bias there is positive and grows
    assert (bias > 0).all() and bias.max() > 1.5 * bias[0]
    traj = md.load(str(tmp_path / "trajectory.h5"))
    assert traj.n_frames == 20
    np.testing.assert_allclose(table[:, 1:3], model.transform(traj, 2), atol=1e-5)
    free_energy = np.load(tmp_path / "free_energy.npy")
    summary = json.loads((tmp_path / "metad.json").read_text())
    assert free_energy.shape == tuple(reversed(summary["grid_points"]))
    assert free_energy.min() < 0
    assert list((tmp_path / "bias").glob("bias_*.npy"))
    assert summary["phi_sign_changes"] == phi_sign_changes(table[:, 6])
    # the last frame's offset from the final grid, as metad_log_weights' reader would see it
    assert offset[-1] == pytest.approx(bias_offset(
        -(summary["bias_factor"] - 1) / summary["bias_factor"] * free_energy, 300.0,
        summary["bias_factor"], [False, False]), abs=1e-6)
    assert summary["bias_interval"] == 5  # the default with pace 250 and 500 steps per frame


def test_bias_interval_default_and_checks():
    assert bias_interval_for(None, 250, 500) == 5
    assert bias_interval_for(None, 100, 8) == 4
    assert bias_interval_for(None, 1, 500) == 1
    assert bias_interval_for(2, 250, 500) == 2
    with pytest.raises(ValueError, match="must divide --pace"):
        bias_interval_for(4, 250, 500)
    with pytest.raises(ValueError, match="bias_interval must be a positive integer"):
        bias_interval_for(0, 250, 500)


@pytest.mark.parametrize("interval", [1, 5])
def test_bias_evaluated_every_interval_and_gaussians_every_pace(model, ala_pdb, tmp_path,
                                                                monkeypatch, interval):
    """2 ps (1,000 steps of 2 fs), Gaussians every 50 steps: the CVs are evaluated at about
    1,000 / interval positions, and Gaussians are added at multiples of 0.1 ps."""
    evaluated, deposited, stepping = [], [], []
    call, add, step = CVEvaluator.__call__, app.Metadynamics._addGaussian, app.Metadynamics.step

    def counting_call(self, positions):  # new positions while stepping (not minimising)
        if stepping and (self._positions is None
                         or not np.array_equal(positions, self._positions)):
            evaluated.append(1)
        return call(self, positions)

    def flagged_step(self, simulation, steps):
        stepping.append(1)
        step(self, simulation, steps)

    def recording_add(self, position, height, context):
        deposited.append(context.getState().getTime().value_in_unit(unit.picosecond))
        return add(self, position, height, context)

    monkeypatch.setattr(CVEvaluator, "__call__", counting_call)
    monkeypatch.setattr(app.Metadynamics, "_addGaussian", recording_add)
    monkeypatch.setattr(app.Metadynamics, "step", flagged_step)
    result = run_metadynamics(model, ala_pdb, tmp_path, ns=0.002, pace=50,
                              bias_interval=interval, progress=False)
    assert result["bias_interval"] == interval
    # one evaluation per integrator step (frames and Gaussians read the last positions)
    assert 1000 / interval <= len(evaluated) <= 1000 / interval + 2
    np.testing.assert_allclose(deposited, 0.1 * np.arange(1, 21), atol=1e-9)


def test_impulse_integrator_samples_the_boltzmann_distribution():
    """Independent particles, fast spring k_f (group 0) every 2 fs and slow spring k_s to ``a``
    (group 31) as an impulse every 5 steps: x has mean k_s a / (k_f + k_s) and variance
    kT / (k_f + k_s); a wrongly scaled impulse (once, or interval^2) misses both by > 30 %."""
    n, k_fast, k_slow, a, temperature = 300, 1000.0, 500.0, 0.1, 300.0
    system = openmm.System()
    fast = openmm.CustomExternalForce("0.5*kf*(x^2+y^2+z^2)")
    fast.addGlobalParameter("kf", k_fast)
    slow = openmm.CustomExternalForce("0.5*ks*(x-x0)^2")  # (the integrator has its own a, b)
    slow.addGlobalParameter("ks", k_slow)
    slow.addGlobalParameter("x0", a)
    slow.setForceGroup(31)
    for i in range(n):
        system.addParticle(12.0)
        fast.addParticle(i, [])
        slow.addParticle(i, [])
    system.addForce(fast)
    system.addForce(slow)
    integrator = mts_langevin_integrator(temperature, 2.0, 3, 31, {0}, 5)
    assert integrator.getStepSize().value_in_unit(unit.femtosecond) == pytest.approx(10.0)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.zeros((n, 3)))
    context.setVelocitiesToTemperature(temperature, 3)
    integrator.step(300)  # 3 ps: 3 friction times
    samples = []
    for _ in range(100):
        integrator.step(10)
        samples.append(positions(context)[:, 0])
    x = np.asarray(samples)
    kt = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * 300
    assert abs(x.mean() - k_slow * a / (k_fast + k_slow)) < 0.0015
    assert x.var() == pytest.approx(kt / (k_fast + k_slow), rel=0.1)


def test_cli_metad_bad_input(small_model_file, ala_pdb, tmp_path, capsys):
    base = ["metad", str(small_model_file), "--pdb", str(ala_pdb), "--ns", "0.001"]
    assert main([*base, "--out", str(tmp_path / "a"), "--platform", "Nope"]) == 2
    assert "platform 'Nope' is not available" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--widths", "0.1"]) == 2
    assert "give 2 positive --widths" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "c"), "--bias-factor", "1"]) == 2
    assert main([*base, "--out", str(tmp_path / "d"), "--pdb", str(tmp_path / "x.pdb")]) == 2
    assert "not found" in capsys.readouterr().err
    md.load(str(ala_pdb)).atom_slice(range(12)).save_pdb(str(tmp_path / "part.pdb"))
    assert main([*base, "--out", str(tmp_path / "e"), "--pdb", str(tmp_path / "part.pdb")]) == 2
    assert "this topology has 12 atoms" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "f"), "--bias-interval", "0"]) == 2
    assert "--bias-interval must be a positive integer" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "g"), "--bias-interval", "3"]) == 2
    assert "--bias-interval 3 must divide --pace (250 steps)" in capsys.readouterr().err


def test_cli_metad_runs(small_model_file, ala_pdb, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["metad", str(small_model_file), "--pdb", str(ala_pdb), "--ns", "0.002",
                 "--n-biased", "1", "--out", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_frames"] == 2 and "phi_sign_changes" in summary
    assert (out / "colvar.csv").read_text().startswith(
        "time_ps,cv1,bias_kjmol,rbias_kjmol,temperature_k,phi_rad")
    assert main(["metad", str(small_model_file), "--pdb", str(ala_pdb), "--ns", "0.002",
                 "--out", str(out), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err


def test_module_and_path_sources_agree(model, cv_file):
    """cv_forces accepts the eager module too; both give one force per CV on the model's atoms."""
    from_path, from_module = cv_forces(cv_file), cv_forces(cv_module(model))
    atoms = list(model.info.atom_indices)
    for force in (*from_path, *from_module):
        assert list(force.getParticles()) == atoms
    assert [f.getName() for f in from_path] == ["nct-cv1", "nct-cv2"]
