"""The data an exploration has gathered so far: one :class:`Run` per trajectory file.

Every frame carries the iteration that produced it, the cumulative biased simulation time at
which it was sampled (ps; 0 for plain MD) and its log-weight: 0 for plain MD, the final-bias
weight :func:`nct_md.md.reweight.metad_log_weights` for metadynamics frames.

Runs are independent estimates of the same Boltzmann distribution, with different variances.
:func:`combined_weights` therefore scales the weights of each run to sum to the run's Kish
effective sample size ``(sum w)^2 / sum w^2`` (``n_frames`` for plain MD), the weighting that
makes a run count as much as the independent frames it is worth: a metadynamics run whose
weight sits on a few frames adds little, plain MD adds every frame.

Populations and free energies (:func:`population_weights`) leave the plain MD out once a biased
run exists: plain MD that has not crossed the slow barrier samples its starting basin only, not
the equilibrium between basins, and every one of its frames would count as an unbiased sample
with no weight in the basins it never reached (on alanine dipeptide, 2 ns of plain MD beside
1.5 ns of metadynamics raised the Phi free-energy difference by more than 1 kT). Training keeps it
(:func:`combined_weights`): within its basin it is the best-sampled data there is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mdtraj as md
import numpy as np

from nct_md.md.reweight import metad_log_weights


@dataclass(frozen=True)
class Run:
    """One trajectory file of the exploration.

    ``path`` (mdtraj HDF5), ``iteration`` (0 for plain MD), ``log_weights`` ``(n_frames,)``
    (``ln w``, 0 for plain MD), ``biased_ps`` ``(n_frames,)`` (cumulative biased simulation
    time of each frame, ps; 0 for plain MD).
    """

    path: Path
    iteration: int
    log_weights: np.ndarray
    biased_ps: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.log_weights)

    def load(self) -> md.Trajectory:
        """The trajectory (all atoms, positions nm, time ps)."""
        return md.load(str(self.path))


def plain_run(path: Path) -> Run:
    """A plain MD trajectory (iteration 0): log-weight 0 and biased time 0 for every frame."""
    with md.open(str(path)) as handle:
        n_frames = len(handle)
    return Run(Path(path), 0, np.zeros(n_frames), np.zeros(n_frames))


def biased_run(metad_dir: Path, iteration: int, offset_ps: float) -> Run:
    """The ``trajectory.h5`` of an ``nct-md metad`` folder, started ``offset_ps`` (ps) of biased
    time into the exploration; final-bias log-weights (:func:`metad_log_weights`)."""
    metad_dir = Path(metad_dir)
    log_w = metad_log_weights(metad_dir)
    time_ps = np.loadtxt(metad_dir / "colvar.csv", delimiter=",", skiprows=1, ndmin=2)[:, 0]
    return Run(metad_dir / "trajectory.h5", iteration, log_w, offset_ps + time_ps)


def combined_weights(runs: list[Run], stride: int = 1) -> np.ndarray:
    """Weights ``(n_frames,)`` of every ``stride``-th frame of ``runs`` concatenated in order,
    each run's scaled to sum to its Kish effective sample size (module docstring)."""
    parts = []
    for run in runs:
        log_w = run.log_weights[::stride]
        w = np.exp(log_w - log_w.max())
        parts.append(w * w.sum() / np.sum(w * w))  # sum: (sum w)^2 / sum w^2
    return np.concatenate(parts)


def population_weights(runs: list[Run]) -> np.ndarray:
    """Weights ``(n_frames,)`` for populations and free energies: :func:`combined_weights`,
    with plain MD at 0 once any run is biased (module docstring)."""
    weights = combined_weights(runs)
    if is_biased(runs):
        weights[np.concatenate([np.full(run.n_frames, run.iteration == 0) for run in runs])] = 0
    return weights


def is_biased(runs: list[Run]) -> bool:
    """Whether any run is a biased (metadynamics) run."""
    return any(run.iteration > 0 for run in runs)


def frame_table(runs: list[Run]) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of all runs concatenated: ``iteration`` ``(n,)`` int and ``biased_ps`` ``(n,)``."""
    iteration = np.concatenate([np.full(run.n_frames, run.iteration) for run in runs])
    return iteration, np.concatenate([run.biased_ps for run in runs])
