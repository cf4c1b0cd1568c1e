"""New states found by an exploration: a generic detector, and backbone basins for peptides.

Generic (no Phi/Psi needed)
---------------------------
A frame is *new* when the model trained in this iteration, on all data gathered before the
iteration's biased run, flags it out of distribution (:mod:`nct_md.cv.ood`: its ``-ln p(q)``,
the latent configurational energy plus the flow's volume term, above the 99.9th percentile of
the training frames'). States are counted by k-means (k-means++ start, ``scipy.cluster.vq.
kmeans2``, fixed seed) on the model's biased CVs of all frames so far, each CV scaled to unit
standard deviation; a state is *new* in this iteration when most of its frames (more than
half) are frames of the iteration's run that are flagged new. The clustering is redone each
iteration, in that iteration's CVs, so state numbers of different iterations differ. (Measured
on alanine dipeptide: a model trained on Phi < 0 frames flagged all 47 frames of its biased run
in the Phi > 0 core and 24 of the other 453; with 16 clusters exactly one state was new, 81 % of
its frames in that core.)

Peptides
--------
For each residue with both backbone torsions: the time of first visit of each Ramachandran
basin (:func:`nct_md.cv.reference.ramachandran_basin`) and of the positive Phi core
(:data:`~nct_md.cv.reference.PHI_CORES`, 0.3 to 2.0 rad: a frame at Phi = +179 degrees has only
stepped across +-pi inside C5/beta), and the reweighted free-energy difference between the
cores, ``dF = -ln(W(positive core) / W(negative core))`` in kT (``W``: the summed weights of the
frames so far), None while no frame is in the positive core. Times are cumulative biased
simulation times in ps (0: already in the plain MD).
"""

from __future__ import annotations

import warnings

import mdtraj as md
import numpy as np
from scipy.cluster.vq import kmeans2

from nct_md.cv.reference import (
    BASINS,
    phi_core,
    phi_core_delta_f,
    phi_psi_pairs,
    ramachandran_basin,
)

#: How :func:`count_states` defines states and new states, as recorded in explore.json.
STATE_METHOD = ("k-means (k-means++, scipy kmeans2) on the biased CVs of all frames so far, "
                "each CV scaled to unit standard deviation; a state is new when more than half "
                "of its frames are this iteration's frames out of distribution (-ln p(q) above "
                "the model's 99.9th-percentile threshold)")


def cluster(cvs: np.ndarray, n_states: int, seed: int) -> np.ndarray:
    """k-means labels ``(n,)`` of CVs ``(n, k)``, each column scaled to unit standard deviation;
    at most ``n_states`` clusters (fewer when there are fewer distinct frames)."""
    scale = cvs.std(axis=0)
    scaled = cvs / np.where(scale > 0, scale, 1.0)
    k = min(n_states, len(np.unique(scaled, axis=0)))
    if k < 2:
        return np.zeros(len(cvs), dtype=int)
    with warnings.catch_warnings():  # an empty cluster is harmless here: it is not counted
        warnings.simplefilter("ignore")
        _, labels = kmeans2(scaled, k, minit="++", rng=seed)
    return labels


def count_states(labels: np.ndarray, iteration: np.ndarray, biased_ps: np.ndarray,
                 weights: np.ndarray, new: np.ndarray) -> dict:
    """Visited states and how many are new in the current iteration (module docstring).

    Parameters
    ----------
    labels, iteration, biased_ps, weights, new : ndarray ``(n,)``
        Per frame of all data so far: state label, iteration that sampled it, cumulative
        biased time (ps), weight, and whether the current model flags it new (out of
        distribution; False for frames before the current run).
    """
    states = []
    for label in np.unique(labels):
        members = labels == label
        states.append({"state": int(label), "n_frames": int(members.sum()),
                       "weight_fraction": float(weights[members].sum() / weights.sum()),
                       "first_iteration": int(iteration[members].min()),
                       "first_visit_biased_ps": float(biased_ps[members].min()),
                       "new": bool(new[members].mean() > 0.5)})
    return {"method": STATE_METHOD, "n_visited": len(states),
            "n_new": sum(s["new"] for s in states), "visited": states}


def _first_visit(mask: np.ndarray, biased_ps: np.ndarray) -> float | None:
    return float(biased_ps[mask].min()) if mask.any() else None


def backbone_basins(trajs: list[md.Trajectory], biased_ps: np.ndarray,
                    weights: np.ndarray) -> list[dict]:
    """Per residue with Phi and Psi: first visits (cumulative biased ps) of each basin and of
    the positive Phi core, the core's weighted share and ``dF`` (kT); empty for non-peptides.

    ``trajs`` are all data so far (one topology), ``biased_ps`` and ``weights`` ``(n,)`` per
    frame of them concatenated.
    """
    topology = trajs[0].topology
    pairs = phi_psi_pairs(topology)
    if not pairs:
        return []
    quadruplets = np.asarray([atoms for pair in pairs for atoms in pair])  # Phi, Psi, Phi, ...
    angles = np.concatenate([md.compute_dihedrals(t, quadruplets) for t in trajs])
    out = []
    for k, (a, _) in enumerate(pairs):
        phi, psi = angles[:, 2 * k].astype(np.float64), angles[:, 2 * k + 1].astype(np.float64)
        codes, core = ramachandran_basin(phi, psi), phi_core(phi)
        out.append({
            "residue": str(topology.atom(int(a[2])).residue),
            "basin_first_visit_biased_ps": {name: _first_visit(codes == j, biased_ps)
                                            for j, name in enumerate(BASINS)},
            "phi_positive_core_first_visit_biased_ps": _first_visit(core == 1, biased_ps),
            "phi_positive_core_weight_fraction": float(weights[core == 1].sum() / weights.sum()),
            "delta_f_phi_kt": phi_core_delta_f(phi, weights)})
    return out
