"""A killed or interrupted `nct-md train` run, run again, ends in the uninterrupted run's model.

What is guaranteed (and tested here): running the same command again after the process died
(SIGKILL: no clean-up, a stale lock left behind) or was interrupted (SIGINT) at an epoch
boundary resumes from the last epoch checkpoint, and writes a model whose every tensor equals,
bit for bit on the same machine and thread count, that of the run that was never interrupted,
with the same per-epoch losses, best epoch, epochs run and validation NLL. Early stopping is
part of it: the best parameters so far, the count of epochs without improvement and so the
stop epoch survive the resume, and the best parameters are what the model file holds; a run
interrupted right after the epoch at which early stopping fired trains no further epoch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nct_md.cli import main
from nct_md.model import NCTModel
from nct_md.train import Trainer

#: 800 frames of one trajectory (640 training, 10 steps per epoch). Measured with this seed: the
#: validation NLL improves to epoch 4, worsens at 5, reaches its best at 9 and, after two epochs
#: without improvement (patience 2), training stops at epoch 11 of 15 (one seed, likelihood only).
EARLY_STOP = ["--stride", "5", "--epochs", "15", "--couplings", "1", "--hidden", "8",
              "--batch-size", "64", "--patience", "2", "--lr", "0.005", "--restarts", "1",
              "--kinetic-weight", "0"]


def same_model(a: NCTModel, b: NCTModel) -> None:
    """Every tensor of the two models identical; the same training record."""
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    different = [k for k in state_a if not torch.equal(state_a[k], state_b[k])]
    assert not different, f"tensors differ: {different}"
    ta, tb = a.info.training, b.info.training
    assert ta.epoch_losses == tb.epoch_losses
    assert (ta.best_epoch, ta.epochs_run, ta.validation_nll) == \
        (tb.best_epoch, tb.epochs_run, tb.validation_nll)


def command(data: Path, out: Path, *settings: str) -> list[str]:
    return ["train", str(data), *settings, "--out", str(out)]


@pytest.fixture(scope="module")
def uninterrupted(ala_data_files, tmp_path_factory) -> NCTModel:
    """The early-stopping run, never interrupted."""
    out = tmp_path_factory.mktemp("whole") / "whole.pt"
    assert main(command(ala_data_files[1], out, *EARLY_STOP)) == 0
    model = NCTModel.load(out)
    training = model.info.training
    assert 1 < training.best_epoch < training.epochs_run - 1 and training.epochs_run < 15, \
        "these settings no longer stop early after a best epoch in the middle"
    return model


def interrupt_after_checkpoint(monkeypatch, epoch: int) -> None:
    """Send SIGINT to the next training run right after it writes its epoch-``epoch`` checkpoint."""
    save = Trainer.save_checkpoint

    def save_then_interrupt(self, state=None):
        save(self, state)
        if self.step == epoch * self.steps_per_epoch:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_interrupt)


@pytest.mark.parametrize("when", ["before the best epoch", "after the best epoch"])
def test_early_stopping_survives_an_interrupt(uninterrupted, ala_data_files, tmp_path,
                                              monkeypatch, capsys, when):
    """Interrupted before the best epoch, or one epoch after it (the checkpoint's best state is
    not its current state, and one epoch without improvement is counted): the resumed run stops
    at the same epoch and keeps the same best parameters."""
    best, stop = uninterrupted.info.training.best_epoch, uninterrupted.info.training.epochs_run
    epoch = best - 1 if when == "before the best epoch" else best + 1
    out = tmp_path / "m.pt"
    interrupt_after_checkpoint(monkeypatch, epoch)
    assert main(command(ala_data_files[1], out, *EARLY_STOP)) == 130
    monkeypatch.undo()
    assert f"interrupted at epoch {epoch}; checkpoint kept" in capsys.readouterr().err
    assert not out.exists()
    assert main(command(ala_data_files[1], out, *EARLY_STOP)) == 0
    err = capsys.readouterr().err
    assert f"resuming from epoch {epoch} " in err and f"epoch {stop}/15" in err
    assert f"epoch {stop + 1}/15" not in err
    same_model(NCTModel.load(out), uninterrupted)


def test_killed_run_resumes_to_the_uninterrupted_model(ala_data_files, tmp_path):
    """SIGKILL at whatever epoch the first checkpoint is seen; all three runs in subprocesses
    with one thread, so they compute alike."""
    settings = ["--stride", "5", "--epochs", "30", "--couplings", "1", "--hidden", "8",
                "--batch-size", "64", "--patience", "30", "--restarts", "1"]  # kinetic on
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nct_md",
                               *command(ala_data_files[1], out, *settings)],
                              env=env, capture_output=True, text=True, timeout=300)

    out = tmp_path / "m.pt"
    checkpoint, lock = tmp_path / "m.pt.ckpt", tmp_path / "m.pt.ckpt.lock"
    proc = subprocess.Popen([sys.executable, "-m", "nct_md",
                             *command(ala_data_files[1], out, *settings)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert checkpoint.exists() and lock.exists() and not out.exists()  # no clean-up ran
    resumed = run(out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from epoch " in resumed.stderr
    assert not checkpoint.exists() and not lock.exists()
    whole = run(tmp_path / "whole.pt")
    assert whole.returncode == 0, whole.stderr[-2000:]
    same_model(NCTModel.load(out), NCTModel.load(tmp_path / "whole.pt"))
    assert len(NCTModel.load(out).info.training.epoch_losses) == 30


def test_interrupt_at_the_early_stop_epoch(uninterrupted, ala_data_files, tmp_path, monkeypatch,
                                           capsys):
    out = tmp_path / "m.pt"
    interrupt_after_checkpoint(monkeypatch, uninterrupted.info.training.epochs_run)
    assert main(command(ala_data_files[1], out, *EARLY_STOP)) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(command(ala_data_files[1], out, *EARLY_STOP)) == 0
    same_model(NCTModel.load(out), uninterrupted)
