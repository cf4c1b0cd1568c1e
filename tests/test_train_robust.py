"""`nct-md train` is honest about checkpoints and answers a user's mistake with one line.

Checkpoints resume only the run they belong to (same data and settings), Ctrl-C keeps one,
a lock keeps two runs apart, bad hyperparameters and NaN losses are one line, and a protein
with fewer frames than degrees of freedom trains from a regularised Gaussian start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from nct_md.cli import main
from nct_md.errors import NCTInputError
from nct_md.model import NCTModel
from nct_md.systems.ca_chain import ca_chain, noisy_frames
from nct_md.train import Trainer

#: a small, quick run: 200 frames (160 for training), 2 steps per epoch, one seed
FAST = ["--stride", "20", "--epochs", "4", "--couplings", "1", "--hidden", "8",
        "--batch-size", "64", "--restarts", "1"]


def train(files, out: Path, *extra: str) -> int:
    return main(["train", str(files[1]), *FAST, *extra, "--out", str(out)])


def errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line]


@pytest.fixture
def interrupted(ala_data_files, tmp_path, monkeypatch, capsys):
    """A run stopped by SIGINT right after its epoch-2 checkpoint; returns (out, stderr)."""
    save = Trainer.save_checkpoint

    def save_then_interrupt(self, state=None):
        save(self, state)
        if self.step == 2 * self.steps_per_epoch:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_interrupt)
    out = tmp_path / "m.pt"
    assert train(ala_data_files, out) == 130
    monkeypatch.undo()
    return out, capsys.readouterr().err


def flat(model: NCTModel) -> torch.Tensor:
    return torch.cat([v.flatten().double() for v in model.state_dict().values()])


def test_interrupt_keeps_checkpoint_and_resume_matches_uninterrupted(interrupted, ala_data_files,
                                                                      tmp_path, capsys):
    out, err = interrupted
    checkpoint = out.with_name("m.pt.ckpt")
    assert err.strip().splitlines()[-1] == (
        f"nct-md train: interrupted at epoch 2; checkpoint kept at {checkpoint}; run the same "
        "command again to resume")
    assert "epoch 2/4: train loss" in err  # one progress line per epoch without a terminal
    assert checkpoint.exists() and not out.exists()
    assert not checkpoint.with_name("m.pt.ckpt.lock").exists()
    assert train(ala_data_files, out) == 0
    err = capsys.readouterr().err
    assert f"resuming from epoch 2 (checkpoint {checkpoint})" in err
    assert "epoch 3/4" in err and "epoch 1/4" not in err
    assert not checkpoint.exists()
    assert train(ala_data_files, tmp_path / "whole.pt") == 0
    resumed, whole = NCTModel.load(out), NCTModel.load(tmp_path / "whole.pt")
    assert resumed.info.training.epoch_losses == \
        whole.info.training.epoch_losses
    assert len(resumed.info.training.epoch_losses) == 4
    assert torch.equal(flat(resumed), flat(whole))


@pytest.mark.parametrize("change, difference", [
    (["--stride", "40"], "data: frames per trajectory was [200], now [100]"),
    (["--lr", "0.001"], "settings: lr was 0.002, now 0.001"),
    (["--seed", "1"], "settings: seed was 0, now 1"),
    (["--temperature", "310"], "data: temperature (K) was 300.0, now 310.0"),
])
def test_checkpoint_of_other_data_or_settings_is_refused(interrupted, ala_data_files, capsys,
                                                         change, difference):
    out, _ = interrupted
    checkpoint = out.with_name("m.pt.ckpt")
    before = checkpoint.read_bytes()
    assert train(ala_data_files, out, *change) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"nct-md train: error: checkpoint {checkpoint} belongs to another run "
                       f"({difference}); pass --restart (API: restart=True) to delete it and "
                       "start fresh")
    if "--temperature" in change:  # differs from the files' simulation temperature
        assert err[0].startswith("nct-md train: warning: temperature 310 K differs from the "
                                 "300 K")
    assert checkpoint.read_bytes() == before and not out.exists()
    assert not checkpoint.with_name("m.pt.ckpt.lock").exists()


def test_restart_starts_fresh(interrupted, ala_data_files, capsys):
    out, _ = interrupted
    assert train(ala_data_files, out, "--lr", "0.001", "--restart") == 0
    err = capsys.readouterr().err
    assert "resuming" not in err and "epoch 1/4" in err
    assert NCTModel.load(out).info.training.hyperparameters.lr == 0.001


def test_corrupt_or_truncated_checkpoint_is_one_line(interrupted, ala_data_files, capsys):
    out, _ = interrupted
    checkpoint = out.with_name("m.pt.ckpt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    assert train(ala_data_files, out) == 2
    checkpoint.write_bytes(b"not a checkpoint")
    assert train(ala_data_files, out) == 2
    lines = errors(capsys)
    assert len(lines) == 2 and all(f"checkpoint {checkpoint} is corrupt or truncated" in line
                                   and "--restart" in line for line in lines)
    assert not any("weights_only" in line for line in lines)


def test_lock_refuses_a_second_run_and_a_stale_lock_is_taken_over(ala_data_files, tmp_path,
                                                                  capsys):
    out = tmp_path / "m.pt"
    lock = tmp_path / "m.pt.ckpt.lock"
    lock.write_text(f"{os.getppid()}\n")  # a running process holds it
    assert train(ala_data_files, out) == 2
    assert errors(capsys) == [f"nct-md train: error: another run (pid {os.getppid()}) is training "
                              f"with checkpoint {tmp_path / 'm.pt.ckpt'}; wait for it or choose "
                              "another --out"]
    assert lock.read_text() == f"{os.getppid()}\n" and not out.exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock.write_text(f"{gone.pid}\n")  # its process has ended: stale
    assert train(ala_data_files, out) == 0
    assert out.exists() and not lock.exists()


def test_nan_loss_is_one_line(ala_data_files, tmp_path, capsys):
    assert train(ala_data_files, tmp_path / "m.pt", "--lr", "1e8") == 2
    lines = errors(capsys)
    assert len(lines) == 1 and "the loss became nan at step" in lines[0]
    assert "lower the learning rate (now 1e+08)" in lines[0]
    assert not list(tmp_path.iterdir())
    model = torch.nn.Linear(1, 1)
    trainer = Trainer(model, lambda step: (model.weight.sum() * torch.tensor(float("nan")), {}),
                      steps=3, progress=False)
    with pytest.raises(NCTInputError, match="the loss became nan at step 0 "):
        trainer.fit()


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "-1", "--lr must be a positive number, got -1"),
    ("--lr", "nan", "--lr must be a positive number, got nan"),
    ("--epochs", "0", "--epochs must be a positive integer, got 0"),
    ("--batch-size", "0", "--batch-size must be a positive integer, got 0"),
    ("--couplings", "-1", "--couplings must be an integer >= 0, got -1"),
    ("--hidden", "0", "--hidden must be a positive integer, got 0"),
    ("--depth", "0", "--depth must be a positive integer, got 0"),
    ("--patience", "0", "--patience must be a positive integer, got 0"),
    ("--stride", "0", "--stride must be a positive integer, got 0"),
    ("--restarts", "0", "--restarts must be a positive integer, got 0"),
])
def test_bad_hyperparameter_is_named(ala_data_files, tmp_path, capsys, flag, value, message):
    out = tmp_path / "m.pt"
    assert main(["train", str(ala_data_files[1]), flag, value, "--out", str(out)]) == 2
    assert errors(capsys) == [f"nct-md train: error: {message}"]
    assert not list(tmp_path.iterdir())


def write_protein(folder: Path, n_residues: int, n_frames: int, seed: int = 0) -> list[str]:
    """A CA-only chain: a random walk of 0.38 nm steps plus 0.03 nm thermal noise per frame.

    Written as a PDB topology and a DCD trajectory; returns the CLI arguments naming them.
    """
    chain, topology = ca_chain(n_residues, seed)
    xyz = noisy_frames(chain, n_frames, np.random.default_rng(seed))
    traj = md.Trajectory(xyz, topology)
    traj[0].save_pdb(str(folder / "protein.pdb"))
    traj.save_dcd(str(folder / "protein.dcd"))
    return [str(folder / "protein.dcd"), "--top", str(folder / "protein.pdb"),
            "--select", "name CA", "--temperature", "300"]


def test_protein_with_fewer_frames_than_dof_trains(tmp_path, capsys):
    """214 CA atoms (636 dof), 98 frames: a shrunk Gaussian start, finite loss and CVs."""
    files = write_protein(tmp_path, 214, 98)
    out = tmp_path / "protein.pt"
    assert main(["train", *files, "--epochs", "3", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("nct-md train: warning: 79 training frames (of 98) for 636 degrees of freedom, fewer "
            "than 2 per degree of freedom: the Gaussian start shrinks the covariance") in err
    model = NCTModel.load(out)
    assert 0 < model.info.gaussian_start_shrinkage <= 1
    cvs = model.transform(md.load(files[0], top=files[2]), 2)
    assert cvs.shape == (98, 2) and np.isfinite(cvs).all()
    assert np.isfinite(model.frequencies).all()


def test_too_few_frames_are_refused_naming_how_many(tmp_path, capsys):
    files = write_protein(tmp_path, 12, 8)
    assert main(["train", *files, "--out", str(tmp_path / "m.pt")]) == 2
    lines = errors(capsys)
    assert len(lines) == 1 and "training needs at least 10 training frames (about 13 " \
        "frames)" in lines[0]
