"""File-format details the readers need: DCD headers and quiet C readers.

dcd_header(path)
    Frames announced by a DCD header and its frame times (ps), for truncation checks and times.
quiet_open(path)
    ``mdtraj.open`` without the C DCD plugin's lines on stdout.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import mdtraj as md
import numpy as np

#: the AKMA time unit of DCD headers, in ps
AKMA_PS = 0.04888821


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence C-level writes to stdout (mdtraj's DCD plugin prints a line per file opened)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def quiet_open(path: Path, **kwargs) -> contextlib.AbstractContextManager:
    """``mdtraj.open`` without the DCD plugin's chatter on stdout."""
    with _quiet_stdout():
        return md.open(str(path), **kwargs)


def dcd_header(path: Path) -> tuple[int, tuple[float, float] | None]:
    """Frames announced by a CHARMM/OpenMM DCD header (0 if unknown) and
    ``(time of frame 0, frame spacing)`` in ps, or None where the header holds no time step.

    mdtraj writes a time step of exactly 1 AKMA unit when it does not know one; that counts as
    no time step.
    """
    with open(path, "rb") as handle:
        head = handle.read(48)
    if len(head) < 48 or head[4:8] != b"CORD":
        return 0, None
    _, _, n_frames, first_step, interval = struct.unpack("<i4s3i", head[:20])
    (delta,) = struct.unpack("<f", head[44:48])
    if not (np.isfinite(delta) and delta > 0 and delta != 1.0 and interval > 0):
        return max(n_frames, 0), None
    step_ps = float(delta) * AKMA_PS
    return max(n_frames, 0), (first_step * step_ps, interval * step_ps)
