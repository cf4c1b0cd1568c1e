"""The OpenMM energy bridge agrees with OpenMM, differentiates to -F/kT and shuts down cleanly.

Its workers are fresh interpreters (``python -m nct_md.generate._worker``): scripts without a
main guard, and code piped to ``python -``, run once and exit; workers die with their parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from nct_md.errors import NCTInputError
from nct_md.generate.openmm_energy import OpenMMEnergy, system_from_pdb
from nct_md.md.thermo import kt

DATA = Path(__file__).resolve().parent.parent / "data"
UNCONSTRAINED = sorted((DATA / "alanine-dipeptide-300K-unconstrained").glob("*.h5"))
PDB = DATA / "alanine-dipeptide.pdb"


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """100 MD frames with 0.01 nm noise, (100, 22, 3) nm float64."""
    rng = np.random.default_rng(0)
    xyz = md.load(str(UNCONSTRAINED[0]), stride=10).xyz[:100].astype(np.float64)
    return xyz + 0.01 * rng.normal(size=xyz.shape)


@pytest.fixture(scope="module")
def energy_2workers():
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=2) as energy:
        yield energy


def openmm_reference(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies (kJ/mol) and forces (kJ/mol/nm) read through OpenMM's unit system."""
    system = system_from_pdb(PDB)
    context = openmm.Context(system, openmm.VerletIntegrator(1 * unit.femtosecond),
                             openmm.Platform.getPlatformByName("Reference"))
    energies, forces = [], []
    for frame in xyz:
        context.setPositions(frame * unit.nanometer)
        state = context.getState(getEnergy=True, getForces=True)
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        forces.append(state.getForces(asNumpy=True).value_in_unit(
            unit.kilojoule_per_mole / unit.nanometer))
    return np.array(energies), np.array(forces)


def test_energies_and_forces_match_openmm(frames, energy_2workers):
    ref_e, ref_f = openmm_reference(frames)
    for energy in (energy_2workers, OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=0)):
        e, f = energy.evaluate(frames)
        assert e.shape == (100,) and f.shape == (100, 22, 3)
        assert np.allclose(e, ref_e, rtol=1e-5, atol=0)
        scale = np.abs(ref_f).max(axis=(1, 2), keepdims=True)
        assert np.all(np.abs(f - ref_f) <= 1e-5 * scale)


def test_reduced_energy_and_autograd_are_minus_forces_over_kT(frames, energy_2workers):
    q = torch.tensor(frames.reshape(100, -1), requires_grad=True)
    u = energy_2workers(q)
    ref_e, ref_f = openmm_reference(frames[:5])
    assert np.allclose(u.detach().numpy()[:5], ref_e / kt(300.0), rtol=1e-5)
    weights = torch.linspace(0.5, 2.0, 100, dtype=torch.float64)
    (grad,) = torch.autograd.grad((weights * u).sum(), q)
    expected = -weights[:5, None].numpy() * ref_f.reshape(5, -1) / kt(300.0)
    assert np.allclose(grad[:5].numpy(), expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    # and a finite-difference check of dU/dq on one coordinate (units: 1/nm)
    h = 1e-6
    shifted = frames[:1].copy()
    shifted[0, 8, 0] += h
    e0, _ = energy_2workers.evaluate(frames[:1])
    e1, _ = energy_2workers.evaluate(shifted)
    assert np.isclose((e1 - e0)[0] / h / kt(300.0), grad[0, 24].item() / weights[0].item(),
                      rtol=1e-3)


def test_bad_frames_are_reported_and_clipped(frames, caplog):
    bad = frames[:4].copy()
    bad[1, 3] = np.nan                 # NaN coordinates
    bad[2, 21] = bad[2, 0] + 0.03      # non-bonded atoms overlapping: huge energy
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=0) as raw:
        u = raw(torch.tensor(bad.reshape(4, -1)))
        assert np.isnan(u[1].item()) and u[2].item() > 1e4
        assert raw.last_diagnostics.n_nonfinite == 1
        assert "non-finite" in caplog.text
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=0, clip_above=1e4) as clipped:
        q = torch.tensor(bad.reshape(4, -1), requires_grad=True)
        u = clipped(q)
        u.sum().backward()
        assert torch.isfinite(u).all() and torch.isfinite(q.grad).all()
        assert 1e4 < u[2].item() < 1e4 + np.log(1e30)
        assert q.grad[1].abs().max() == 0
        assert clipped.last_diagnostics.n_clipped == 1
        assert np.isclose(u[0].item(), raw_u0 := clipped.evaluate(bad[:1])[0][0] / kt(300.0))
        assert raw_u0 < 1e4


def test_bad_input_is_refused(tmp_path):
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=0) as energy:
        with pytest.raises(NCTInputError, match="positions must be"):
            energy.evaluate(np.zeros((2, 21, 3)))
    with pytest.raises(NCTInputError, match="not found"):
        OpenMMEnergy.from_xml(tmp_path / "missing.xml", 300.0)
    (tmp_path / "bad.xml").write_text("<not a system/>")
    with pytest.raises(NCTInputError, match="not a serialized"):
        OpenMMEnergy.from_xml(tmp_path / "bad.xml", 300.0)


def test_xml_round_trip(tmp_path, frames):
    path = tmp_path / "system.xml"
    path.write_text(openmm.XmlSerializer.serialize(system_from_pdb(PDB)))
    with OpenMMEnergy.from_xml(path, 300.0, n_workers=0) as energy:
        assert np.allclose(energy.evaluate(frames[:3])[0], openmm_reference(frames[:3])[0])


def test_script_with_two_workers_exits_by_itself(tmp_path):
    script = tmp_path / "use_energy.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from nct_md.generate import OpenMMEnergy

        if __name__ == "__main__":
            energy = OpenMMEnergy.from_pdb({str(PDB)!r}, 300.0, n_workers=2)
            import mdtraj as md
            xyz = md.load({str(PDB)!r}).xyz.repeat(8, axis=0)
            print("ok", np.isfinite(energy.evaluate(xyz)[0]).all())
            # no close(): the atexit hook must stop the workers
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ok True" in done.stdout


#: a script with no main guard: 3 particles, two harmonic bonds (k = 1000 kJ/mol/nm^2, r0 = 0.1
#: nm), energies of 6 frames by 2 workers printed as JSON; every run of its body is logged
NO_GUARD = """
import json, os
import numpy as np
import openmm
from nct_md.generate import OpenMMEnergy

with open({log!r}, "a") as log:
    log.write(f"{{os.getpid()}}\\n")
system = openmm.System()
bonds = openmm.HarmonicBondForce()
for i in range(3):
    system.addParticle(12.0)
bonds.addBond(0, 1, 0.1, 1000.0)
bonds.addBond(1, 2, 0.1, 1000.0)
system.addForce(bonds)
energy = OpenMMEnergy(system, 300.0, n_workers=2)
xyz = np.random.default_rng(0).normal(scale=0.1, size=(6, 3, 3))
e, f = energy.evaluate(xyz)
print(json.dumps({{"xyz": xyz.tolist(), "e": e.tolist(), "f": f.tolist(),
                  "workers": [w.process.pid for w in energy._workers]}}))
"""


def harmonic_reference(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies (kJ/mol) and forces (kJ/mol/nm) of NO_GUARD's two bonds, by hand."""
    energies, forces = np.zeros(len(xyz)), np.zeros_like(xyz)
    for i, j in ((0, 1), (1, 2)):
        d = xyz[:, j] - xyz[:, i]
        r = np.linalg.norm(d, axis=1)
        energies += 0.5 * 1000.0 * (r - 0.1) ** 2
        pull = (1000.0 * (r - 0.1) / r)[:, None] * d  # force on i, towards j when stretched
        forces[:, i] += pull
        forces[:, j] -= pull
    return energies, forces


def is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_script_without_main_guard_runs_once_with_two_workers(tmp_path, how):
    log = tmp_path / "runs.log"
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD.format(log=str(log)))
    if how == "file":
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
    else:
        done = subprocess.run([sys.executable, "-"], input=script.read_text(),
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "EOFError" not in done.stderr
    out = json.loads(done.stdout)
    ref_e, ref_f = harmonic_reference(np.array(out["xyz"]))
    assert np.allclose(out["e"], ref_e, rtol=1e-10, atol=1e-10)
    assert np.allclose(out["f"], ref_f, rtol=1e-10, atol=1e-8)
    assert len(log.read_text().split()) == 1  # the workers did not run the script again
    assert len(out["workers"]) == 2 and not any(map(is_running, out["workers"]))


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        from nct_md.generate import OpenMMEnergy
        energy = OpenMMEnergy.from_pdb({str(PDB)!r}, 300.0, n_workers=2)
        print(*[w.process.pid for w in energy._workers], flush=True)
        import time
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(map(is_running, workers))
    finally:
        parent.send_signal(signal.SIGKILL)  # no atexit, no close(): only the pipes end
        parent.wait(timeout=10)
        parent.stdout.close()
    deadline = time.monotonic() + 10
    while any(map(is_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(is_running, workers))


def test_worker_that_cannot_start_fails_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(NCTInputError, match="could not create a Context on 'NoSuchPlatform'"):
        OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=2, platform="NoSuchPlatform")
    # a worker whose interpreter cannot even import OpenMM (here a broken one on its path)
    (tmp_path / "openmm.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with pytest.raises(RuntimeError, match=r"OpenMM worker process \d+ stopped answering "
                                           r"\(exit code 1\)") as error:
        OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=2)
    assert "\n" not in str(error.value)
