"""Figures of the CV report (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nct_md.atomic import atomic_path  # noqa: E402
from nct_md.md.thermo import kt  # noqa: E402
from nct_md.model import per_ps_to_wavenumber  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip("."))
    plt.close(fig)


def spectrum(frequencies: np.ndarray, path: Path, n_cvs: int = 2) -> None:
    """Latent frequencies (1/ps, with cm^-1 on the right axis), the ``n_cvs`` CVs highlighted."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    k = np.arange(1, len(frequencies) + 1)
    colors = ["tab:red" if i < n_cvs else "tab:gray" for i in range(len(frequencies))]
    ax.bar(k, frequencies, color=colors)
    ax.set_xlabel("latent mode k (slowest first)")
    ax.set_ylabel(r"$\omega_k$ (1/ps)")
    right = ax.secondary_yaxis("right", functions=(per_ps_to_wavenumber,
                                                   lambda v: v * 2 * np.pi * 0.0299792458))
    right.set_ylabel(r"$\tilde\nu_k$ (cm$^{-1}$)")
    ax.set_title("Learned oscillator frequencies (CVs in red)")
    _save(fig, path)


def free_energy_surface(cv1: np.ndarray, cv2: np.ndarray, temperature: float, path: Path,
                        bins: int = 60) -> None:
    """``-kT ln p(CV1, CV2)`` in kJ/mol, minimum at 0."""
    hist, xe, ye = np.histogram2d(cv1, cv2, bins=bins, density=True)
    with np.errstate(divide="ignore"):
        fes = -kt(temperature) * np.log(hist.T)
    fes -= np.nanmin(fes[np.isfinite(fes)])
    fig, ax = plt.subplots(figsize=(5, 4))
    mesh = ax.pcolormesh(xe, ye, np.where(np.isfinite(fes), fes, np.nan), cmap="viridis")
    fig.colorbar(mesh, label="free energy (kJ/mol)")
    ax.set_xlabel("CV1 (ps)")
    ax.set_ylabel("CV2 (ps)")
    ax.set_title(f"Free-energy surface of the two slowest CVs, {temperature:g} K")
    _save(fig, path)


def ramachandran_by_cv(phi: np.ndarray, psi: np.ndarray, cvs: np.ndarray, path: Path) -> None:
    """Phi/Psi scatter (degrees) coloured by CV1 and by CV2."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for k, ax in enumerate(axes):
        order = np.random.default_rng(0).permutation(len(phi))
        sc = ax.scatter(np.degrees(phi[order]), np.degrees(psi[order]), c=cvs[order, k], s=2,
                        cmap="coolwarm", rasterized=True)
        fig.colorbar(sc, ax=ax, label=f"CV{k + 1} (ps)")
        ax.set(xlim=(-180, 180), ylim=(-180, 180), xlabel=r"$\phi$ (deg)",
               title=f"Ramachandran plot coloured by CV{k + 1}")
    axes[0].set_ylabel(r"$\psi$ (deg)")
    _save(fig, path)


def cv_timeseries(times: list[np.ndarray], cvs: list[np.ndarray], path: Path,
                  n_cvs: int = 2) -> None:
    """CV1..CVn against time (ns), one row per CV, one line per trajectory."""
    fig, axes = plt.subplots(n_cvs, 1, figsize=(8, 2.2 * n_cvs), sharex=True, squeeze=False)
    for k in range(n_cvs):
        for i, (t, c) in enumerate(zip(times, cvs, strict=True)):
            axes[k, 0].plot(t / 1000, c[:, k], lw=0.5, label=f"traj {i}")
        axes[k, 0].set_ylabel(f"CV{k + 1} (ps)")
    axes[-1, 0].set_xlabel("time (ns)")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    _save(fig, path)
