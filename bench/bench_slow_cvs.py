"""Slow CVs on held-out trajectories: default ``nct-md train`` per seed, TICA, and the peers.

Every method learns 2 CVs from the training trajectories of a set and is scored on its held-out
trajectories by one protocol (:func:`score`): discretised VAMP-2 at a lag of 10 ps (k-means
states of the 2 CVs fitted on the training trajectories), and, for alanine dipeptide, the kNN
balanced accuracy of the Ramachandran basin from the 2 CVs and the mutual information of each
CV with Phi and Psi. NCT is ``train_files`` with the library defaults (what ``nct-md train TRAJ
--seed S`` runs); TICA, Deep-TICA and VAMPnets (:mod:`bench.peers`) get the input the model
gets, the heavy-atom positions superposed on the training data's reference
(:func:`aligned_positions`). TICA of the backbone torsions' sin/cos (the expert features) is
scored too where there are more than one Phi/Psi pair.

Sets (``--sets``): ``ala2`` (the shipped 300 K data, split as ``make demo`` splits it, with
velocities), ``ala2-positions`` (the same, positions only), ``ala2-amber14-vacuum`` and
``ala3-amber14-obc2`` (built by :mod:`bench.datasets` under ``DATA``; positions only).
Positions-only sets are written without velocities to a temporary folder first, so training
draws Maxwell-Boltzmann momenta exactly as for a user's positions-only files.

Run ``python -m bench.bench_slow_cvs DATA [--sets ...] [--seeds 0 1 2] [--methods nct tica
deep_tica vampnet] [--nct kinetic_weight=1 restarts=1]``; one JSON line per (set, method, seed)
is appended to ``--out`` (default ``bench/slow_cvs_results.jsonl``) as it finishes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from bench import provenance
from nct_md.cv import reference, scores
from nct_md.cv.report import DISCRETE_CLUSTERS
from nct_md.demo import split_trajectories
from nct_md.md.frame import EckartFrame
from nct_md.md.phase import load_phase_space
from nct_md.train.files import train_files

#: the scoring lag of the acceptance, ps
LAG_PS = 10.0
#: every lag a row is also scored at, ps (TICA and the peers refitted at each)
LAGS_PS = (1.0, 2.0, 5.0, LAG_PS)
#: every set was simulated at 300 K (positions-only copies lose the files' record of it)
TEMPERATURE = 300.0
N_CVS = 2
#: set name -> (folder under DATA or None for the shipped data, training files, held-out files,
#: positions only)
SETS = {
    "ala2": (None, None, None, False),
    "ala2-positions": (None, None, None, True),
    "ala2-amber14-vacuum": ("ala2-amber14-vacuum", ("phi-neg-c7eq.h5", "phi-pos-c7ax-1.h5"),
                            ("phi-neg-c5.h5", "phi-pos-c7ax-2.h5"), True),
    "ala3-amber14-obc2": ("ala3-amber14-obc2", ("beta-1.h5", "alphar-1.h5"),
                          ("beta-2.h5", "alphar-2.h5"), True),
}


def torsion_features(traj: md.Trajectory) -> np.ndarray:
    """``(n_frames, 4 n)`` sin and cos of every backbone Phi and Psi (the expert features)."""
    angles = np.concatenate([md.compute_phi(traj)[1], md.compute_psi(traj)[1]], axis=1)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def torsion_tica_vamp2(train: list[md.Trajectory], test: list[md.Trajectory], lag: int) -> float:
    """Discretised VAMP-2 of 2-component TICA of :func:`torsion_features`."""
    fit = [torsion_features(t) for t in train]
    held = [torsion_features(t) for t in test]
    return scores.discrete_vamp2(scores.tica_components(fit, lag, N_CVS, fit),
                                 scores.tica_components(fit, lag, N_CVS, held), lag,
                                 n_components=N_CVS, n_clusters=DISCRETE_CLUSTERS)


def set_files(name: str, data: Path, shipped: Path, scratch: Path) -> tuple[list[Path],
                                                                              list[Path]]:
    """``(training, held_out)`` files of set ``name``; positions-only copies in ``scratch``."""
    folder, train_names, test_names, positions_only = SETS[name]
    if folder is None:
        train, test = split_trajectories(shipped)
    else:
        train = [data / folder / f for f in train_names]
        test = [data / folder / f for f in test_names]
    if positions_only:
        (scratch / name).mkdir(exist_ok=True)
        copies = []
        for path in [*train, *test]:
            copy = scratch / name / path.name
            if not copy.exists():
                md.load(path).save_hdf5(str(copy))  # positions, times, topology; no velocities
            copies.append(copy)
        train, test = copies[:len(train)], copies[len(train):]
    return train, test


def score(fit_x: list[np.ndarray], held_x: list[np.ndarray], fit_t: list[md.Trajectory],
          held_t: list[md.Trajectory], lag: int) -> dict:
    """The held-out scores of CVs ``(n_frames, 2)`` per trajectory (fit on ``fit_x``)."""
    out = {"vamp2_discrete": scores.discrete_vamp2(fit_x, held_x, lag, n_components=N_CVS,
                                                   n_clusters=DISCRETE_CLUSTERS)}
    if held_t[0].n_residues > 3:
        return out
    fit_phi, fit_psi = map(np.concatenate, zip(*map(reference.phi_psi, fit_t), strict=True))
    phi, psi = map(np.concatenate, zip(*map(reference.phi_psi, held_t), strict=True))
    x = np.concatenate(held_x)
    out["basin_accuracy"] = scores.knn_balanced_accuracy(
        np.concatenate(fit_x), reference.ramachandran_basin(fit_phi, fit_psi), x,
        reference.ramachandran_basin(phi, psi))
    out["mi_phi"] = [scores.mutual_information(x[:, k], phi, periodic_y=True)
                     for k in range(N_CVS)]
    out["mi_psi"] = [scores.mutual_information(x[:, k], psi, periodic_y=True)
                     for k in range(N_CVS)]
    return out


def aligned_positions(train: list[Path], trajs: list[md.Trajectory]) -> list[np.ndarray]:
    """Heavy-atom positions ``(n, 3N)`` nm of ``trajs``, superposed as a model trained on
    ``train`` superposes them (its reference and masses; float32 like the model's input)."""
    data = load_phase_space(train, select="heavy", velocities=False, temperature=TEMPERATURE)
    frame = EckartFrame(data.reference, data.masses)
    return [frame.positions(t.xyz[:, data.atom_indices])[0].astype(np.float32).astype(np.float64)
            for t in trajs]


def run_set(name: str, train: list[Path], test: list[Path], seed: int, methods: list[str],
            models: Path, nct_settings: dict | None = None) -> list[dict]:
    """Score each of ``methods`` with seed ``seed``; NCT trains with the library defaults (or
    ``nct_settings`` instead, then named ``nct[key=value,...]``) and is saved to ``models``
    (the other methods need no model).

    Each row also holds ``vamp2_discrete_by_lag``, the discretised VAMP-2 at every lag of
    :data:`LAGS_PS` (keys in ps): TICA and the peers are fitted again at each lag, NCT is
    trained once (its training does not know the scoring lag).
    """
    fit_t, held_t = [md.load(f) for f in train], [md.load(f) for f in test]
    frames = {ps: int(round(ps / float(fit_t[0].timestep))) for ps in LAGS_PS}
    fit_q, held_q = aligned_positions(train, fit_t), aligned_positions(train, held_t)
    rows = []
    for method in methods:
        label = method if method != "nct" or not nct_settings else "nct[" + ",".join(
            f"{k}={v}" for k, v in nct_settings.items()) + "]"
        row = {"set": name, "method": label, "seed": seed}
        started = time.perf_counter()
        if method == "nct":
            model = train_files(train, models / f"{name}-{label}-{seed}.pt", seed=seed,
                                verbose=False, overwrite=True, temperature=TEMPERATURE,
                                **(nct_settings or {}))
            row["train_s"] = round(time.perf_counter() - started, 1)
            cvs = [model.transform(t, N_CVS) for t in fit_t + held_t]
            fits = {ps: (cvs[:len(fit_t)], cvs[len(fit_t):]) for ps in LAGS_PS}
            info = model.info.training
            row |= {"epochs_run": info.epochs_run, "hidden": model.architecture["hidden"],
                    "kinetic_weight": info.kinetic.weight if info.kinetic else 0.0,
                    "restart_seeds": info.restarts.seeds, "chosen_seed": info.seed}
        elif method == "tica":
            fits = {ps: (scores.tica_components(fit_q, lag, N_CVS, fit_q),
                         scores.tica_components(fit_q, lag, N_CVS, held_q))
                    for ps, lag in frames.items()}
            row["train_s"] = round(time.perf_counter() - started, 2)
            if held_t[0].n_residues > 3:
                by_lag = {f"{ps:g}": torsion_tica_vamp2(fit_t, held_t, lag)
                          for ps, lag in frames.items()}
                row["torsion_tica_vamp2_discrete"] = by_lag[f"{LAG_PS:g}"]
                row["torsion_tica_vamp2_discrete_by_lag"] = by_lag
        else:
            from bench.peers import fit_peer

            fits = {}
            for ps, lag in frames.items():
                transform, record = fit_peer(method, fit_q, lag, n_cvs=N_CVS, seed=seed)
                fits[ps] = [transform(c) for c in fit_q], [transform(c) for c in held_q]
                if ps == LAG_PS:
                    row |= {"train_s": round(record["seconds"], 1), "peer": record}
        row |= score(*fits[LAG_PS], fit_t, held_t, frames[LAG_PS])
        row["vamp2_discrete_by_lag"] = {
            f"{ps:g}": row["vamp2_discrete"] if ps == LAG_PS else scores.discrete_vamp2(
                *fits[ps], lag, n_components=N_CVS, n_clusters=DISCRETE_CLUSTERS)
            for ps, lag in frames.items()}
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by python -m bench.datasets")
    parser.add_argument("--shipped", type=Path, default=Path(__file__).parents[1] / "data")
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["nct", "tica"],
                        choices=["nct", "tica", "deep_tica", "vampnet"])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).with_name("slow_cvs_results.jsonl"))
    parser.add_argument("--models", type=Path, help="keep the NCT models here (default: a "
                        "temporary folder)")
    parser.add_argument("--nct", nargs="+", default=[], metavar="KEY=VALUE",
                        help="NCT settings instead of the defaults, e.g. kinetic_weight=1 "
                             "restarts=1 (rows named nct[...])")
    args = parser.parse_args()
    torch.set_num_threads(1)
    nct_settings = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.nct)}
    commit = provenance.commit()
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets:
            train, test = set_files(name, args.data, args.shipped, Path(scratch))
            for seed in args.seeds:
                for row in run_set(name, train, test, seed, args.methods,
                                   args.models or Path(scratch), nct_settings):
                    row["commit"] = commit
                    print(json.dumps(row), flush=True)
                    with open(args.out, "a") as handle:
                        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
