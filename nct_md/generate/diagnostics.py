"""Checks of generated samples: ESS, finite energies, chirality, Ramachandran KL vs MD.

Phi and Psi come from :func:`nct_md.cv.reference.phi_psi` (radians) and are compared in degrees,
``[-180, 180)``; histograms 64 x 64 over Phi and Psi; KL divergences in
nats, ``KL(MD || reweighted samples)``, with both histograms smoothed by adding ``KL_EPS`` to
every bin's probability (renormalised) so that empty bins stay finite.

The KL of a finite sample is never 0: MD bins its samples miss cost ``p ln(p / KL_EPS)`` each.
:func:`kl_noise_floor` gives the KL that exact, unweighted samples would have with the same
number of samples in each basin (bootstrap draws of the MD frames themselves), so a reported KL
can be read against what the sample count alone allows.
"""

from __future__ import annotations

import mdtraj as md
import numpy as np

from nct_md.cv.reference import phi_psi

#: probability added to every histogram bin before a KL divergence
KL_EPS = 1e-6
N_BINS = 64
_EDGES = np.linspace(-180.0, 180.0, N_BINS + 1)


def normalized_weights(log_weights: np.ndarray) -> np.ndarray:
    """Weights ``(n,)`` summing to 1 (zero where ``ln w = -inf``); uniform if all are -inf."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    finite = np.isfinite(log_weights)
    if not finite.any():
        return np.full(len(log_weights), 1.0 / max(len(log_weights), 1))
    w = np.zeros(len(log_weights))
    w[finite] = np.exp(log_weights[finite] - log_weights[finite].max())
    return w / w.sum()


def kish_ess(log_weights: np.ndarray) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` (a count, not a fraction)."""
    w = normalized_weights(log_weights)
    return float(1.0 / np.sum(w * w))


def l_chirality(traj: md.Trajectory) -> np.ndarray:
    """``(n_frames,)`` bool: every residue with N, CA, C and CB has the natural L configuration.

    L means ``(N - CA) . ((C - CA) x (CB - CA)) > 0`` (the "CORN" rule: seen from HA, CO, R
    and N run clockwise). Frames of molecules without such a residue are all True.
    """
    ok = np.ones(traj.n_frames, dtype=bool)
    for residue in traj.topology.residues:
        names = {a.name: a.index for a in residue.atoms}
        if not {"N", "CA", "C", "CB"} <= set(names):
            continue
        ca, n, c, cb = (traj.xyz[:, names[k]].astype(np.float64) for k in ("CA", "N", "C", "CB"))
        ok &= np.einsum("ij,ij->i", n - ca, np.cross(c - ca, cb - ca)) > 0
    return ok


def ramachandran_histogram(phi: np.ndarray, psi: np.ndarray,
                           weights: np.ndarray | None = None) -> np.ndarray:
    """Normalised 64 x 64 histogram (rows Phi, columns Psi); all zeros if the weight is 0."""
    h, _, _ = np.histogram2d(phi, psi, bins=[_EDGES, _EDGES], weights=weights)
    total = h.sum()
    return h / total if total > 0 else h


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = KL_EPS) -> float:
    """``sum p ln(p / q)`` in nats of two histograms after adding ``eps`` and renormalising."""
    p = (p + eps) / (p + eps).sum()
    q = (q + eps) / (q + eps).sum()
    return float(np.sum(p * np.log(p / q)))


def ramachandran_kl(phi_md: np.ndarray, psi_md: np.ndarray, phi_s: np.ndarray,
                    psi_s: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """KL(MD || samples) of Ramachandran histograms: whole map and within each Phi basin.

    ``within_basins`` averages the per-basin KLs with the MD basin populations, so it does not
    depend on the relative basin weights, which in the shipped MD set are a design choice.
    """
    out = {"full": kl_divergence(ramachandran_histogram(phi_md, psi_md),
                                 ramachandran_histogram(phi_s, psi_s, weights))}
    within = 0.0
    for name, md_mask, s_mask in (("phi_negative", phi_md < 0, phi_s < 0),
                                  ("phi_positive", phi_md >= 0, phi_s >= 0)):
        share = float(md_mask.mean())
        if share == 0 or weights[s_mask].sum() == 0:
            out[name] = float("nan") if share else 0.0
            within += share * out[name] if share else 0.0
            continue
        out[name] = kl_divergence(ramachandran_histogram(phi_md[md_mask], psi_md[md_mask]),
                                  ramachandran_histogram(phi_s[s_mask], psi_s[s_mask],
                                                         weights[s_mask]))
        within += share * out[name]
    out["within_basins"] = within
    return out


def kl_noise_floor(phi_md: np.ndarray, psi_md: np.ndarray, counts: dict[str, float],
                   repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """KL(MD || n MD frames drawn with replacement) per Phi basin, ``n = counts[basin]``.

    ``counts`` maps ``"phi_negative"`` / ``"phi_positive"`` to sample counts. Returns the mean
    over ``repeats`` draws per basin and ``within_basins`` (MD-share weighted): what exact,
    equally weighted samples with these counts would report. Weighted samples with the same
    Kish ESS usually do better than this many unweighted ones would suggest (small weights
    still fill bins), so the floor is for the counts, not the ESS.
    """
    rng = np.random.default_rng(seed)
    out, within = {}, 0.0
    for name, mask in (("phi_negative", phi_md < 0), ("phi_positive", phi_md >= 0)):
        share = float(mask.mean())
        n = int(round(counts.get(name, 0.0)))
        if share == 0:
            out[name] = 0.0
            continue
        if n < 1:
            out[name] = float("nan")
            within += share * out[name]
            continue
        phi, psi = phi_md[mask], psi_md[mask]
        target = ramachandran_histogram(phi, psi)
        draws = [rng.integers(len(phi), size=n) for _ in range(repeats)]
        out[name] = float(np.mean([kl_divergence(target, ramachandran_histogram(phi[d], psi[d]))
                                   for d in draws]))
        within += share * out[name]
    out["within_basins"] = within
    return out


def free_energy_profile(angles: np.ndarray, weights: np.ndarray | None = None,
                        bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (degrees) and ``-ln p`` (kT, minimum 0; inf for empty bins) of an angle."""
    edges = np.linspace(-180.0, 180.0, bins + 1)
    h, _ = np.histogram(angles, bins=edges, weights=weights)
    with np.errstate(divide="ignore"):
        f = -np.log(h / h.sum())
    finite = np.isfinite(f)
    if finite.any():
        f -= f[finite].min()
    return 0.5 * (edges[1:] + edges[:-1]), f


def summarize(traj: md.Trajectory, energies: np.ndarray, log_weights: np.ndarray,
              reference: md.Trajectory | None = None) -> dict:
    """Summary of samples (JSON-able): ESS, finite-energy and L fractions, Ramachandran KL.

    Parameters
    ----------
    traj : mdtraj.Trajectory, the samples; energies : ``(n,)`` kJ/mol;
    log_weights : ``(n,)``; reference : MD trajectory of the same molecule (for the KL), optional
    """
    n = len(energies)
    finite = np.isfinite(energies)
    chiral = l_chirality(traj)
    ess = kish_ess(log_weights)
    summary = {
        "n_samples": n,
        "finite_energy_fraction": float(finite.mean()),
        "l_chirality_fraction": float(chiral.mean()),
        "finite_and_l_fraction": float((finite & chiral).mean()),
        "kish_ess": ess,
        "kish_ess_fraction": ess / n,
        "energy_kJ_mol": {"mean": float(np.mean(energies[finite])) if finite.any() else None,
                          "median": float(np.median(energies[finite])) if finite.any() else None},
    }
    if reference is not None:
        phi_md, psi_md = np.degrees(phi_psi(reference))
        phi_s, psi_s = np.degrees(phi_psi(traj))
        kl = ramachandran_kl(phi_md, psi_md, phi_s, psi_s, normalized_weights(log_weights))
        kl["full_unweighted"] = kl_divergence(ramachandran_histogram(phi_md, psi_md),
                                              ramachandran_histogram(phi_s, psi_s))
        basins = {"phi_negative": phi_s < 0, "phi_positive": phi_s >= 0}
        summary["ramachandran_kl_nats"] = kl
        summary["basin_counts"] = {k: int(m.sum()) for k, m in basins.items()}
        summary["basin_kish_ess"] = {k: kish_ess(log_weights[m]) if m.any() else 0.0
                                     for k, m in basins.items()}
        summary["ramachandran_kl_floor_nats"] = kl_noise_floor(phi_md, psi_md,
                                                               summary["basin_counts"])
        summary["n_reference_frames"] = reference.n_frames
    return summary
