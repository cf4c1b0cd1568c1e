"""Reference coordinates for judging CVs: backbone torsions and Ramachandran basins."""

from __future__ import annotations

import mdtraj as md
import numpy as np

#: Basin labels, in the order of the integer codes returned by :func:`ramachandran_basin`.
BASINS = ("C5/beta", "C7eq/PII", "alphaR", "C7ax", "alphaL")


def backbone_torsions(traj: md.Trajectory) -> dict[str, np.ndarray]:
    """Phi and Psi (radians, ``(n_frames,)``) when the topology has exactly one of each.

    Returns an empty dict for molecules without a single Phi/Psi pair (e.g. no backbone).
    """
    _, phi = md.compute_phi(traj)
    _, psi = md.compute_psi(traj)
    if phi.shape[1] != 1 or psi.shape[1] != 1:
        return {}
    return {"phi": phi[:, 0].astype(np.float64), "psi": psi[:, 0].astype(np.float64)}


def ramachandran_basin(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Integer basin code per frame (index into :data:`BASINS`) from Phi/Psi in radians.

    Definitions (degrees), exhaustive and non-overlapping:

    - Phi < 0 and -120 <= Psi < 50: ``alphaR``;
    - Phi < 0 otherwise (extended Psi): ``C5/beta`` for Phi < -110, else ``C7eq/PII``;
    - Phi >= 0 and -150 <= Psi < -10: ``C7ax``;
    - Phi >= 0 otherwise: ``alphaL`` (with the rare Phi > 0, extended-Psi frames).
    """
    phi_deg, psi_deg = np.degrees(phi), np.degrees(psi)
    neg = phi_deg < 0
    alpha_r = neg & (psi_deg >= -120) & (psi_deg < 50)
    c5 = neg & ~alpha_r & (phi_deg < -110)
    c7eq = neg & ~alpha_r & ~c5
    c7ax = ~neg & (psi_deg >= -150) & (psi_deg < -10)
    codes = np.full(len(phi_deg), BASINS.index("alphaL"))
    codes[c5] = BASINS.index("C5/beta")
    codes[c7eq] = BASINS.index("C7eq/PII")
    codes[alpha_r] = BASINS.index("alphaR")
    codes[c7ax] = BASINS.index("C7ax")
    return codes


def torsion_features(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """``(cos phi, sin phi, cos psi, sin psi)`` per frame, shape ``(n_frames, 4)``."""
    return np.stack([np.cos(phi), np.sin(phi), np.cos(psi), np.sin(psi)], axis=1)
