"""How finely the slow-CV bench's discretised VAMP-2 tells CVs apart: the ideal CVs' spread.

The bench scores 2 CVs by discretised VAMP-2 (:func:`nct_md.cv.scores.discrete_vamp2`: 100
k-means states fitted on the training trajectories, constant + 2 singular functions, held-out
trajectories). Here the CVs are the reference torsions (Phi, Psi) of alanine dipeptide, and the
only thing varied is the k-means seed: the spread over seeds, at each scoring lag of the bench
(:data:`bench.bench_slow_cvs.LAGS_PS`, plus twice the longest), is the score's resolution. On a
set whose held-out trajectories never change Phi basin every CV that separates the basins scores
2 plus the slow remainder, and a difference smaller than this spread says nothing.

Run ``python -m bench.vamp2_resolution DATA [--sets ala2 ala2-amber14-vacuum] [--out
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
from bench.bench_slow_cvs import LAGS_PS, N_CVS, set_files
from nct_md.cv import reference, scores
from nct_md.cv.report import DISCRETE_CLUSTERS
from nct_md.errors import NCTInputError

#: the k-means seeds compared
KMEANS_SEEDS = (0, 1, 2, 3, 4)


def torsions(traj: md.Trajectory) -> np.ndarray:
    """``(n_frames, 2)`` Phi and Psi (radians) of alanine dipeptide."""
    return np.stack(reference.phi_psi(traj), axis=1)


def spread(train: list[Path], test: list[Path]) -> dict:
    """Discretised VAMP-2 of (Phi, Psi) per lag (ps keys) and k-means seed, with min and max."""
    fit = [torsions(md.load(str(p))) for p in train]
    held_trajs = [md.load(str(p)) for p in test]
    held = [torsions(t) for t in held_trajs]
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
    parser.add_argument("--sets", nargs="+", choices=["ala2", "ala2-amber14-vacuum"],
                        default=["ala2", "ala2-amber14-vacuum"])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).with_name("vamp2_resolution.json"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.out.exists():
        raise NCTInputError(f"{args.out} exists; choose another --out")
    commit = provenance.commit()
    out = {"cvs": "Phi, Psi (radians)", "kmeans_seeds": list(KMEANS_SEEDS),
           "n_clusters": DISCRETE_CLUSTERS, "commit": commit, "sets": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.sets:
            out["sets"][name] = spread(*set_files(name, args.data, args.shipped, Path(scratch)))
    provenance.write_record(args.out, out)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
