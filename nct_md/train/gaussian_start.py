"""The Gaussian starting point of maximum-likelihood training.

A point-transformation flow at its identity initialisation followed by a harmonic latent is a
Gaussian model; it is the best one when the coordinates are the data's principal axes and each
latent frequency is the inverse standard deviation along its axis (``kT = 1``).
"""

from __future__ import annotations

import torch

from nct_md.flows.base import SymplecticFlow
from nct_md.latent import HarmonicLatent

Tensor = torch.Tensor


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
