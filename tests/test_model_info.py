"""ModelInfo: JSON round trips, and model files of earlier versions still load.

``tests/data/model_v0_1.pt`` was written by nct-md 0.1.0 before ModelInfo existed (the metadata
was a plain dict): ``train_files`` on ``phi-neg-c5.h5`` (stride 20, 200 frames, heavy atoms,
3 epochs, 2 couplings of width 16, seed 0). ``model_v0_1_cvs.npy`` holds the 3 slowest CVs
``(20, 3)`` (ps) it gave then for ``phi-pos-c7ax-1.h5`` at stride 200.
"""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from nct_md.errors import NCTInputError
from nct_md.model import ModelInfo, NCTModel
from nct_md.model_info import (
    MODEL_UNITS,
    DataInfo,
    HamiltonianInfo,
    Hyperparameters,
    Restarts,
    TrainingInfo,
)

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "data" / "model_v0_1.pt"
FIXTURE_CVS = HERE / "data" / "model_v0_1_cvs.npy"
SHIPPED = HERE.parent / "data" / "alanine-dipeptide-heavy.pt"
ALA = HERE.parent / "data" / "alanine-dipeptide-300K"
HEAVY = ["ACE1-CH3", "ACE1-C", "ACE1-O", "ALA2-N", "ALA2-CA", "ALA2-CB", "ALA2-C", "ALA2-O",
         "NME3-N", "NME3-C"]


def _full_info() -> ModelInfo:
    """A ModelInfo with every part filled, unknown keys at two levels."""
    return ModelInfo(
        atom_indices=[0, 2, 5], atom_names=["ALA1-N", "ALA1-CA", "ALA1-C"],
        topology={"chains": [], "bonds": [[0, 1]]}, temperature=310.0, nct_md_version="0.1.0",
        data=DataInfo(selection="backbone", constraints="none", momenta="velocities", n_dof=3,
                      rigid_body_dims=6, frame="Eckart", reference="given"),
        constraints_handling="none", gaussian_start_shrinkage=0.25,
        training=TrainingInfo(
            n_train_frames=80, n_validation_frames=20, epochs_run=3, best_epoch=2,
            validation_nll=-1.5, seed=7, epoch_losses=[1.0, 0.5, 0.25], processes=1,
            objective="configuration",
            hyperparameters=Hyperparameters(epochs=3, batch_size=16, lr=1e-3, weight_decay=0.0,
                                            patience=None),
            restarts=Restarts(seeds=[7, 8], validation_nll=[-1.5, -1.0]),
            files=["a.h5"], topology_file="a.pdb", extra={"future": [1, 2]}),
        hamiltonian=HamiltonianInfo(
            form="H", platform="CPU", temperature=310.0, n_constraints=0, clip_above_kT=None,
            objective="configuration", kl_weight=1.0, ml_weight=0.5, steps=10,
            free_energy_kT=1.0, free_energy_stderr_kT=0.1, free_energy_reweighted_kT=0.9,
            ess_fraction=0.5),
        extra={"written_by": "a later version"})


def test_round_trip_through_json_keeps_every_field():
    info = _full_info()
    spec = info.to_json()
    assert spec["written_by"] == "a later version" and spec["training"]["future"] == [1, 2]
    assert "units" not in spec["data"] and spec["units"] == MODEL_UNITS
    again = ModelInfo.from_json(spec)
    assert again == info and again.to_json() == spec
    spec["training"]["files"].append("b.h5")  # to_json and from_json share no containers
    assert info.training.files == ["a.h5"] and again.training.files == ["a.h5"]


def test_optional_parts_are_left_out_and_missing_fields_take_defaults():
    info = ModelInfo(atom_indices=[1], atom_names=["X1-A"], topology={}, temperature=300)
    spec = info.to_json()
    assert "training" not in spec and "hamiltonian" not in spec
    assert ModelInfo.from_json(spec) == info and info.data == DataInfo()
    with pytest.raises(NCTInputError, match="lacks temperature"):
        ModelInfo.from_json({"atom_indices": [1], "atom_names": ["X1-A"], "topology": {}})


def test_file_of_version_0_1_loads_with_the_same_info_and_cvs():
    stored = torch.load(FIXTURE, weights_only=True)["metadata"]
    model = NCTModel.load(FIXTURE)
    info = model.info
    assert info.to_json() == stored  # nothing dropped, nothing added
    assert info.extra == {} and info.training.extra == {} and info.data.extra == {}
    assert info.atom_names == HEAVY and info.temperature == 300.0
    assert info.data.selection == "heavy" and info.data.constraints == "hbonds"
    assert info.training.n_train_frames + info.training.n_validation_frames == 200
    assert info.training.hyperparameters.epochs == 3 and info.training.restarts.seeds == [0]
    assert info.training.files == ["../../data/alanine-dipeptide-300K/phi-neg-c5.h5"]
    traj = md.load(str(ALA / "phi-pos-c7ax-1.h5"), stride=200)
    np.testing.assert_array_equal(model.transform(traj, 3), np.load(FIXTURE_CVS))


def test_shipped_model_loads_with_its_temperature_and_atoms():
    info = NCTModel.load(SHIPPED).info
    assert info.temperature == 300.0 and info.atom_names == HEAVY
    assert info.atom_indices == [1, 4, 5, 6, 8, 10, 14, 15, 16, 18]
    assert info.training.hyperparameters.epochs == 60 and info.training.objective is None
    assert info.hamiltonian is None and info.gaussian_start_shrinkage is None
    assert len(info.training.files) == 4 and info.extra == {}


@pytest.mark.parametrize("source", [FIXTURE, SHIPPED], ids=["v0_1", "shipped"])
def test_model_saved_now_loads_again_with_equal_info(source, tmp_path):
    model = NCTModel.load(source)
    model.save(tmp_path / "again.pt")
    again = NCTModel.load(tmp_path / "again.pt")
    assert again.info == model.info
    traj = md.load(str(ALA / "phi-neg-alphar.h5"), stride=400)
    np.testing.assert_array_equal(again.transform(traj, 2), model.transform(traj, 2))


def test_unknown_keys_of_a_later_version_survive_load_and_save(tmp_path):
    payload = torch.load(FIXTURE, weights_only=True)
    payload["metadata"]["new_section"] = {"value": 1.5}
    payload["metadata"]["data"]["new_field"] = "x"
    torch.save(payload, tmp_path / "later.pt")
    model = NCTModel.load(tmp_path / "later.pt")
    assert model.info.extra == {"new_section": {"value": 1.5}}
    assert model.info.data.extra == {"new_field": "x"}
    model.save(tmp_path / "saved.pt")
    assert torch.load(tmp_path / "saved.pt", weights_only=True)["metadata"] == payload["metadata"]
