"""The nglview widget (nct_md.viz.show), built without a notebook server."""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import pytest

from nct_md.errors import NCTInputError
from nct_md.viz import show

nglview = pytest.importorskip("nglview", reason="nglview is in the viz extra")

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def traj() -> md.Trajectory:
    full = md.load(str(DATA / "alanine-dipeptide-300K" / "phi-neg-alphar.h5"), stride=100)[:8]
    return full.atom_slice(full.topology.select("not element H"))


def test_widget_plays_all_frames_as_ball_and_stick(traj):
    view = show(traj)
    assert isinstance(view, nglview.NGLWidget)
    assert view.max_frame == traj.n_frames - 1  # the player runs over every frame
    assert [rep["type"] for rep in view.representations] == ["ball+stick"]
    assert view.representations[0]["params"]["sele"] == "all"


def test_widget_representation_options(traj):
    view = show(traj, representation="licorice", radiusScale=0.5)
    rep = view.representations[0]
    assert rep["type"] == "licorice" and rep["params"]["radiusScale"] == 0.5


def test_widget_needs_frames(traj):
    with pytest.raises(NCTInputError, match="no frames"):
        show(traj[:0])
