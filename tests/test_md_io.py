"""nct_md.md.io: formats, trajectories kept separate, selections, stride, streaming, bad input."""

from __future__ import annotations

import gc
import warnings

import mdtraj as md
import numpy as np
import pytest

from nct_md.errors import NCTInputError
from nct_md.md import io

pytestmark = pytest.mark.filterwarnings("ignore:Warning. The 'netCDF4' Python package:UserWarning")


def test_h5_velocities_and_times(tmp_path, write_h5, ala, make_frames):
    path = write_h5(tmp_path / "a.h5", n_frames=30, seed=1)
    xyz, vel = make_frames(ala, 30, 1)
    (chunk,) = io.load(path)
    np.testing.assert_allclose(chunk.traj.xyz, xyz, atol=1e-6)
    np.testing.assert_allclose(chunk.velocities, vel, atol=1e-6)
    np.testing.assert_allclose(chunk.times, 0.5 * np.arange(1, 31))
    assert chunk.velocities.dtype == np.float32 and chunk.times.dtype == np.float64
    np.testing.assert_array_equal(chunk.atom_indices, np.arange(22))
    assert chunk.selection == "all" and chunk.traj_index == 0 and len(chunk) == 30


def test_h5_without_velocities(tmp_path, write_h5):
    (chunk,) = io.load(write_h5(tmp_path / "a.h5", velocities=False))
    assert chunk.velocities is None


@pytest.mark.parametrize("ext", [".dcd", ".xtc", ".trr", ".nc", ".pdb", ".gro"])
def test_other_formats(tmp_path, ala, ala_pdb, ext, make_frames):
    xyz, _ = make_frames(ala, 12, 2)
    path = tmp_path / f"t{ext}"
    md.Trajectory(xyz, ala.topology, time=np.arange(12) * 2.0).save(str(path))
    (chunk,) = io.load(path, top=ala_pdb)
    traj = chunk.traj
    assert traj.n_frames == 12 and traj.n_atoms == 22
    np.testing.assert_allclose(traj.xyz, xyz, atol=2e-3)  # xtc/pdb/gro store 1e-3 nm
    assert chunk.velocities is None
    chunks = list(io.iterload(path, top=ala_pdb, chunk=5))
    assert [len(c) for c in chunks] == [5, 5, 2]
    np.testing.assert_allclose(np.concatenate([c.traj.xyz for c in chunks]), traj.xyz)


@pytest.mark.parametrize("top_kind", ["prmtop_like_h5", "topology", "trajectory"])
def test_topology_sources(tmp_path, write_h5, ala, top_kind, make_frames):
    xyz, _ = make_frames(ala, 4, 3)
    path = tmp_path / "t.dcd"
    md.Trajectory(xyz, ala.topology).save(str(path))
    top = {"prmtop_like_h5": write_h5(tmp_path / "top.h5", n_frames=1),
           "topology": ala.topology, "trajectory": ala}[top_kind]
    (chunk,) = io.load(path, top=top)
    np.testing.assert_allclose(chunk.traj.xyz, xyz, atol=1e-5)


def test_files_stay_separate(tmp_path, write_h5):
    paths = [write_h5(tmp_path / "a.h5", 20, 1), write_h5(tmp_path / "b.h5", 7, 2)]
    chunks = io.load(paths)
    assert [len(c) for c in chunks] == [20, 7] and [c.traj_index for c in chunks] == [0, 1]
    streamed = [c.traj_index for c in io.iterload(paths, chunk=6)]
    assert streamed == [0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize(("select", "n_atoms"), [
    ("all", 22), ("heavy", 10), ("backbone", 8), ("resname ALA", 10),
    ("name CA or name CB or name N", 4), ([0, 4, 5, 6], 4),
])
def test_selections(ala, select, n_atoms):
    idx = io.resolve_selection(ala.topology, select)
    assert len(idx) == n_atoms
    if select == "heavy":
        assert all(ala.topology.atom(i).element.symbol != "H" for i in idx)


def test_selection_loads_subset(tmp_path, write_h5, ala):
    path = write_h5(tmp_path / "a.h5", 10, 4)
    (full,) = io.load(path)
    (heavy,) = io.load(path, select="heavy")
    idx = io.resolve_selection(ala.topology, "heavy")
    np.testing.assert_array_equal(heavy.traj.xyz, full.traj.xyz[:, idx])
    np.testing.assert_array_equal(heavy.velocities, full.velocities[:, idx])
    np.testing.assert_array_equal(heavy.atom_indices, idx)
    assert heavy.traj.topology.n_atoms == 10 and heavy.selection == "heavy"


@pytest.mark.parametrize("ext", [".h5", ".dcd"])
def test_stride_and_chunks(tmp_path, write_h5, ala, ext, make_frames):
    if ext == ".h5":
        path = write_h5(tmp_path / "a.h5", 50, 5)
    else:
        path = tmp_path / "a.dcd"
        md.Trajectory(make_frames(ala, 50, 5)[0], ala.topology).save(str(path))
    (full,) = io.load(path, top=ala)
    (strided,) = io.load(path, top=ala, stride=3)
    np.testing.assert_array_equal(strided.traj.xyz, full.traj.xyz[::3])
    np.testing.assert_allclose(strided.times, full.times[::3])
    chunks = list(io.iterload(path, top=ala, chunk=4, stride=3))
    assert [len(c) for c in chunks] == [4, 4, 4, 4, 1]
    np.testing.assert_array_equal(np.concatenate([c.traj.xyz for c in chunks]),
                                  full.traj.xyz[::3])
    np.testing.assert_allclose(np.concatenate([c.times for c in chunks]), full.times[::3])


def test_dt_ps_sets_times(tmp_path, ala, make_frames):
    path = tmp_path / "a.dcd"
    md.Trajectory(make_frames(ala, 10, 6)[0], ala.topology).save(str(path))
    chunks = io.iterload(path, top=ala, chunk=3, stride=2, dt_ps=0.5)
    np.testing.assert_allclose(np.concatenate([c.times for c in chunks]), [0, 1, 2, 3, 4])


# --- bad input: one clear line each ---------------------------------------------------------


def _message(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_missing_file(tmp_path, ala_pdb):
    with pytest.raises(NCTInputError, match="not found") as exc:
        io.load(tmp_path / "nope.dcd", top=ala_pdb)
    assert "nope.dcd" in _message(exc)


def test_missing_topology(tmp_path, write_h5):
    with pytest.raises(NCTInputError, match="topology file .* not found"):
        io.load(write_h5(tmp_path / "a.h5"), top=tmp_path / "top.pdb")


def test_unknown_extension(tmp_path, ala_pdb):
    path = tmp_path / "traj.foo"
    path.write_text("1 2 3\n")
    with pytest.raises(NCTInputError, match="unknown trajectory extension '.foo'") as exc:
        io.load(path, top=ala_pdb)
    _message(exc)


def test_trajectory_needs_topology(tmp_path, ala, make_frames):
    path = tmp_path / "a.dcd"
    md.Trajectory(make_frames(ala, 3, 0)[0], ala.topology).save(str(path))
    with pytest.raises(NCTInputError, match="carries no topology"):
        io.load(path)


@pytest.mark.parametrize("ext", [".h5", ".dcd", ".xtc", ".pdb"])
def test_atom_count_mismatch(tmp_path, ala, write_h5, ext, make_frames):
    path = tmp_path / f"a{ext}"
    if ext == ".h5":
        write_h5(path, 5)
    else:
        md.Trajectory(make_frames(ala, 5, 0)[0], ala.topology).save(str(path))
    small = tmp_path / "small.pdb"
    ala.atom_slice(range(20)).save_pdb(str(small))
    with pytest.raises(NCTInputError, match="topology") as exc:
        io.load(path, top=small)
    assert "20" in _message(exc)


@pytest.mark.parametrize("select", ["name XX", "resname GLY"])
def test_empty_selection(tmp_path, write_h5, select):
    with pytest.raises(NCTInputError, match="matches no atom") as exc:
        io.load(write_h5(tmp_path / "a.h5"), select=select)
    _message(exc)


def test_invalid_selection_syntax(ala):
    with pytest.raises(NCTInputError, match="invalid atom selection"):
        io.resolve_selection(ala.topology, "name CA and and")


@pytest.mark.parametrize("select", ["name CA", "name CA or name CB"])
def test_too_few_atoms(tmp_path, write_h5, select):
    with pytest.raises(NCTInputError, match="at least 3") as exc:
        io.load(write_h5(tmp_path / "a.h5"), select=select)
    _message(exc)


@pytest.mark.parametrize("ext", [".h5", ".dcd"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_coordinates(tmp_path, write_h5, ala, ext, bad, make_frames):
    xyz, _ = make_frames(ala, 10, 0)
    xyz[7, 3, 1] = bad
    path = tmp_path / f"a{ext}"
    if ext == ".h5":
        write_h5(path, xyz=xyz)
    else:
        md.Trajectory(xyz, ala.topology).save(str(path))
    with pytest.raises(NCTInputError, match="frame 7 has NaN or infinite") as exc:
        io.load(path, top=ala)
    _message(exc)


def test_zero_frames(tmp_path, ala):
    path = tmp_path / "empty.h5"
    with md.formats.HDF5TrajectoryFile(str(path), "w") as handle:
        handle.topology = ala.topology
    with pytest.raises(NCTInputError, match="has no frames") as exc:
        io.load(path)
    _message(exc)


def test_zero_frames_pdb(tmp_path, ala_pdb):
    path = tmp_path / "empty.pdb"
    path.write_text("REMARK nothing\nEND\n")
    with pytest.raises(NCTInputError, match="cannot read"):
        io.load(path, top=ala_pdb)


@pytest.mark.parametrize("ext", [".h5", ".xtc", ".nc"])
def test_truncated_file(tmp_path, write_h5, ala, ext, make_frames):
    path = tmp_path / f"full{ext}"
    if ext == ".h5":
        write_h5(path, 200)
    else:
        md.Trajectory(make_frames(ala, 200, 0)[0], ala.topology,
                      time=np.arange(200.0)).save(str(path))
    data = path.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings():  # scipy's NetCDF reader complains when its mmap is freed
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NCTInputError, match="truncated") as exc:
            io.load(cut, top=ala)
        _message(exc)
        del exc
        gc.collect()


def test_bad_stride(tmp_path, write_h5):
    with pytest.raises(NCTInputError, match="stride"):
        io.load(write_h5(tmp_path / "a.h5"), stride=0)


def test_read_provenance_empty_for_foreign_files(tmp_path, write_h5):
    assert io.read_provenance(write_h5(tmp_path / "a.h5")) == {}


@pytest.mark.parametrize("dt_ps", [0.0, -1.0])
def test_bad_frame_spacing(tmp_path, write_h5, dt_ps):
    with pytest.raises(NCTInputError, match="dt_ps must be a positive"):
        io.load(write_h5(tmp_path / "a.h5"), dt_ps=dt_ps)
