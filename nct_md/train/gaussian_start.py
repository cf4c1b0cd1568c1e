"""The Gaussian starting point of maximum-likelihood training.

A point-transformation flow at its identity initialisation followed by a harmonic latent is a
Gaussian model; it is the best one when the coordinates are the data's principal axes and each
latent frequency is the inverse standard deviation along its axis (``kT = 1``).

With few frames per degree of freedom the sample covariance is singular (fewer frames than
degrees of freedom: zero widths, an infinite starting likelihood) or its smallest widths are far
too small; :func:`start_covariance` then shrinks it toward its diagonal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from nct_md.flows import LinearPointTransform
from nct_md.flows.base import SymplecticFlow
from nct_md.latent import HarmonicLatent

if TYPE_CHECKING:
    from nct_md.model import Preprocessing

Tensor = torch.Tensor

#: Below this many frames per degree of freedom the start uses a shrunk covariance. On alanine
#: dipeptide (24 heavy-atom dof) shrinkage improved the validation likelihood at 1.6 frames per
#: dof and worsened it at 2.8; below 1 the sample covariance is singular.
SHRINK_BELOW_FRAMES_PER_DOF = 2.0


def shrunk_covariance(x: Tensor) -> tuple[Tensor, float]:
    """Covariance ``(d, d)`` of frames ``x`` ``(n, d)`` shrunk toward its diagonal.

    ``(1 - s) S + s diag(S)`` with the sample covariance ``S`` and the intensity ``s`` in [0, 1]
    estimated from the data (Schaefer and Strimmer 2005, target "D": the summed variance of the
    off-diagonal entries over their summed squares). Positive definite whenever every
    coordinate varies. Returns the matrix and ``s``.
    """
    n = x.shape[0]
    centred = x - x.mean(0)
    cov = centred.T @ centred / (n - 1)
    squares = centred.square()
    # variance of each entry of S: n / (n-1)^3 sum_k (x_ki x_kj - mean_k x_ki x_kj)^2
    entry_variance = n / (n - 1) ** 3 * (squares.T @ squares - cov.square() * (n - 1) ** 2 / n)
    off = ~torch.eye(len(cov), dtype=torch.bool, device=cov.device)
    intensity = float((entry_variance[off].sum() / cov[off].square().sum()).clamp(0, 1))
    return (1 - intensity) * cov + intensity * torch.diag(torch.diagonal(cov)), intensity


def start_covariance(x: Tensor) -> tuple[Tensor, float | None]:
    """Covariance ``(d, d)`` of frames ``x`` ``(n, d)`` for the Gaussian start.

    The sample covariance, or with fewer than :data:`SHRINK_BELOW_FRAMES_PER_DOF` frames per
    coordinate :func:`shrunk_covariance`. Returns the matrix and the shrinkage intensity
    (None when not shrunk).
    """
    if x.shape[0] >= SHRINK_BELOW_FRAMES_PER_DOF * x.shape[1]:
        return torch.cov(x.T), None
    return shrunk_covariance(x)


def principal_axes(cov: Tensor) -> tuple[Tensor, Tensor]:
    """Principal axes (columns, ``(d, d)``) of a covariance ``(d, d)`` and their widths ``(d,)``.

    Sorted by decreasing variance (widest, i.e. slowest, first); widths are standard deviations.
    """
    variances, axes = torch.linalg.eigh(cov)
    order = torch.argsort(variances, descending=True)
    return axes[:, order], variances[order].clamp_min(0).sqrt()


def gaussian_start(flow: SymplecticFlow, widths: Tensor) -> HarmonicLatent:
    """Scale the flow's couplings to the coordinate ``widths`` ``(d,)``; latent ``w = 1/width``."""
    for layer in flow.layers:
        if hasattr(layer, "set_feature_scale"):
            layer.set_feature_scale(widths)
    return HarmonicLatent(len(widths), 1.0 / widths)


@torch.no_grad()
def internal_gaussian_start(flow: SymplecticFlow, pre: Preprocessing, q: torch.Tensor
                            ) -> HarmonicLatent:
    """Fit the internal-coordinate layer to frames ``q`` ``(n, 3N)`` and start Gaussian.

    The last (linear) layer starts at the principal axes of the standardised internal
    coordinates and the latent frequencies at their inverse widths.
    """
    internal = flow.layers[0]
    internal.double().set_frame(*pre.affine(), pre.reference, pre.masses)
    y = internal.fit(pre.to_model(q))
    axes, widths = principal_axes(start_covariance(y)[0])
    last = flow.layers[-1]
    if isinstance(last, LinearPointTransform):
        last.double()
        last.base.copy_(axes.T)
        last.base_inv.copy_(axes)
        return HarmonicLatent(len(widths), 1.0 / widths)
    return HarmonicLatent(len(widths), 1.0 / y.std(0))
