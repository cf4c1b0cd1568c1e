"""A protein-sized model: training time per epoch and ``nct-md cvs`` throughput, 214 CA atoms.

The data are synthetic, shaped like adenylate kinase's CA trace: a random-walk chain of 214 CA
atoms with 0.38 nm steps plus 0.03 nm thermal noise per frame (636 internal degrees of
freedom), 98 frames for training (fewer frames than degrees of freedom: the Gaussian start is
shrunk toward its diagonal) and 20,000 frames of the same chain for the CV timing. The model
has the ``nct-md train`` defaults (8 affine couplings, width 64, depth 2), trained for
:data:`EPOCHS` epochs without early stopping after a one-epoch warm-up fit (one optimiser step
and one validation per epoch: 79 training frames fit in one batch); ``nct-md cvs`` runs in a
child process that times itself (imports excluded) and reports its peak resident set size, as
in :mod:`bench.bench_cvs`. Writes ``bench/out/protein.json``.

Usage: ``python -m bench.bench_protein``
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from bench.bench_cvs import time_cvs_command
from nct_md.estimator import NCT
from nct_md.md.phase import load_phase_space
from nct_md.systems.ca_chain import ca_chain, noisy_frames

OUT = Path(__file__).resolve().parent / "out"
N_RESIDUES, TRAIN_FRAMES, CVS_FRAMES, EPOCHS = 214, 98, 20_000, 10


def write_frames(path: Path, chain: np.ndarray, topology: md.Topology, n_frames: int,
                 seed: int, noise_nm: float = 0.03) -> None:
    """``n_frames`` noisy copies of ``chain`` as a DCD file (written in blocks of 5,000)."""
    rng = np.random.default_rng(seed)
    with md.formats.DCDTrajectoryFile(str(path), "w", force_overwrite=True) as handle:
        for start in range(0, n_frames, 5000):
            count = min(5000, n_frames - start)
            handle.write(10 * noisy_frames(chain, count, rng, noise_nm))  # DCD: angstroms


def main() -> dict:
    torch.set_num_threads(1)
    folder = OUT / "protein"
    folder.mkdir(parents=True, exist_ok=True)
    chain, topology = ca_chain(N_RESIDUES)
    pdb, train_dcd, cvs_dcd = folder / "ca.pdb", folder / "train.dcd", folder / "cvs.dcd"
    md.Trajectory(chain[None].astype(np.float32), topology).save_pdb(str(pdb))
    write_frames(train_dcd, chain, topology, TRAIN_FRAMES, seed=1)
    if not cvs_dcd.exists():
        write_frames(cvs_dcd, chain, topology, CVS_FRAMES, seed=2)
    start = time.perf_counter()
    data = load_phase_space(train_dcd, pdb, select="name CA", temperature=300.0)
    load_s = time.perf_counter() - start
    with warnings.catch_warnings(record=True):  # the expected few-frames warning
        NCT(epochs=1, progress=False).fit(data)  # warm-up: torch's lazy imports, allocations
        start = time.perf_counter()
        estimator = NCT(n_couplings=8, hidden=64, depth=2, epochs=EPOCHS, patience=EPOCHS,
                        progress=False).fit(data)
        fit_s = time.perf_counter() - start
    model = estimator.fetch_model()
    training = model.info.training
    model_file = folder / "model.pt"
    model.save(model_file, overwrite=True)
    out = folder / "cvs.npy"
    out.unlink(missing_ok=True)
    wall, peak_kib = time_cvs_command([str(model_file), str(cvs_dcd), '--top', str(pdb),
                                       '--out', str(out)])
    cvs = np.load(out)
    result = {
        "atoms": N_RESIDUES, "dof": data.n_dof, "train_frames": TRAIN_FRAMES,
        "architecture": "8 affine couplings, width 64, depth 2", "threads": 1,
        "gaussian_start_shrinkage": model.info.gaussian_start_shrinkage,
        "load_s": round(load_s, 2), "epochs_run": training.epochs_run,
        "train_s_per_epoch": round(fit_s / training.epochs_run, 3),
        "validation_nll": round(training.validation_nll, 2),
        "best_epoch": training.best_epoch,
        "cvs_frames": CVS_FRAMES, "cvs_wall_s": round(wall, 2),
        "cvs_frames_per_s": round(CVS_FRAMES / wall),
        "cvs_peak_rss_mb": round(peak_kib / 1024.0, 1),
        "cvs_finite": bool(np.isfinite(cvs).all()),
    }
    (OUT / "protein.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
