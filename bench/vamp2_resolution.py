"""How finely the slow-CV bench's discretised VAMP-2 tells CVs apart: the expert CVs' spread.

The bench scores 2 CVs by discretised VAMP-2 (:func:`nct_md.cv.scores.discrete_vamp2`: 100
k-means states fitted on the training trajectories, constant + 2 singular functions, held-out
trajectories). Here the CVs are fixed expert CVs (:func:`expert_cvs`: Phi and Psi of alanine
dipeptide; for longer peptides the 2-component TICA of every backbone torsion's sin and cos)
and the only thing varied is the k-means seed: the spread over seeds, at each scoring lag of the
bench (:data:`bench.bench_slow_cvs.LAGS_PS`, plus twice the longest), is the score's resolution.
On a set whose held-out trajectories never change Phi basin every CV that separates the basins
scores 2 plus the slow remainder, and a difference smaller than this spread says nothing.

Run ``python -m bench.vamp2_resolution DATA [--sets ala2 ...] [--out
bench/vamp2_resolution.json]`` (``DATA`` as for :mod:`bench.bench_slow_cvs`); writes one JSON
(never overwritten) and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import mdtraj as md
import numpy as np

from bench import provenance
from bench.bench_slow_cvs import LAG_PS, LAGS_PS, N_CVS, SETS, set_files, torsion_features
from nct_md.cv import reference, scores
from nct_md.cv.report import DISCRETE_CLUSTERS

#: the k-means seeds compared
KMEANS_SEEDS = (0, 1, 2, 3, 4)


def expert_cvs(train: list[md.Trajectory], test: list[md.Trajectory]
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(n_frames, 2)`` expert CVs of each training and held-out trajectory: Phi and Psi
    (radians) of alanine dipeptide, else TICA-2 (fitted on ``train`` at the acceptance lag) of
    :func:`bench.bench_slow_cvs.torsion_features`."""
    if train[0].n_residues <= 3:
        return tuple([np.stack(reference.phi_psi(t), axis=1) for t in trajs]
                     for trajs in (train, test))
    lag = int(round(LAG_PS / float(train[0].timestep)))
    fit = [torsion_features(t) for t in train]
    return tuple(scores.tica_components(fit, lag, N_CVS, [torsion_features(t) for t in trajs])
                 for trajs in (train, test))


def spread(train: list[Path], test: list[Path]) -> dict:
    """Discretised VAMP-2 of :func:`expert_cvs` per lag (ps keys) and k-means seed, with min
    and max."""
    train_trajs, held_trajs = ([md.load(str(p)) for p in paths] for paths in (train, test))
    fit, held = expert_cvs(train_trajs, held_trajs)
    step_ps = float(held_trajs[0].timestep)
    out = {}
    for ps in (*LAGS_PS, 2 * LAGS_PS[-1]):
        lag = int(round(ps / step_ps))
        values = [scores.discrete_vamp2(fit, held, lag, n_components=N_CVS,
                                        n_clusters=DISCRETE_CLUSTERS, seed=seed)
                  for seed in KMEANS_SEEDS]
        out[f"{ps:g}"] = {"by_kmeans_seed": values, "min": min(values), "max": max(values)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by python -m bench.datasets")
    parser.add_argument("--shipped", type=Path, default=Path(__file__).parents[1] / "data")
    parser.add_argument("--sets", nargs="+", choices=list(SETS),
                        default=["ala2", "ala2-amber14-vacuum", "ala3-amber14-obc2"])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).with_name("vamp2_resolution.json"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    provenance.refuse_existing(args.out, "--out")
    commit = provenance.commit()
    out = {"cvs": "alanine dipeptide: Phi, Psi (radians); longer peptides: TICA-2 of backbone "
                  "torsion sin/cos", "kmeans_seeds": list(KMEANS_SEEDS),
           "n_clusters": DISCRETE_CLUSTERS, "commit": commit, "sets": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets:
            out["sets"][name] = spread(*set_files(name, args.data, args.shipped, Path(scratch)))
    provenance.write_record(args.out, out)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
