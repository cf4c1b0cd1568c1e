"""Shared fixtures: the shipped alanine dipeptide and small synthetic trajectories."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

DATA = Path(__file__).resolve().parent.parent / "data"
ALA_PDB = DATA / "alanine-dipeptide.pdb"


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniformly random proper rotation matrices, shape ``(n, 3, 3)``."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


@pytest.fixture
def ala_pdb() -> Path:
    """Path of the shipped ACE-ALA-NME structure (22 atoms)."""
    return ALA_PDB


@pytest.fixture
def ala() -> md.Trajectory:
    """The shipped alanine dipeptide as a one-frame trajectory."""
    return md.load(str(ALA_PDB))


def _make_frames(ala: md.Trajectory, n_frames: int, seed: int,
                 noise: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Thermal-looking frames: noisy copies of the structure, randomly rotated and moved.

    Returns positions ``(n, 22, 3)`` nm and velocities ``(n, 22, 3)`` nm/ps (float32).
    """
    rng = np.random.default_rng(seed)
    base = ala.xyz[0].astype(np.float64)
    local = base + noise * rng.normal(size=(n_frames, *base.shape))
    rot = random_rotations(n_frames, rng)
    xyz = np.einsum("fnj,fij->fni", local, rot) + rng.normal(scale=2.0, size=(n_frames, 1, 3))
    velocities = rng.normal(scale=0.5, size=xyz.shape)
    return xyz.astype(np.float32), velocities.astype(np.float32)


@pytest.fixture
def make_frames():
    """Factory ``make_frames(ala, n_frames, seed, noise=0.01) -> (xyz, velocities)``."""
    return _make_frames


@pytest.fixture
def rotations():
    """Factory ``rotations(n, rng) -> (n, 3, 3)`` uniformly random proper rotations."""
    return random_rotations


@pytest.fixture
def write_h5(ala):
    """Factory: write an mdtraj HDF5 trajectory (optionally with velocities); returns its path."""

    def write(path: Path, n_frames: int = 50, seed: int = 0, velocities: bool = True,
              xyz: np.ndarray | None = None) -> Path:
        frames, vel = _make_frames(ala, n_frames, seed)
        frames = frames if xyz is None else xyz
        with md.formats.HDF5TrajectoryFile(str(path), "w", force_overwrite=True) as handle:
            handle.topology = ala.topology
            handle.write(frames, time=0.5 * np.arange(1, len(frames) + 1, dtype=np.float32),
                         velocities=vel[: len(frames)] if velocities else None)
        return path

    return write


ALA_DATA = sorted((DATA / "alanine-dipeptide-300K").glob("*.h5"))


@pytest.fixture(scope="session")
def ala_data_files() -> list[Path]:
    """The six shipped 300 K alanine-dipeptide trajectories (mdtraj HDF5 with velocities)."""
    return ALA_DATA


@pytest.fixture(scope="session")
def small_model_file(tmp_path_factory) -> Path:
    """A quickly trained heavy-atom model (2 couplings, 2 epochs on 2 strided files)."""
    from nct_md.cli import main

    out = tmp_path_factory.mktemp("model") / "small.pt"
    assert main(["train", str(ALA_DATA[0]), str(ALA_DATA[4]), "--stride", "4", "--epochs", "2",
                 "--couplings", "2", "--hidden", "16", "--out", str(out)]) == 0
    return out


def perturb(module, seed: int, scale: float = 0.3):
    """Move every parameter of a torch module away from its value by ``scale`` N(0, 1) noise."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(scale * torch.randn(param.shape, generator=gen, dtype=param.dtype))
    return module
