"""Periodic boxes: frames wrapped atom by atom into a box give what the whole frames give."""

from __future__ import annotations

import json

import mdtraj as md
import numpy as np
import pytest

from nct_md.cli import main
from nct_md.md import io
from nct_md.md.phase import load_phase_space
from nct_md.model import NCTModel
from nct_md.viz import interpolate

N_FRAMES = 1200


def wrap_atoms(traj: md.Trajectory, lengths: float, angles: tuple[float, float, float],
               seed: int = 0) -> md.Trajectory:
    """Shift every frame by a random vector and wrap each atom into the cell on its own."""
    out = traj[:]
    out.unitcell_lengths = np.full((len(traj), 3), lengths, dtype=np.float32)
    out.unitcell_angles = np.tile(np.asarray(angles, dtype=np.float32), (len(traj), 1))
    box = out.unitcell_vectors.astype(np.float64)  # (n, 3, 3), rows are cell vectors
    shift = np.random.default_rng(seed).uniform(-3, 3, size=(len(traj), 1, 3))
    frac = np.einsum("fni,fij->fnj", traj.xyz + shift, np.linalg.inv(box))
    out.xyz = np.einsum("fnj,fji->fni", frac - np.floor(frac), box).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def whole_and_wrapped(ala_data_files, tmp_path_factory):
    """One shipped trajectory (first frames, whole) and copies wrapped into three boxes."""
    folder = tmp_path_factory.mktemp("pbc")
    whole = md.load(str(ala_data_files[0]))[:N_FRAMES]
    paths = {"whole": folder / "whole.h5"}
    whole.save_hdf5(str(paths["whole"]))
    # a cubic box barely wider than the molecule, a roomy one, and a triclinic (rhombic) cell
    for name, lengths, angles in [("cubic1.2", 1.2, (90, 90, 90)), ("cubic3", 3.0, (90, 90, 90)),
                                  ("triclinic", 2.2, (60, 60, 90))]:
        wrapped = wrap_atoms(whole, lengths, angles)
        spans = np.ptp(whole.xyz, axis=1).max()
        assert np.ptp(wrapped.xyz, axis=1).max() > spans  # really broken across the box
        paths[name] = folder / f"{name}.h5"
        wrapped.save_hdf5(str(paths[name]))
    return paths


WRAPPED = ["cubic1.2", "cubic3", "triclinic"]


@pytest.mark.parametrize("name", WRAPPED)
def test_training_input_and_cvs_match(whole_and_wrapped, small_model_file, name, tmp_path):
    """Training input (superposed positions) and `nct-md cvs` agree to 1e-5."""
    paths = whole_and_wrapped
    ref = load_phase_space(paths["whole"], temperature=300.0, select="heavy")
    data = load_phase_space(paths[name], temperature=300.0, select="heavy",
                            reference=ref.reference)
    np.testing.assert_allclose(data.q.numpy(), ref.q.numpy(), atol=1e-5)
    outs = {}
    for key in ("whole", name):
        outs[key] = tmp_path / f"{key}.npy"
        assert main(["cvs", str(small_model_file), str(paths[key]), "--n-cvs", "3",
                     "--out", str(outs[key])]) == 0
    np.testing.assert_allclose(np.load(outs[name]), np.load(outs["whole"]), atol=1e-5)


def test_trained_models_match(whole_and_wrapped, tmp_path):
    """`nct-md train` on wrapped frames gives the model that whole frames give (CVs to 1e-5)."""
    models = {}
    for key in ("whole", "cubic1.2"):
        models[key] = tmp_path / f"{key}.pt"
        assert main(["train", str(whole_and_wrapped[key]), "--temperature", "300",
                     "--epochs", "1", "--couplings", "1", "--hidden", "8",
                     "--out", str(models[key])]) == 0
    frames = io.load(whole_and_wrapped["whole"])[0].traj
    cvs = [NCTModel.load(models[key]).transform(frames, 3) for key in models]
    np.testing.assert_allclose(cvs[1], cvs[0], atol=1e-5)


def test_report_and_interpolation_match(whole_and_wrapped, small_model_file, tmp_path):
    """`nct-md report` and a latent interpolation agree on whole and wrapped frames.

    The report's scores are fits (TICA, VAMP, kNN MI) of inputs that differ by float32 rounding
    of the box shifts (~1e-7 nm), so they are compared to 1e-4 relative (the kNN mutual
    information to 5e-4: a swapped neighbour moves it by up to about 1/N, N = 1,200 frames here);
    the interpolated frames to 1e-5 nm."""
    reports = {}
    for key in ("whole", "triclinic"):
        out = tmp_path / key
        assert main(["report", str(small_model_file), str(whole_and_wrapped[key]), "--train",
                     "--lag-ps", "2", "--out", str(out)]) == 0
        reports[key] = json.loads((out / "report.json").read_text())
    for method in ("nct", "tica"):
        for k, value in reports["whole"]["vamp2"][method].items():
            assert reports["triclinic"]["vamp2"][method][k] == pytest.approx(value, rel=1e-4)
    for cv, values in reports["whole"]["mutual_information"].items():
        for angle, value in values.items():
            got = reports["triclinic"]["mutual_information"][cv][angle]
            assert got == pytest.approx(value, abs=5e-4)
    model = NCTModel.load(small_model_file)
    paths = [interpolate(model, t[3], t[900], n_frames=5)
             for t in (io.load(whole_and_wrapped[key])[0].traj for key in ("whole", "triclinic"))]
    np.testing.assert_allclose(paths[1].xyz, paths[0].xyz, atol=1e-5)


def test_gromacs_style_xtc_gro(whole_and_wrapped, small_model_file, tmp_path):
    """XTC (0.001 nm precision) + GRO topology, wrapped per atom: the CVs of the whole frames
    within what the XTC precision allows."""
    wrapped = md.load(str(whole_and_wrapped["cubic1.2"]))
    wrapped.save_xtc(str(tmp_path / "w.xtc"))
    wrapped[0].save_gro(str(tmp_path / "w.gro"))
    out = tmp_path / "cvs.csv"
    assert main(["cvs", str(small_model_file), str(tmp_path / "w.xtc"), "--top",
                 str(tmp_path / "w.gro"), "--out", str(out)]) == 0
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    (whole,) = io.load(whole_and_wrapped["whole"])
    expected = NCTModel.load(small_model_file).transform(whole.traj)
    np.testing.assert_allclose(table[:, 1], whole.times, atol=1e-3)
    scale = np.abs(expected).max()
    assert np.abs(table[:, 2:] - expected).max() < 0.02 * scale


def test_solute_selection_ignores_water(ala):
    """`heavy` and `solute` leave out water and ions of a solvated topology."""
    from openmm import app, unit

    modeller = app.Modeller(ala.topology.to_openmm(), ala.openmm_positions(0))
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller.addSolvent(forcefield, padding=0.6 * unit.nanometer,
                        ionicStrength=0.15 * unit.molar)
    topology = md.Topology.from_openmm(modeller.topology)
    assert topology.n_atoms > 200
    np.testing.assert_array_equal(io.resolve_selection(topology, "solute"), np.arange(22))
    np.testing.assert_array_equal(io.resolve_selection(topology, "heavy"),
                                  io.resolve_selection(ala.topology, "heavy"))


def test_broken_molecule_without_box_is_refused(ala, tmp_path, small_model_file, capsys):
    broken = ala[:]
    broken.xyz[0, 5] += 1.0  # one atom in another periodic image, and no box in the file
    broken.save_pdb(str(tmp_path / "broken.pdb"))
    out = tmp_path / "cvs.npy"
    assert main(["cvs", str(small_model_file), str(tmp_path / "broken.pdb"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken across a periodic boundary" in err
    assert not out.exists()
