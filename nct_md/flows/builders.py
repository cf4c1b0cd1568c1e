"""Ready-made stacks of symplectic layers."""

from __future__ import annotations

import torch

from nct_md.flows.base import SymplecticFlow
from nct_md.flows.coupling import AffineCoupling
from nct_md.flows.linear import LinearPointTransform
from nct_md.flows.spline import SplineCoupling

#: coupling layers by name
COUPLINGS = ("affine", "spline")


def alternating_masks(n: int, n_layers: int, generator: torch.Generator | None = None
                      ) -> list[torch.Tensor]:
    """Coupling masks of shape ``(n,)``: random halves, each followed by its complement.

    Every coordinate is transformed once in each consecutive pair of layers.
    """
    masks = []
    for i in range(n_layers):
        if i % 2 == 0:
            mask = torch.zeros(n, dtype=torch.bool)
            mask[torch.randperm(n, generator=generator)[: n // 2]] = True
        else:
            mask = ~masks[-1]
        masks.append(mask)
    return masks


def point_flow(n: int, n_couplings: int = 4, hidden: int = 64, depth: int = 2,
               linear: bool = True, generator: torch.Generator | None = None,
               coupling: str = "affine", bins: int = 8) -> SymplecticFlow:
    """A configuration-separable flow: couplings, then an optional linear point transform.

    Parameters
    ----------
    n : int
        Number of coordinates (half the phase-space dimension).
    n_couplings : int
        Number of affine-coupling point transformations.
    hidden, depth : int
        Conditioner width and hidden layers.
    linear : bool
        End with a learnable :class:`LinearPointTransform` (mixes all coordinates, so the
        latent oscillators can be any linear combinations of the couplings' outputs).
    generator : torch.Generator, optional
        Source of the random coupling masks.
    coupling : {"affine", "spline"}
        :class:`AffineCoupling` or :class:`~nct_md.flows.spline.SplineCoupling` (multimodal
        coordinates, e.g. torsions; ``bins`` bins on [-5, 5], for standardised inputs).
    """
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    masks = alternating_masks(n, n_couplings, generator)
    layers = [AffineCoupling(mask, hidden, depth) if coupling == "affine"
              else SplineCoupling(mask, hidden, depth, bins) for mask in masks]
    if linear:
        layers.append(LinearPointTransform(n))
    return SymplecticFlow(layers)
