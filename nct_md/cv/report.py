"""The CV report: frequencies, MI with Phi/Psi, VAMP-2 of NCT vs TICA vs Phi/Psi, basin accuracy.

All time-lagged quantities keep trajectories separate. VAMP models and classifiers are fitted on
the training trajectories and scored on the held-out ones; without training trajectories the
held-out set is split into alternating time blocks (stated in ``protocol``).
"""

from __future__ import annotations

from dataclasses import dataclass

import mdtraj as md
import numpy as np
import torch

from nct_md.cv import reference, scores
from nct_md.errors import NCTInputError
from nct_md.md.data import lag_frames
from nct_md.model import NCTModel, per_ps_to_wavenumber

#: k-means states of the discretised ("MSM-style") VAMP-2 score.
DISCRETE_CLUSTERS = 100
DISCRETE_PROTOCOL = (
    f"for each k: deeptime KMeans ({DISCRETE_CLUSTERS} centres, k-means++, seed 0) on the k "
    "slowest NCT CVs, resp. the k leading TICA components, standardised and fitted on the "
    "fitting trajectories; every frame one-hot encoded by its nearest centre; deeptime VAMP at "
    "lag {lag} frames fitted on the fitting trajectories and scored on the held-out ones "
    "(trajectories kept separate) with the constant plus the k leading singular functions, so "
    "scores lie in [1, 1 + k]; the same protocol for NCT and TICA")


@dataclass
class Features:
    """Per-trajectory arrays of one trajectory set (lists, one entry per trajectory)."""

    cvs: list[np.ndarray]  # (n, k_max) slowest first, model units (ps)
    coords: list[np.ndarray]  # (n, 3N) superposed Cartesian positions of the model atoms, nm
    torsions: list[dict[str, np.ndarray]]  # "phi", "psi" in radians (empty when absent)
    times: list[np.ndarray]  # (n,) ps

    @classmethod
    def of(cls, model: NCTModel, trajs: list[md.Trajectory], k_max: int) -> Features:
        cvs, coords, torsions, times = [], [], [], []
        for traj in trajs:
            atoms = model.select_atoms(traj.topology)
            q = model.preprocessing.superpose(traj.xyz[:, atoms])  # superposed once, used twice
            coords.append(q.double().cpu().numpy())
            with torch.no_grad():
                cvs.append(model.cvs(q, k_max).double().cpu().numpy())
            torsions.append(reference.backbone_torsions(traj))
            times.append(np.asarray(traj.time, np.float64))
        return cls(cvs, coords, torsions, times)

    @property
    def has_torsions(self) -> bool:
        return all(t for t in self.torsions)

    def cat(self, name: str) -> np.ndarray:
        if name in ("phi", "psi"):
            return np.concatenate([t[name] for t in self.torsions])
        return np.concatenate(getattr(self, name))


def _blocks(features: Features, block: int) -> tuple[Features, Features]:
    """Split each trajectory into alternating blocks of ``block`` frames (even, odd)."""
    even, odd = Features([], [], [], []), Features([], [], [], [])
    for k in range(len(features.cvs)):
        n = len(features.cvs[k])
        for start in range(0, n, block):
            target = even if (start // block) % 2 == 0 else odd
            sl = slice(start, min(n, start + block))
            target.cvs.append(features.cvs[k][sl])
            target.coords.append(features.coords[k][sl])
            target.torsions.append({key: v[sl] for key, v in features.torsions[k].items()})
            target.times.append(features.times[k][sl])
    return even, odd


def build_report(model: NCTModel, test: list[md.Trajectory],
                 train: list[md.Trajectory] | None = None, lag_ps: float = 10.0,
                 k_max: int = 4) -> tuple[dict, Features]:
    """Compute the ``report.json`` content (contract in the README) and held-out features."""
    if not test:
        raise NCTInputError("no trajectories to report on")
    k_max = min(k_max, model.preprocessing.n_dof)
    lag = lag_frames([t.time for t in test + (train or [])], lag_ps)
    held = Features.of(model, test, k_max)
    if train:
        fit, protocol = Features.of(model, train, k_max), "fit on training trajectories, " \
            "scored on the given (held-out) trajectories"
    else:
        block = min(max(10 * lag, 200), max(len(c) for c in held.cvs) // 2)
        if block <= lag:
            raise NCTInputError(
                f"the trajectories are too short ({max(len(c) for c in held.cvs)} frames) to be "
                f"split into fitting and scoring blocks at a lag of {lag} frames; pass the "
                "training trajectories (--train) or longer ones")
        fit, held = _blocks(held, block=block)
        protocol = (f"no training trajectories: fit on even and scored on odd blocks of "
                    f"{block} frames of the given trajectories")
    keep = [i for i, c in enumerate(held.cvs) if len(c) > lag]
    keep_fit = [i for i, c in enumerate(fit.cvs) if len(c) > lag]
    held_l = Features(*[[getattr(held, f)[i] for i in keep] for f in
                        ("cvs", "coords", "torsions", "times")])
    fit_l = Features(*[[getattr(fit, f)[i] for i in keep_fit] for f in
                       ("cvs", "coords", "torsions", "times")])

    n_fit = sum(len(c) for c in fit_l.cvs)
    if not held_l.cvs or n_fit < 2 * DISCRETE_CLUSTERS:
        raise NCTInputError(
            f"too few frames to score ({n_fit} fitting frames in trajectories longer than the "
            f"lag; the discretised VAMP-2 needs at least {2 * DISCRETE_CLUSTERS}); pass longer "
            "trajectories or the training trajectories (--train)")
    w = model.frequencies
    report: dict = {
        "lag_ps": float(lag_ps),
        "lag_frames": lag,
        "n_frames": int(sum(t.n_frames for t in test)),
        "n_trajectories": len(test),
        "frequencies_per_ps": w.tolist(),
        "frequencies_cm-1": per_ps_to_wavenumber(w).tolist(),
        "protocol": protocol,
        "mutual_information": {},
        "vamp2": {"nct": {}, "tica": {}},
    }
    report["vamp2_discrete"] = {"protocol": DISCRETE_PROTOCOL.format(lag=lag), "nct": {},
                                "tica": {}}
    for k in range(1, k_max + 1):
        spaces = {"nct": ([c[:, :k] for c in fit_l.cvs], [c[:, :k] for c in held_l.cvs]),
                  "tica": (scores.tica_components(fit_l.coords, lag, k, fit_l.coords),
                           scores.tica_components(fit_l.coords, lag, k, held_l.coords))}
        for name, (fit_x, held_x) in spaces.items():
            report["vamp2"][name][str(k)] = scores.vamp2(fit_x, held_x, lag)
            report["vamp2_discrete"][name][str(k)] = scores.discrete_vamp2(
                fit_x, held_x, lag, n_components=k, n_clusters=DISCRETE_CLUSTERS)
    if held.has_torsions and fit.has_torsions:
        feats = [reference.torsion_features(t["phi"], t["psi"]) for t in held_l.torsions]
        fit_feats = [reference.torsion_features(t["phi"], t["psi"]) for t in fit_l.torsions]
        report["vamp2"]["phipsi"] = scores.vamp2(fit_feats, feats, lag)
        cvs_all, phi, psi = held.cat("cvs"), held.cat("phi"), held.cat("psi")
        for k in range(k_max):
            report["mutual_information"][f"cv{k + 1}"] = {
                "phi": scores.mutual_information(cvs_all[:, k], phi, periodic_y=True),
                "psi": scores.mutual_information(cvs_all[:, k], psi, periodic_y=True)}
        report["basin_classification"] = _basin_scores(model, fit, held, lag)
    return report, held


def _basin_scores(model: NCTModel, fit: Features, held: Features, lag: int) -> dict:
    """kNN balanced accuracy of the Ramachandran basin from (CV1, CV2) and from TICA-2."""
    fit_y = reference.ramachandran_basin(fit.cat("phi"), fit.cat("psi"))
    held_y = reference.ramachandran_basin(held.cat("phi"), held.cat("psi"))
    fit_tica = np.concatenate(scores.tica_components(fit.coords, lag, 2, fit.coords))
    held_tica = np.concatenate(scores.tica_components(fit.coords, lag, 2, held.coords))
    counts = {name: int(np.sum(held_y == i)) for i, name in enumerate(reference.BASINS)}
    return {
        "basins": list(reference.BASINS),
        "held_out_counts": counts,
        "knn_k": 15,
        "nct_cv1_cv2": scores.knn_balanced_accuracy(fit.cat("cvs")[:, :2], fit_y,
                                                    held.cat("cvs")[:, :2], held_y),
        "tica_2": scores.knn_balanced_accuracy(fit_tica, fit_y, held_tica, held_y),
    }
