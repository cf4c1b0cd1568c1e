"""Data-parallel training under torchrun (2 CPU processes, gloo) follows the 1-process run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import mdtraj as md
import numpy as np

from nct_md.cli import main
from nct_md.model import NCTModel

#: Relative agreement of the per-epoch loss curves. Both runs see the same global batches and
#: seeds; only float32 summation order differs (gradients averaged over two half-batches).
#: Measured: 2e-8.
TOLERANCE = 1e-6
#: Agreement of the two final models' CVs (ps, values up to 0.7) on a training trajectory.
#: Measured: 1.2e-7 (float32 rounding).
CV_TOLERANCE = 1e-6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_matches_single_process(ala_data_files, tmp_path):
    args = ["train", str(ala_data_files[0]), str(ala_data_files[4]), "--stride", "8",
            "--epochs", "3", "--couplings", "2", "--hidden", "16", "--batch-size", "64"]
    assert main([*args, "--out", str(tmp_path / "single.pt")]) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                          "--master_port", str(_free_port()), "-m", "nct_md", *args,
                          "--out", str(tmp_path / "ddp.pt")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    single = NCTModel.load(tmp_path / "single.pt").info.training
    ddp = NCTModel.load(tmp_path / "ddp.pt").info.training
    assert single.processes == 1 and ddp.processes == 2
    curve_1, curve_2 = np.array(single.epoch_losses), np.array(ddp.epoch_losses)
    assert len(curve_1) == len(curve_2) == 3 and curve_1[-1] < curve_1[0]  # it learned
    print("max relative difference of the loss curves:", np.max(np.abs(curve_2 / curve_1 - 1)))
    assert np.allclose(curve_2, curve_1, rtol=TOLERANCE, atol=0)
    traj = md.load(str(ala_data_files[0]), stride=8)
    cvs_1 = NCTModel.load(tmp_path / "single.pt").transform(traj, 4)
    cvs_2 = NCTModel.load(tmp_path / "ddp.pt").transform(traj, 4)
    print("max CV difference (ps):", np.abs(cvs_2 - cvs_1).max(), "of", np.abs(cvs_1).max())
    assert np.abs(cvs_2 - cvs_1).max() <= CV_TOLERANCE
    assert not (tmp_path / "ddp.pt.ckpt").exists()
