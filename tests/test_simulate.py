"""nct_md.md.simulate and ``nct-md simulate``; the shipped alanine-dipeptide data set."""

from __future__ import annotations

import json
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

from nct_md.cli import main
from nct_md.errors import NCTInputError
from nct_md.md import io, phase
from nct_md.md.langevin import available_platforms, choose_platform
from nct_md.md.simulate import simulate, wrap_atoms
from nct_md.md.system import build_system
from nct_md.md.thermo import degrees_of_freedom, kt

DATA = Path(__file__).resolve().parent.parent / "data"
DATASET = DATA / "alanine-dipeptide-300K"
UNCONSTRAINED = DATA / "alanine-dipeptide-300K-unconstrained"


def _cli(*args: str) -> int:
    return main(["simulate", *map(str, args)])


def test_cli_20_ps_reads_back_with_velocities(tmp_path, ala_pdb, capsys):
    out = tmp_path / "sub" / "ala.h5"
    assert _cli("--pdb", ala_pdb, "--ns", 0.02, "--seed", 3, "--equilibrate-ps", 2,
                "--quiet", "--out", out) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n_frames"] == 20 and summary["timestep_fs"] == 2.0
    assert summary["platform"] in available_platforms() and summary["ns_per_day"] > 0
    (chunk,) = io.load(out)
    assert chunk.traj.n_frames == 20 and chunk.traj.n_atoms == 22
    assert chunk.velocities is not None and np.isfinite(chunk.velocities).all()
    assert np.abs(chunk.velocities).max() > 0
    np.testing.assert_allclose(chunk.times, np.arange(1, 21) * 1.0)
    info = io.read_provenance(out)
    assert info["temperature"] == 300.0 and info["constraints"] == "hbonds"
    assert info["solvent"] == "obc" and info["seed"] == 3
    assert info["nonbonded_method"] == "NoCutoff" and info["box_nm"] is None
    assert info["ensemble"] == "nvt" and chunk.traj.unitcell_lengths is None
    data = phase.load_phase_space(out)  # temperature and constraints from the file
    assert data.has_velocities and data.info.constraints == "hbonds"
    assert data.info.n_constrained_in_selection == 12
    # 20 frames of 48 unconstrained internal dof at 300 K: mean kinetic energy near 24 kT
    assert 15 < data.kinetic_energy().mean().item() / kt(300.0) < 33
    assert not list(tmp_path.joinpath("sub").glob(".*"))  # no temporary file left behind


def test_degrees_of_freedom_as_openmm_counts_them(ala_pdb):
    import openmm
    from openmm import app

    pdb = app.PDBFile(str(ala_pdb))
    for constraints in ("hbonds", "none"):
        system = build_system(pdb, "amber99sbildn", "obc", constraints)
        simulation = app.Simulation(pdb.topology, system, openmm.VerletIntegrator(0.001),
                                    openmm.Platform.getPlatformByName("Reference"))
        reporter = app.StateDataReporter(None, 1, temperature=True)
        reporter._initializeConstants(simulation)  # OpenMM's own count for its temperature
        assert degrees_of_freedom(system) == reporter._dof == 66 - 3 - (
            12 if constraints == "hbonds" else 0)


def test_refuses_to_overwrite(tmp_path, ala_pdb, capsys):
    out = tmp_path / "a.h5"
    out.write_bytes(b"keep me")
    assert _cli("--pdb", ala_pdb, "--ns", 0.002, "--out", out, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert "exists" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert out.read_bytes() == b"keep me"
    assert _cli("--pdb", ala_pdb, "--ns", 0.002, "--out", out, "--quiet", "--overwrite",
                "--equilibrate-ps", 0, "--platform", "Reference") == 0
    assert len(md.load(str(out))) == 2


def test_unconstrained_vacuum_defaults_to_1_fs(tmp_path, ala_pdb):
    summary = simulate(ala_pdb, tmp_path / "v.h5", solvent="vacuum", constraints="none",
                       ns=0.003, save_every_ps=0.5, equilibrate_ps=0.0, seed=1,
                       platform="Reference", progress=False)
    assert summary["timestep_fs"] == 1.0 and summary["n_constraints"] == 0
    assert summary["n_frames"] == 6 and summary["forcefield_files"] == ["amber99sbildn.xml"]
    (chunk,) = io.load(tmp_path / "v.h5")
    np.testing.assert_allclose(chunk.times, 0.5 * np.arange(1, 7))


def test_start_structure_and_seed_reproducible(tmp_path, ala_pdb, ala):
    start = tmp_path / "start.pdb"
    moved = ala.xyz[0] + np.array([1.0, 0.0, 0.0], dtype=np.float32)
    md.Trajectory(moved[None], ala.topology).save_pdb(str(start))
    kwargs = dict(ns=0.004, equilibrate_ps=0.0, seed=7, platform="Reference", progress=False,
                  start=start)
    simulate(ala_pdb, tmp_path / "a.h5", **kwargs)
    simulate(ala_pdb, tmp_path / "b.h5", **kwargs)
    a, b = md.load(str(tmp_path / "a.h5")), md.load(str(tmp_path / "b.h5"))
    np.testing.assert_array_equal(a.xyz, b.xyz)
    assert a.xyz[0, :, 0].mean() > ala.xyz[0, :, 0].mean() + 0.5  # started from the moved copy


def test_choose_platform_measures(ala_pdb):
    from openmm import app

    pdb = app.PDBFile(str(ala_pdb))
    system = app.ForceField("amber99sbildn.xml").createSystem(pdb.topology)
    positions = np.asarray(pdb.getPositions(asNumpy=True)._value)
    name, speeds = choose_platform(system, positions, 300.0, trial_s=0.05)
    assert name in speeds and set(speeds) <= set(available_platforms())
    assert speeds[name] == max(speeds.values()) and all(v > 0 for v in speeds.values())


@pytest.mark.parametrize(("args", "message"), [
    (["--temperature", "0"], "temperature must be a positive"),
    (["--temperature", "-5"], "temperature must be a positive"),
    (["--ns", "0"], "--ns must be a positive number"),
    (["--save-every-ps", "0.003"], "not a whole number"),
    (["--timestep-fs", "10"], "--timestep-fs must be in"),
    (["--platform", "Quantum"], "platform 'Quantum' is not available"),
    (["--equilibrate-ps", "-1"], "equilibrate-ps"),
    (["--solvent", "tip3p", "--padding-nm", "0"], "--padding-nm must be positive"),
    (["--solvent", "tip3p", "--padding-nm", "-1"], "--padding-nm must be positive"),
    (["--solvent", "tip3p", "--padding-nm", "0.5"], "too small for a 0.6 nm cutoff"),
    (["--solvent", "vacuum", "--ensemble", "npt"], "--ensemble npt needs a periodic box"),
    (["--ensemble", "npt"], "use --solvent tip3p or --ensemble nvt"),
    (["--positions", "wrapped"], "--positions wrapped needs a periodic box"),
])
def test_bad_settings(tmp_path, ala_pdb, capsys, args, message):
    out = tmp_path / "x.h5"
    assert _cli("--pdb", ala_pdb, "--out", out, "--quiet", *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_bad_files(tmp_path, ala_pdb, ala):
    with pytest.raises(NCTInputError, match="not found"):
        simulate(tmp_path / "missing.pdb", tmp_path / "x.h5")
    with pytest.raises(NCTInputError, match="must be an mdtraj HDF5"):
        simulate(ala_pdb, tmp_path / "x.dcd")
    gro = tmp_path / "ala.gro"
    ala.save_gro(str(gro))
    with pytest.raises(NCTInputError, match=r"must be a \.pdb or \.cif"):
        simulate(gro, tmp_path / "x.h5")
    heavy = tmp_path / "heavy.pdb"
    ala.atom_slice(ala.topology.select("not element H")).save_pdb(str(heavy))
    with pytest.raises(NCTInputError, match="cannot parameterise"):
        simulate(heavy, tmp_path / "x.h5", progress=False)
    with pytest.raises(NCTInputError, match="start structure .* has 10 atoms"):
        simulate(ala_pdb, tmp_path / "x.h5", start=heavy, progress=False)
    assert not list(tmp_path.glob("*.h5"))


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--pdb", "--forcefield", "--solvent", "--temperature", "--ns",
                   "--save-every-ps", "--seed", "--out", "--constraints", "--platform",
                   "--padding-nm", "--ensemble", "--positions", "tip3p"):
        assert option in text


# --- explicit water (TIP3P, periodic box) -------------------------------------------------------

#: a small box (0.8 nm padding: 1.63 nm, 114 waters) and short runs keep these tests fast
WATER = dict(solvent="tip3p", padding_nm=0.8, ns=0.002, save_every_ps=0.2, equilibrate_ps=2.0,
             platform="CPU" if "CPU" in available_platforms() else None)


def _read_raw(path: Path):
    """Frames as stored (no re-imaging) and the topology of an mdtraj HDF5 file."""
    with md.formats.HDF5TrajectoryFile(str(path)) as handle:
        return handle.read(), handle.topology


def _bond_lengths(xyz: np.ndarray, topology: md.Topology) -> np.ndarray:
    pairs = np.array([[a.index, b.index] for a, b in topology.bonds])
    return np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1)


def test_tip3p_cli_nvt_whole(tmp_path, ala_pdb, capsys):
    out = tmp_path / "water.h5"
    args = [f"--{key.replace('_', '-')}={value}" for key, value in WATER.items()
            if value is not None]
    assert _cli("--pdb", ala_pdb, "--out", out, "--seed", 5, "--quiet", *args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    info = io.read_provenance(out)
    assert info["solvent"] == "tip3p" and info["padding_nm"] == 0.8
    assert info["ensemble"] == "nvt" and info["positions"] == "whole"
    assert info["pressure_bar"] == 1.0 and info["barostat_every_steps"] == 25
    assert info["nonbonded_method"] == "PME"
    assert info["forcefield_files"] == ["amber99sbildn.xml", "tip3p.xml"]
    assert info["cutoff_nm"] == summary["cutoff_nm"] == 0.652  # 0.4 x the 1.632 nm box
    n_waters = info["n_waters"]
    assert n_waters > 100 and info["n_ions"] == 0  # alanine dipeptide is neutral
    assert info["n_constraints"] == 12 + 3 * n_waters  # HBonds of the solute, rigid water
    frames, topology = _read_raw(out)
    assert summary["n_atoms"] == topology.n_atoms == 22 + 3 * n_waters
    assert len(topology.select("water")) == 3 * n_waters
    assert len(topology.select("not water and not element Na Cl")) == 22
    assert frames.velocities.shape == frames.coordinates.shape == (10, topology.n_atoms, 3)
    assert np.isfinite(frames.velocities).all() and np.abs(frames.velocities).max() > 0
    # NPT equilibration changed the solvated box; NVT production keeps the equilibrated one
    solvated, production = np.diag(info["box_solvated_nm"]), np.diag(info["box_nm"])
    assert np.abs(production - solvated).max() > 1e-3
    np.testing.assert_allclose(frames.cell_lengths, np.tile(production, (10, 1)), rtol=1e-6)
    np.testing.assert_allclose(frames.cell_angles, 90.0)
    assert _bond_lengths(frames.coordinates, topology).max() < 0.2  # every molecule whole


def test_tip3p_npt_wrapped_amber14(tmp_path, ala_pdb):
    out = tmp_path / "npt.h5"
    summary = simulate(ala_pdb, out, forcefield="amber14", ensemble="npt", positions="wrapped",
                       seed=2, progress=False, **WATER)
    assert summary["forcefield_files"] == ["amber14-all.xml", "amber14/tip3p.xml"]
    info = io.read_provenance(out)
    assert info["ensemble"] == "npt" and info["positions"] == "wrapped"
    frames, topology = _read_raw(out)
    cell = frames.cell_lengths
    assert np.ptp(cell[:, 0]) > 0  # the barostat moves the box during production
    np.testing.assert_allclose(cell, cell[:, :1].repeat(3, axis=1))  # cubic stays cubic
    xyz = frames.coordinates
    assert (xyz >= -1e-6).all() and (xyz <= cell[:, None, :] + 1e-5).all()  # all in the cell
    assert _bond_lengths(xyz, topology).max() > 0.5  # atom by atom: molecules cut at faces


def test_wrap_atoms_triclinic():
    rng = np.random.default_rng(0)
    box = np.array([[2.0, 0.0, 0.0], [0.6, 1.8, 0.0], [-0.4, 0.7, 1.5]])  # OpenMM reduced form
    positions = rng.uniform(-5.0, 5.0, size=(200, 3))
    wrapped = wrap_atoms(positions, box)
    fractional = wrapped @ np.linalg.inv(box)
    assert (fractional >= 0).all() and (fractional < 1).all()
    shifts = (wrapped - positions) @ np.linalg.inv(box)
    np.testing.assert_allclose(shifts, np.round(shifts), atol=1e-9)  # whole box vectors only


def test_tip3p_system_needs_a_box(ala_pdb):
    from openmm import app

    with pytest.raises(NCTInputError, match="needs a solvated topology"):
        build_system(app.PDBFile(str(ala_pdb)), "amber99sbildn", "tip3p", "hbonds")


def test_bad_choice_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        _cli("--pdb", "x.pdb", "--out", "x.h5", "--ensemble", "nve")
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "invalid choice: 'nve'" in err and len(err.splitlines()) == 1


# --- the shipped reference data set ---------------------------------------------------------


def _phi(paths):
    return np.concatenate([np.degrees(md.compute_phi(md.load(str(p)))[1][:, 0]) for p in paths])


def test_shipped_dataset(ala_pdb):
    paths = sorted(DATASET.glob("*.h5"))
    assert len(paths) >= 4, f"reference data set missing from {DATASET}"
    chunks = io.load(paths)
    assert sum(len(c) for c in chunks) >= 20_000
    for chunk in chunks:
        assert chunk.velocities is not None and chunk.traj.n_atoms == 22
        np.testing.assert_allclose(np.diff(chunk.times), 1.0)
    for path in paths:
        info = io.read_provenance(path)
        assert info["temperature"] == 300.0 and info["solvent"] == "obc"
    phi = _phi(paths)
    assert (phi > 0).mean() >= 0.05 and (phi < 0).mean() >= 0.05
    size = sum(p.stat().st_size for p in DATASET.parent.rglob("*") if p.is_file())
    assert size <= 25e6


def test_shipped_unconstrained_variant():
    paths = sorted(UNCONSTRAINED.glob("*.h5"))
    assert paths, f"unconstrained variant missing from {UNCONSTRAINED}"
    for path in paths:
        info = io.read_provenance(path)
        assert info["constraints"] == "none" and info["timestep_fs"] == 1.0
    phi = _phi(paths)
    assert (phi > 0).any() and (phi < 0).any()


def test_blow_up_is_reported_and_leaves_no_file(tmp_path, ala_pdb):
    with pytest.raises(NCTInputError, match="blew up"):
        simulate(ala_pdb, tmp_path / "x.h5", solvent="vacuum", temperature=1000.0,
                 constraints="none", timestep_fs=5.0, ns=0.5, save_every_ps=0.05,
                 equilibrate_ps=0.0, seed=1, platform="Reference", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_tip3p_wrapped_output_trains_and_gives_cvs(tmp_path, ala_pdb):
    """`simulate --solvent tip3p --positions wrapped` -> `train` (solute heavy atoms) -> `cvs`:
    the CVs equal those of the same frames made whole by hand (to 1e-5)."""
    out = tmp_path / "wrapped.h5"
    settings = {**WATER, "ns": 0.006, "save_every_ps": 0.02, "equilibrate_ps": 1.0}
    simulate(ala_pdb, out, positions="wrapped", seed=3, progress=False, **settings)
    model, cvs = tmp_path / "model.pt", tmp_path / "cvs.npy"
    assert main(["train", str(out), "--epochs", "1", "--couplings", "1", "--hidden", "8",
                 "--out", str(model)]) == 0
    assert main(["cvs", str(model), str(out), "--n-cvs", "3", "--out", str(cvs)]) == 0
    values = np.load(cvs)
    assert values.shape == (300, 3) and np.isfinite(values).all()
    raw = md.load(str(out))
    solute = raw.atom_slice(raw.topology.select("not water"))
    solute.make_molecules_whole(inplace=True)
    from nct_md.model import NCTModel

    expected = NCTModel.load(model).transform(solute, 3)
    np.testing.assert_allclose(values, expected, atol=1e-5)
