"""Slow CVs on a held-out peptide: likelihood only vs the kinetic objective, against TICA.

Data: the ``ala3-amber14-obc2`` set built by :mod:`bench.datasets` (capped tri-alanine, amber14 +
OBC2, 300 K, 1 ps per frame), positions only (momenta from Maxwell-Boltzmann). Training on
``beta-1.h5`` (10 ns), scoring on the held-out ``beta-2.h5`` (10 ns) with the report's protocol
(``nct_md.cv.report.build_report`` with the training trajectory as fitting data): discretised
VAMP-2 at a lag of 10 ps of the 2 slowest NCT CVs, of 2-component TICA of the same aligned
heavy-atom positions, and of 2-component TICA of sin/cos of all backbone torsions (the expert
features). NCT: 12 affine couplings of width 128, 40 epochs, ``kinetic_weight`` 0 (the paper's
likelihood) or 10 (``lag_ps`` 10, 2 slow coordinates).

Run ``python -m bench.bench_kinetic DATA_DIR [--seeds 0 1 2] [--weights 0 10]``; one JSON line
per fit is appended to ``--out`` (default ``bench/kinetic_results.jsonl``) as it finishes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from nct_md.cv import scores
from nct_md.cv.report import build_report
from nct_md.estimator import NCT
from nct_md.md.phase import load_phase_space

TRAIN, TEST = ("beta-1.h5",), ("beta-2.h5",)
LAG_PS = 10.0


def torsion_features(traj: md.Trajectory) -> np.ndarray:
    """``(n_frames, 4 n)`` sin and cos of every backbone Phi and Psi."""
    angles = np.concatenate([md.compute_phi(traj)[1], md.compute_psi(traj)[1]], axis=1)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def torsion_tica_vamp2(train: list[md.Trajectory], test: list[md.Trajectory], lag: int) -> float:
    """Discretised VAMP-2 of 2-component TICA of the backbone torsion features."""
    fit = [torsion_features(t) for t in train]
    held = [torsion_features(t) for t in test]
    return scores.discrete_vamp2(scores.tica_components(fit, lag, 2, fit),
                                 scores.tica_components(fit, lag, 2, held), lag, n_components=2)


def fit_and_score(folder: Path, seed: int, weight: float) -> dict:
    """Train one model and score it, TICA and torsion TICA on the held-out trajectory."""
    train_files = [folder / name for name in TRAIN]
    started = time.perf_counter()
    data = load_phase_space(train_files, select="heavy", velocities=False)
    model = NCT(n_couplings=12, hidden=128, epochs=40, seed=seed, progress=False,
                kinetic_weight=weight, lag_ps=LAG_PS).fit(data).fetch_model()
    fit_s = time.perf_counter() - started
    train = [md.load(f) for f in train_files]
    test = [md.load(folder / name) for name in TEST]
    with torch.no_grad():
        report, _ = build_report(model, test, train=train, lag_ps=LAG_PS, k_max=2)
    discrete = report["vamp2_discrete"]
    return {"seed": seed, "kinetic_weight": weight, "fit_s": round(fit_s, 1),
            "nct_2": discrete["nct"]["2"], "tica_2": discrete["tica"]["2"],
            "torsion_tica_2": torsion_tica_vamp2(train, test, report["lag_frames"]),
            "epochs_run": model.info.training.epochs_run,
            "slowest_frequencies_per_ps": report["frequencies_per_ps"][:4]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by python -m bench.datasets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 10.0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).with_name("kinetic_results.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = args.data / "ala3-amber14-obc2"
    for weight in args.weights:
        for seed in args.seeds:
            row = fit_and_score(folder, seed, weight)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
