"""Reference coordinates for judging CVs: backbone torsions and Ramachandran basins.

:func:`phi_psi` is the one place Phi and Psi are computed (radians); plots and sample
diagnostics convert to degrees where they show them. :func:`phi_psi_pairs` is the one place a
residue's Phi is paired with its Psi (per residue: explore's basins, the benches' torsions).
"""

from __future__ import annotations

import mdtraj as md
import numpy as np

from nct_md.errors import NCTInputError

#: Basin labels, in the order of the integer codes returned by :func:`ramachandran_basin`.
BASINS = ("C5/beta", "C7eq/PII", "alphaR", "C7ax", "alphaL")
#: The two cores of a residue's Phi, rad: a committed transition leaves one core and reaches the
#: other; frames between them, and steps across +-pi within the C5/beta basin, are neither.
PHI_CORES = {"negative": (-2.8, -0.8), "positive": (0.3, 2.0)}


def torsion_atoms(topology: md.Topology) -> tuple[np.ndarray, np.ndarray]:
    """Atom quadruplets (0-based) of every backbone Phi ``(n_phi, 4)`` and Psi ``(n_psi, 4)``."""
    frame = md.Trajectory(np.zeros((1, topology.n_atoms, 3)), topology)
    return md.compute_phi(frame)[0], md.compute_psi(frame)[0]


def phi_psi_pairs(topology: md.Topology) -> list[tuple[np.ndarray, np.ndarray]]:
    """Phi and Psi quadruplets ``(4,)`` of each residue that has both (the same CA), in
    residue order."""
    phi_atoms, psi_atoms = torsion_atoms(topology)
    return [(a, b) for a in phi_atoms for b in psi_atoms if a[2] == b[1]]


def phi_psi(traj: md.Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Backbone torsions Phi and Psi of the first residue that has both.

    Returns
    -------
    phi, psi : ndarray, shape ``(n_frames,)``, radians in ``(-pi, pi]`` (float32, as mdtraj)

    Raises
    ------
    NCTInputError
        If no residue has both torsions (they need the C-N-CA-C-N backbone atoms).
    """
    pairs = phi_psi_pairs(traj.topology)
    if not pairs:
        raise NCTInputError("the topology has no residue with both Phi and Psi (atoms C-N-CA-C-N "
                            "of a peptide backbone); Ramachandran angles need a peptide")
    angles = md.compute_dihedrals(traj, np.asarray(pairs[0]))
    return angles[:, 0], angles[:, 1]


def backbone_torsions(traj: md.Trajectory) -> dict[str, np.ndarray]:
    """:func:`phi_psi` (radians, float64, ``(n_frames,)``) when the topology has exactly one
    Phi and one Psi, on the same residue (a dipeptide).

    Returns an empty dict for other molecules (no backbone, or several residues).
    """
    phi_atoms, psi_atoms = torsion_atoms(traj.topology)
    if len(phi_atoms) != 1 or len(psi_atoms) != 1:
        return {}
    try:
        phi, psi = phi_psi(traj)
    except NCTInputError:
        return {}
    return {"phi": phi.astype(np.float64), "psi": psi.astype(np.float64)}


def ramachandran_basin(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Integer basin code per frame (index into :data:`BASINS`) from Phi/Psi in radians.

    Definitions (degrees), exhaustive and non-overlapping:

    - Phi < 0 and -120 <= Psi < 50: ``alphaR``;
    - Phi < 0 otherwise (extended Psi): ``C5/beta`` for Phi < -110, else ``C7eq/PII``;
    - Phi >= 120 with extended Psi (Psi < -120 or Psi >= 50): ``C5/beta``, which wraps across
      Phi = +-180;
    - Phi >= 0 and -150 <= Psi < -10 otherwise: ``C7ax``;
    - Phi >= 0 otherwise: ``alphaL`` (with the rare 0 <= Phi < 120, extended-Psi frames).
    """
    phi_deg, psi_deg = np.degrees(phi), np.degrees(psi)
    neg = phi_deg < 0
    extended = (psi_deg < -120) | (psi_deg >= 50)
    alpha_r = neg & ~extended
    c5 = (neg & extended & (phi_deg < -110)) | (~neg & extended & (phi_deg >= 120))
    c7eq = neg & extended & ~c5
    c7ax = ~neg & ~c5 & (psi_deg >= -150) & (psi_deg < -10)
    codes = np.full(len(phi_deg), BASINS.index("alphaL"))
    codes[c5] = BASINS.index("C5/beta")
    codes[c7eq] = BASINS.index("C7eq/PII")
    codes[alpha_r] = BASINS.index("alphaR")
    codes[c7ax] = BASINS.index("C7ax")
    return codes


def torsion_features(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """``(cos phi, sin phi, cos psi, sin psi)`` per frame, shape ``(n_frames, 4)``."""
    return np.stack([np.cos(phi), np.sin(phi), np.cos(psi), np.sin(psi)], axis=1)


def phi_core(phi: np.ndarray) -> np.ndarray:
    """Per frame ``(n,)``: -1 in the negative Phi core, +1 in the positive one, 0 in neither
    (:data:`PHI_CORES`; ``phi`` in radians)."""
    phi = np.asarray(phi)
    core = np.zeros(len(phi), dtype=np.int64)
    for sign, (low, high) in ((-1, PHI_CORES["negative"]), (1, PHI_CORES["positive"])):
        core[(phi > low) & (phi < high)] = sign
    return core


def committed_transitions(phi: np.ndarray) -> int:
    """Committed Phi transitions of a time series ``(n,)`` (radians): how often the core last
    visited (:func:`phi_core`) changes."""
    visited = phi_core(phi)
    visited = visited[visited != 0]
    return int(np.count_nonzero(visited[1:] != visited[:-1]))


def phi_core_delta_f(phi: np.ndarray, weights: np.ndarray) -> float | None:
    """``-ln(W(positive core) / W(negative core))`` in kT, ``W`` the summed ``weights``
    ``(n,)`` of the frames (or grid points) at ``phi`` ``(n,)`` radians in each core
    (:func:`phi_core`); None when a core has no weight."""
    core, weights = phi_core(phi), np.asarray(weights, dtype=np.float64)
    positive, negative = weights[core == 1].sum(), weights[core == -1].sum()
    return None if positive <= 0 or negative <= 0 else float(-np.log(positive / negative))
