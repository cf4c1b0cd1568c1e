"""A user's mistakes: one line on stderr, exit code 2 (130 when interrupted), nothing lost.

Every case runs a command into a fresh output folder and checks the exit code, that stderr is
one line naming the problem, and that the folder is exactly as it was (no partial, hidden or
temporary files).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

from nct_md.atomic import atomic_path
from nct_md.cli import main
from nct_md.errors import OutputExistsError


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"/"
            for p in sorted(folder.rglob("*"))}


def fails_cleanly(argv: list[str], folder: Path, capsys, needle: str, code: int = 2) -> None:
    before = snapshot(folder)
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err and needle.lower() in err.lower(), err
    assert snapshot(folder) == before


@pytest.fixture
def bad_files(tmp_path, ala_data_files):
    """Broken inputs of every kind a user meets."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "empty.h5").write_bytes(b"")
    data = ala_data_files[0].read_bytes()
    (folder / "truncated.h5").write_bytes(data[: len(data) // 2])
    (folder / "corrupt.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    traj = md.load(str(ala_data_files[0]))[:50]
    traj.save_dcd(str(folder / "full.dcd"))
    dcd = (folder / "full.dcd").read_bytes()
    (folder / "truncated.dcd").write_bytes(dcd[: 2 * len(dcd) // 3])
    traj.save_xyz(str(folder / "frames.xyz"))
    traj[0].save_pdb(str(folder / "top.pdb"))
    other = md.Trajectory(traj.xyz[:, :10], traj.topology.subset(range(10)))
    other.save_hdf5(str(folder / "other-molecule.h5"))
    return folder


def test_bad_trajectories(bad_files, small_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    top = str(bad_files / "top.pdb")
    for name, needle in [("missing.h5", "not found"), ("empty.h5", "empty.h5"),
                         ("truncated.h5", "truncated.h5"), ("corrupt.h5", "corrupt.h5")]:
        path = str(bad_files / name)
        fails_cleanly(["cvs", str(small_model_file), path, "--out", str(out / "c.csv")], out,
                      capsys, needle)
        fails_cleanly(["train", path, "--temperature", "300", "--out", str(out / "m.pt")], out,
                      capsys, needle)
        fails_cleanly(["report", str(small_model_file), path, "--train", "--out",
                       str(out / "r")], out, capsys, needle)
    fails_cleanly(["cvs", str(small_model_file), str(bad_files / "truncated.dcd"), "--top", top,
                   "--out", str(out / "c.npy")], out, capsys, "header announces 50 frames but")
    fails_cleanly(["cvs", str(small_model_file), str(bad_files / "frames.xyz"), "--top", top,
                   "--out", str(out / "c.csv")], out, capsys, "pass --dt")
    fails_cleanly(["cvs", str(small_model_file), str(bad_files / "other-molecule.h5"),
                   "--out", str(out / "c.csv")], out, capsys, "topology")
    assert main(["cvs", str(small_model_file), str(bad_files / "frames.xyz"), "--top", top,
                 "--dt", "0.5", "--out", str(out / "c.csv")]) == 0
    assert np.loadtxt(out / "c.csv", delimiter=",", skiprows=1)[1, 1] == 0.5


def test_dcd_plugin_prints_nothing(bad_files, small_model_file, tmp_path):
    """mdtraj's DCD plugin writes to C stdout; none of it reaches the user's stdout."""
    code = (f"from nct_md.cli import main; main(['cvs', {str(small_model_file)!r}, "
            f"{str(bad_files / 'full.dcd')!r}, '--top', {str(bad_files / 'top.pdb')!r}, "
            f"'--out', {str(tmp_path / 'c.npy')!r}])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "dcdplugin" not in result.stdout and result.stdout.startswith("wrote")


def test_models_that_are_not_models(bad_files, small_model_file, ala_data_files, tmp_path,
                                    capsys):
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "cv.pt"
    assert main(["export", str(small_model_file), "--format", "torchscript", "--out",
                 str(script)]) == 0
    capsys.readouterr()
    fails_cleanly(["cvs", str(script), str(ala_data_files[0]), "--out", str(out / "c.csv")],
                  out, capsys, "exported TorchScript")
    fails_cleanly(["sample", str(small_model_file), "--n", "10", "--out", str(out / "s.pdb")],
                  out, capsys, "all-atom generator")
    fails_cleanly(["cvs", str(bad_files / "corrupt.h5"), str(ala_data_files[0]),
                   "--out", str(out / "c.csv")], out, capsys, "not a readable nct-md model")


def test_library_parameter_errors_name_the_flag(small_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    fails_cleanly(["sample", str(small_model_file), "--n", "5", "--batch-size", "0", "--out",
                   str(out / "s.h5")], out, capsys, "--batch-size must be >= 1")
    fails_cleanly(["sample", str(small_model_file), "--n", "5", "--out", str(out / "s.xyz")],
                  out, capsys, "--out must end in")
    fails_cleanly(["export", str(small_model_file), "--format", "openmm", "--out",
                   str(out / "cv.pt")], out, capsys, "--out must be a folder")


def test_outputs_never_replaced_or_left_half_written(small_model_file, ala_data_files,
                                                     tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.csv").write_text("mine")
    (out / "r").mkdir()
    (out / "r" / "report.json").write_text("mine")
    (out / "h.json").write_text("mine")
    traj = str(ala_data_files[0])
    fails_cleanly(["cvs", str(small_model_file), traj, "--out", str(out / "c.csv")], out,
                  capsys, "exists")
    fails_cleanly(["report", str(small_model_file), traj, "--train", "--out", str(out / "r")],
                  out, capsys, "exists")
    fails_cleanly(["harmonic-chain", "--n", "2", "--out", str(out / "h.json")], out, capsys,
                  "exists")
    fails_cleanly(["train", traj, "--out", str(small_model_file)], out, capsys, "exists")
    fails_cleanly(["cvs", str(small_model_file), traj, "--out", str(out / "no" / "c.csv")],
                  out, capsys, "does not exist")
    fails_cleanly(["interpolate", str(small_model_file), "--traj", traj, "--from-frame", "0",
                   "--to-frame", "5", "--out", str(out / "c.csv" / "p.pdb")], out, capsys,
                  "does not exist")


def test_unwritable_output_location(small_model_file, ala_data_files, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
            pytest.skip("chattr +i is not available here")
    else:
        locked.chmod(0o555)
    try:
        fails_cleanly(["cvs", str(small_model_file), str(ala_data_files[0]), "--out",
                       str(locked / "c.csv")], locked, capsys, "cannot write")
        fails_cleanly(["harmonic-chain", "--n", "2", "--out", str(locked / "h.json")], locked,
                      capsys, "cannot write")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        locked.chmod(0o755)


def test_concurrent_writers_exactly_one_wins(tmp_path):
    """Two writers of one new file without overwrite, both past the existence check and both
    finishing together: exactly one succeeds and its content is whole, 20 of 20 trials."""
    for trial in range(20):
        target = tmp_path / f"out{trial}.json"
        barrier = threading.Barrier(2)
        results: dict[str, str] = {}

        def write(name: str, target: Path = target, barrier: threading.Barrier = barrier,
                  results: dict = results) -> None:
            try:
                with atomic_path(target, overwrite=False) as tmp:
                    tmp.write_text(name * 1000)
                    barrier.wait()  # both have written; now both try to move into place
                results[name] = "ok"
            except OutputExistsError:
                results[name] = "refused"

        threads = [threading.Thread(target=write, args=(name,)) for name in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == ["ok", "refused"]
        winner = next(name for name, result in results.items() if result == "ok")
        assert target.read_text() == winner * 1000
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sigterm_and_ctrl_c_leave_nothing(tmp_path):
    """SIGINT / SIGTERM during a long command: one line, exit 130, no output or temp files."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        folder = tmp_path / signum.name
        folder.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-m", "nct_md", "harmonic-chain", "--n", "16", "--steps", "100000",
             "--out", str(folder / "h.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8)
        assert proc.poll() is None
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        lines = [ln for ln in err.splitlines() if ln.startswith("nct-md")]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert list(folder.iterdir()) == []


def test_every_command_refuses_broken_trajectories(bad_files, small_model_file, tmp_path,
                                                   capsys):
    """interpolate and sample (reference trajectories) read through the same checked readers;
    an all-atom model given a reference of another molecule is refused before sampling."""
    out = tmp_path / "out"
    out.mkdir()
    unconstrained = sorted((Path(__file__).resolve().parent.parent / "data" /
                            "alanine-dipeptide-300K-unconstrained").glob("*.h5"))[0]
    model = tmp_path / "all-atom.pt"
    assert main(["train", str(unconstrained), "--select", "all", "--stride", "10", "--epochs",
                 "1", "--couplings", "1", "--hidden", "8", "--objective", "configuration",
                 "--out", str(model)]) == 0
    capsys.readouterr()
    for name in ("empty.h5", "truncated.h5", "corrupt.h5"):
        path = str(bad_files / name)
        fails_cleanly(["interpolate", str(small_model_file), "--traj", path, "--from-frame",
                       "0", "--to-frame", "1", "--out", str(out / "p.pdb")], out, capsys, name)
        fails_cleanly(["sample", str(model), "--n", "10", "--reference", path, "--out",
                       str(out / "s.pdb")], out, capsys, name)
    fails_cleanly(["sample", str(model), "--n", "10", "--reference",
                   str(bad_files / "other-molecule.h5"), "--out", str(out / "s.pdb")], out,
                  capsys, "topology")
