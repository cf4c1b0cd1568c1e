"""Ramachandran and Phi/Psi-along-path figures (nct_md.viz.plots)."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest

from nct_md.cv.reference import phi_psi
from nct_md.errors import NCTInputError
from nct_md.viz import path_angles, ramachandran, save_figure

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def data() -> md.Trajectory:
    return md.load(str(DATA / "alanine-dipeptide-300K" / "phi-neg-c5.h5"), stride=10)


@pytest.fixture(scope="module")
def path(data) -> md.Trajectory:
    """Stand-in for a decoded path: 12 consecutive heavy-atom frames."""
    return data[40:52].atom_slice(data.topology.select("not element H"))


def test_phi_psi_matches_mdtraj(data):
    phi, psi = phi_psi(data)
    np.testing.assert_allclose(phi, md.compute_phi(data)[1][:, 0], atol=1e-6)
    np.testing.assert_allclose(psi, md.compute_psi(data)[1][:, 0], atol=1e-6)


def test_phi_psi_needs_a_peptide():
    top = md.Topology()
    residue = top.add_residue("HOH", top.add_chain())
    for name, symbol in (("O", "O"), ("H1", "H"), ("H2", "H")):
        top.add_atom(name, md.element.get_by_symbol(symbol), residue)
    with pytest.raises(NCTInputError, match="Phi and Psi"):
        phi_psi(md.Trajectory(np.zeros((2, 3, 3)), top))


def test_ramachandran_draws_path_over_density(data, path, tmp_path):
    fig = ramachandran(path, [data[:300], data[300:]], title="C5 path")
    ax = fig.axes[0]
    phi, psi = np.degrees(phi_psi(path))
    markers = [line for line in ax.lines if line.get_label() == "path"]
    assert len(markers) == 1
    np.testing.assert_allclose(markers[0].get_xdata(), phi)
    np.testing.assert_allclose(markers[0].get_ydata(), psi)
    density = ax.collections[0].get_array()
    assert np.nansum(density) > 0  # the data's histogram
    png = save_figure(fig, tmp_path / "rama.png")
    svg = save_figure(fig, tmp_path / "rama.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert "<svg" in text and len(text) < 500_000  # the density is a bitmap inside the SVG


def test_path_angles_are_unwrapped_along_the_path(path, tmp_path):
    fig = path_angles(path)
    lines = fig.axes[0].lines
    phi, psi = np.degrees(phi_psi(path))
    for line, values in zip(lines, (phi, psi), strict=True):
        np.testing.assert_allclose(line.get_xdata(), np.linspace(0, 1, path.n_frames))
        y = np.asarray(line.get_ydata())
        np.testing.assert_allclose((y - values + 180) % 360 - 180, 0, atol=1e-4)
        assert np.all(np.abs(np.diff(y)) < 180)
    assert save_figure(fig, tmp_path / "angles.svg").stat().st_size > 0


def test_save_figure_checks_format(path, tmp_path):
    fig = path_angles(path)
    with pytest.raises(NCTInputError, match="format"):
        save_figure(fig, tmp_path / "angles.jpg")
    save_figure(fig, tmp_path / "a.png")
    with pytest.raises(FileExistsError):
        save_figure(fig, tmp_path / "a.png", overwrite=False)
