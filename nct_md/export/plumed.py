"""A ready PLUMED input for the exported CVs (PYTORCH_MODEL), with OPES_METAD or METAD.

PLUMED's PYTORCH_MODEL loads a TorchScript file with ``torch::jit::load``, calls ``forward``
once on zeros of shape ``(1, n_in)`` to count the outputs, and then at every step passes its
arguments as a float32 tensor of shape ``(1, n_in)`` (requiring grad) and takes the gradient of
each output component ``node-j`` by one autograd backward pass. Our arguments are the Cartesian
components of the model's atoms, ``p1.x, p1.y, p1.z, p2.x, ...`` in the model's atom order, in
PLUMED's length unit, which is nm unless the input sets ``UNITS LENGTH=...`` (the CV module
expects nm: keep the default). ``POSITION`` takes ``NOPBC`` because by default it returns the
minimal image of each atom's position relative to the origin, which would break the molecule
apart; ``WHOLEMOLECULES`` first makes the selected atoms whole across periodic boundaries.
"""

from __future__ import annotations

import mdtraj as md
import numpy as np

from nct_md.cv.reference import torsion_atoms

#: Bias methods :func:`plumed_input` writes.
BIASES = ("opes", "metad")
#: Default Gaussian width of a biased CV in units of its latent standard deviation ``1 / w``.
WIDTH = 0.3


def default_widths(frequencies: list[float] | np.ndarray) -> list[float]:
    """Gaussian widths (ps) ``0.3 / w`` for latent angular frequencies ``w`` (1/ps).

    Latent position ``Q_k`` has standard deviation ``1 / w_k`` (model units); 0.3 of it is close
    to the CVs' fluctuation within a basin over 20 ps in the shipped alanine-dipeptide data.
    """
    return [WIDTH / float(w) for w in frequencies]


def _torsions(info: dict, topology: md.Topology) -> list[tuple[str, list[int]]]:
    """``[("phi", [4 atoms, 1-based in the full system]), ...]`` for the model's backbone."""
    found = []
    for name, indices in zip(("phi", "psi"), torsion_atoms(topology), strict=True):
        for k, quad in enumerate(indices):
            label = name if len(indices) == 1 else f"{name}{k + 1}"
            found.append((label, [info["atom_indices"][i] + 1 for i in quad]))
    return found


def plumed_input(info: dict, model_file: str, bias: str = "opes", n_biased: int = 2,
                 widths: list[float] | None = None, temperature: float | None = None,
                 topology: md.Topology | None = None, pace: int = 250, barrier: float = 40.0,
                 height: float = 2.0, bias_factor: float = 10.0, stride: int = 500) -> str:
    """Text of a ``plumed.dat`` that computes the CVs and biases the first ``n_biased``.

    Parameters
    ----------
    info : dict
        Metadata of the exported CV file (``nct_md.export.load_torchscript``): atom indices
        (0-based), number of CVs, latent frequencies, temperature.
    model_file : str
        Path of the TorchScript file as PLUMED will see it (relative to PLUMED's working folder).
    bias : {"opes", "metad"}
        ``OPES_METAD`` (with ``BARRIER`` kJ/mol) or well-tempered ``METAD`` (Gaussian ``HEIGHT``
        kJ/mol, ``BIASFACTOR``); the other is written commented out.
    n_biased : int
        Number of CVs biased (CV1, CV2, ...).
    widths : list of float, optional
        Gaussian widths (ps) of the biased CVs for METAD; default :func:`default_widths`.
    temperature : float, optional
        K; default the model's.
    topology : mdtraj.Topology, optional
        The model's atoms (``NCTModel.topology``); adds TORSION lines for phi/psi, printed too.
    pace, stride : int
        Steps between Gaussians / kernels and between COLVAR lines.
    barrier : float
        OPES_METAD's BARRIER, kJ/mol (it sets the bias factor to barrier / kT).
    height, bias_factor : float
        METAD's initial Gaussian height (kJ/mol) and well-tempering factor.
    """
    if bias not in BIASES:
        raise ValueError(f"bias must be one of {BIASES}, got {bias!r}")
    n_cvs = int(info["n_cvs"])
    if not 1 <= n_biased <= n_cvs:
        raise ValueError(f"n_biased must be between 1 and {n_cvs}, got {n_biased}")
    serials = [i + 1 for i in info["atom_indices"]]
    temperature = float(info["temperature"] if temperature is None else temperature)
    if widths is None:
        widths = default_widths(info["frequencies_per_ps"][:n_biased])
    args = ",".join(f"cv.node-{j}" for j in range(n_biased))
    positions = ",".join(f"p{k}.{c}" for k in range(1, len(serials) + 1) for c in "xyz")
    lines = [
        f"# NCT slow CVs ({n_cvs}) of {len(serials)} atoms; written by nct-md export.",
        "# Lengths in nm, energies in kJ/mol (PLUMED defaults): the CV model expects nm.",
        "# PLUMED serial numbers are 1-based (0-based model atom i is serial i+1).",
        f"WHOLEMOLECULES ENTITY0={','.join(map(str, serials))}",
        *[f"p{k}: POSITION ATOM={s} NOPBC" for k, s in enumerate(serials, start=1)],
        f"cv: PYTORCH_MODEL FILE={model_file} ARG={positions}",
    ]
    monitored = [f"cv.node-{j}" for j in range(n_cvs)]
    if topology is not None:
        for label, quad in _torsions(info, topology):
            lines.append(f"{label}: TORSION ATOMS={','.join(map(str, quad))}")
            monitored.append(label)
    opes = (f"bias: OPES_METAD ARG={args} PACE={pace} BARRIER={barrier:g} "
            f"TEMP={temperature:g} FILE=KERNELS STATE_WFILE=STATE STATE_WSTRIDE={100 * pace}")
    metad = (f"bias: METAD ARG={args} PACE={pace} HEIGHT={height:g} BIASFACTOR={bias_factor:g} "
             f"TEMP={temperature:g} SIGMA={','.join(f'{w:.4g}' for w in widths)} FILE=HILLS")
    lines += [opes, f"# {metad}"] if bias == "opes" else [metad, f"# {opes}"]
    lines.append(f"PRINT ARG={','.join(monitored)},bias.bias STRIDE={stride} FILE=COLVAR")
    return "\n".join(lines) + "\n"
