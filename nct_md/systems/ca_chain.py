"""A synthetic protein-sized CA trace: a random-walk chain with thermal noise.

Stands in for CA (or coarse-grained) trajectories of real proteins in tests and benchmarks of
data with few frames and many degrees of freedom (e.g. 214 CA atoms, 636 internal degrees of
freedom, ~100 frames, as a short adenylate-kinase trajectory).
"""

from __future__ import annotations

import mdtraj as md
import numpy as np

#: Distance between consecutive CA atoms, nm.
CA_SPACING_NM = 0.38


def ca_chain(n_residues: int, seed: int = 0) -> tuple[np.ndarray, md.Topology]:
    """CA positions ``(n_residues, 3)`` nm of a random walk with 0.38 nm steps, and its topology
    (one ALA residue with one bonded CA atom per position)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(n_residues, 3))
    chain = np.cumsum(CA_SPACING_NM * steps / np.linalg.norm(steps, axis=1, keepdims=True),
                      axis=0)
    topology = md.Topology()
    residues = topology.add_chain()
    previous = None
    for k in range(n_residues):
        atom = topology.add_atom("CA", md.element.carbon,
                                 topology.add_residue("ALA", residues, resSeq=k + 1))
        if previous is not None:
            topology.add_bond(previous, atom)
        previous = atom
    return chain, topology


def noisy_frames(chain: np.ndarray, n_frames: int, rng: np.random.Generator,
                 noise_nm: float = 0.03) -> np.ndarray:
    """``n_frames`` copies of ``chain`` with Gaussian noise, ``(n_frames, n, 3)`` float32 nm."""
    return (chain + noise_nm * rng.normal(size=(n_frames, *chain.shape))).astype(np.float32)
