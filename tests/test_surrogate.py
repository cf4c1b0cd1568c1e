"""Surrogate CV export: file convention, exact first derivatives of itself, fidelity metadata,
a distillation that must reach R^2 > 0.99 on a smooth target, and the CLI's error path.

The model is the shipped heavy-atom alanine-dipeptide model; the frames a few hundred of the
shipped trajectories (strided).
"""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from nct_md.cli import main
from nct_md.export import load_torchscript
from nct_md.export.cvmodule import Superposition
from nct_md.export.surrogate import (
    DistilSettings,
    distil,
    fidelity,
    save_surrogate,
    split_trajectories,
)
from nct_md.model import NCTModel

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "data" / "alanine-dipeptide-heavy.pt"
QUICK = DistilSettings(epochs=3, seed=1)


@pytest.fixture(scope="module")
def model() -> NCTModel:
    return NCTModel.load(MODEL)


@pytest.fixture(scope="module")
def trajectories(ala_data_files, model) -> list[np.ndarray]:
    """Three trajectories of 100 frames each, the model's atoms, ``(100, N, 3)`` nm."""
    out = []
    for path in ala_data_files[:3]:
        traj = md.load(str(path), stride=40)
        out.append(traj.xyz[:, model.select_atoms(traj.topology)])
    return out


@pytest.fixture(scope="module")
def surrogate_file(model, trajectories, tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("surrogate") / "surrogate.pt"
    info = save_surrogate(model, path, trajectories, ["a", "b", "c"], n_cvs=2,
                          dtype=torch.float64, settings=QUICK, progress=False)
    return path, info


def test_split_holds_out_every_third():
    assert split_trajectories(2) == ([0], [1])
    assert split_trajectories(6) == ([0, 1, 3, 4], [2, 5])


def test_file_loads_in_the_cv_convention(surrogate_file, trajectories):
    path, info = surrogate_file
    module = torch.jit.load(str(path))
    x = torch.as_tensor(trajectories[2][:5].reshape(5, -1), dtype=torch.float32)
    assert module(x).shape == (5, 2) and module(x).dtype == torch.float32
    assert module.n_cvs == 2 and module.n_atoms == x.shape[1] // 3
    _, meta = load_torchscript(path)
    assert meta == info and meta["format"] == "nct-md-cv-torchscript"
    assert meta["surrogate"]["held_out_trajectories"] == ["c"]
    held = meta["surrogate"]["held_out"]
    assert held["n_frames"] == 100
    for key in ("r2", "gradient_cosine_median", "gradient_cosine_p05"):
        assert len(held[key]) == 2 and all(np.isfinite(held[key]))


def test_gradients_are_its_own_derivatives(surrogate_file, trajectories):
    """PLUMED's call (autograd on a grad-requiring input) and ``jacobian`` both equal central
    finite differences of the float64 surrogate's own values."""
    module = torch.jit.load(str(surrogate_file[0]))
    x = torch.as_tensor(trajectories[1][:4].reshape(4, -1), dtype=torch.float64)
    values, jacobian = module.jacobian(x)
    step = 1e-6
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    fd = torch.stack([(module(x + step * e) - module(x - step * e)) / (2 * step) for e in eye],
                     dim=2)
    assert torch.allclose(jacobian, fd, atol=1e-6, rtol=1e-5)
    row = x[:1].clone().requires_grad_(True)
    out = module(row)
    for j in range(2):
        (grad,) = torch.autograd.grad(out[0, j], row, retain_graph=True)
        assert torch.allclose(grad[0], jacobian[0, j], atol=1e-10)
    assert torch.allclose(out.detach(), values[:1])


def _distances(aligned: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth toy target: two interatomic distances (nm) of superposed frames, by autograd."""
    a = aligned.detach().requires_grad_(True)
    with torch.enable_grad():
        xyz = a.view(len(a), -1, 3)
        y = torch.stack([(xyz[:, 1] - xyz[:, 6]).norm(dim=1),
                         (xyz[:, 0] - xyz[:, 8]).norm(dim=1)], dim=1)
        rows = [torch.autograd.grad(y[:, j].sum(), a, retain_graph=True)[0] for j in range(2)]
    return y.detach(), torch.stack(rows, 1)


def test_distillation_reaches_a_smooth_target(model, trajectories):
    pre = model.preprocessing
    superposition = Superposition(pre.reference.double(), pre.masses.double())
    settings = DistilSettings(hidden=(32, 32), epochs=60, batch_size=32, seed=0)
    network = distil(_distances, superposition, np.concatenate(trajectories[:2]), settings,
                     progress=False)
    report = fidelity(network, _distances, trajectories[2])
    assert min(report["r2"]) > 0.99, report
    assert min(report["gradient_cosine_median"]) > 0.95, report


def test_cli_writes_and_prints_fidelity(ala_data_files, tmp_path, capsys):
    out = tmp_path / "s.pt"
    assert main(["export", str(MODEL), "--format", "torchscript", "--out", str(out),
                 "--surrogate", "--surrogate-data", *map(str, ala_data_files[:3]),
                 "--stride", "200", "--surrogate-epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "CV1: R^2" in printed and "CV2: R^2" in printed
    assert "surrogate" in load_torchscript(out)[1]


@pytest.mark.parametrize("extra, message", [
    (["--surrogate"], "--surrogate-data needs at least 2"),
    (["--surrogate", "--surrogate-data", "ONE"], "--surrogate-data needs at least 2"),
    (["--surrogate-data", "ONE", "ONE"], "--surrogate-data is only used with --surrogate"),
    (["--surrogate", "--surrogate-data", "ONE", "ONE", "--surrogate-epochs", "0"],
     "--surrogate-epochs must be"),
])
def test_cli_bad_input_exits_2(ala_data_files, tmp_path, capsys, extra, message):
    extra = [str(ala_data_files[0]) if a == "ONE" else a for a in extra]
    assert main(["export", str(MODEL), "--format", "torchscript", "--out",
                 str(tmp_path / "s.pt"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.pt").exists()


def test_cli_help_states_the_distillation_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = DistilSettings()
    assert f"(default {' '.join(map(str, defaults.hidden))})" in text
    assert f"training epochs (default {defaults.epochs})" in text
    assert f"nm (default {defaults.noise_nm})" in text


def test_settings_take_any_sequence_of_widths():
    assert DistilSettings(hidden=[32, 16]).hidden == (32, 16)
