"""Held-out frames for early stopping, and the process group of data-parallel training.

:func:`validation_split` holds out time blocks (or whole trajectories) so that validation
frames are never neighbours of training frames; :func:`distributed_rank_and_size` and
:func:`mean_over_processes` let one training loop run alone or under ``torchrun``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import distributed as dist

from nct_md.errors import NCTInputError
from nct_md.md.data import PhaseSpaceData

#: Fewest training frames (after holding out the validation frames) a fit accepts.
MIN_TRAIN_FRAMES = 10


def frames_needed(fraction: float) -> int:
    """Frames in all that leave :data:`MIN_TRAIN_FRAMES` after holding out ``fraction``."""
    every = max(2, round(1 / fraction))
    return math.ceil(MIN_TRAIN_FRAMES * every / (every - 1))


def validation_split(data: PhaseSpaceData, fraction: float, by: str = "blocks",
                     n_blocks: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices ``(train, validation)``, never mixing frames within a time block.

    ``by="blocks"`` cuts every trajectory into ``n_blocks`` contiguous blocks and holds out every
    ``round(1/fraction)``-th block, so validation frames come from every trajectory and every
    stretch of time (basins visited only late or only early stay represented).
    ``by="trajectory"`` holds out every ``round(1/fraction)``-th whole trajectory (needs at
    least two).
    """
    if not 0 < fraction < 1:
        raise NCTInputError(f"validation fraction must be in (0, 1), got {fraction}")
    every = max(2, round(1 / fraction))
    bounds = data.boundaries
    if by == "trajectory":
        if data.n_traj < 2:
            raise NCTInputError("a split by trajectory needs at least two trajectories")
        pieces = [np.arange(bounds[k], bounds[k + 1]) for k in range(data.n_traj)]
        every = min(every, data.n_traj)
    elif by == "blocks":
        pieces = [block for k in range(data.n_traj)
                  for block in np.array_split(np.arange(bounds[k], bounds[k + 1]), n_blocks)]
    else:
        raise NCTInputError(f"validation split must be 'blocks' or 'trajectory', got {by!r}")
    held = [i % every == every - 1 for i in range(len(pieces))]
    train = np.concatenate([p for p, h in zip(pieces, held, strict=True) if not h])
    val = np.concatenate([p for p, h in zip(pieces, held, strict=True) if h])
    if len(train) < 2 or len(val) < 1:
        raise NCTInputError(f"too few frames ({len(data)}) to hold out a validation set; "
                            f"training needs at least {frames_needed(fraction)} frames")
    return train, val


def distributed_rank_and_size() -> tuple[int, int]:
    """``(rank, world size)`` of an initialised torch.distributed process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def mean_over_processes(value: torch.Tensor, world: int) -> float:
    """The mean of a scalar over all training processes (the loss of the global batch)."""
    value = value.detach().clone()
    if world > 1:
        dist.all_reduce(value)
        value /= world
    return float(value)
