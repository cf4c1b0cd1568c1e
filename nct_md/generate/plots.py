"""Plots of generated samples against MD: energy histograms and Phi/Psi free-energy profiles."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nct_md.atomic import atomic_path  # noqa: E402
from nct_md.generate.diagnostics import free_energy_profile  # noqa: E402


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_energy_histograms(path: str | os.PathLike, energies: np.ndarray, weights: np.ndarray,
                           md_energies: np.ndarray | None = None) -> None:
    """Histograms of potential energies (kJ/mol): samples, reweighted samples, MD."""
    finite = np.isfinite(energies)
    series = [energies[finite]] + ([md_energies[np.isfinite(md_energies)]]
                                   if md_energies is not None else [])
    joined = np.concatenate(series)
    lo, hi = np.percentile(joined, [0.5, 99.5]) if len(joined) else (0.0, 1.0)
    bins = np.linspace(lo, hi, 60)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(energies[finite], bins=bins, density=True, histtype="step", label="samples")
    if weights[finite].sum() > 0:
        ax.hist(energies[finite], bins=bins, weights=weights[finite], density=True,
                histtype="step", label="samples, reweighted")
    if md_energies is not None:
        ax.hist(md_energies, bins=bins, density=True, histtype="step", color="k", label="MD")
    ax.set_xlabel("potential energy (kJ/mol)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def plot_phi_psi_profiles(path: str | os.PathLike, phi: np.ndarray, psi: np.ndarray,
                          weights: np.ndarray, phi_md: np.ndarray, psi_md: np.ndarray) -> None:
    """Free-energy profiles ``-ln p`` (kT) of Phi and Psi: reweighted samples vs MD."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name, s, ref in ((axes[0], "Phi", phi, phi_md), (axes[1], "Psi", psi, psi_md)):
        for label, values, w, style in (("samples, raw", s, None, ":"),
                                        ("samples, reweighted", s, weights, "-"),
                                        ("MD", ref, None, "k-")):
            centres, f = free_energy_profile(values, w)
            ax.plot(centres, f, style, label=label)
        ax.set_xlabel(f"{name} (degrees)")
        ax.set_ylabel("free energy (kT)")
        ax.set_xlim(-180, 180)
    axes[0].legend()
    fig.tight_layout()
    _save(fig, path)
