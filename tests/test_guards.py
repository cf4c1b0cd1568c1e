"""Refusals that protect a user from a meaningless result, each with a message saying why.

- all-atom training on the shipped 300 K set, whose bonds to hydrogen were constrained (HBonds,
  see data/README.md): the density would be degenerate;
- exporting CVs of a model whose latent positions depend on momenta (they are no CVs);
- unknown export formats, and model files of a flow this nct-md cannot rebuild.
"""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import pytest
import torch
from conftest import perturb

from nct_md.cli import main
from nct_md.errors import NCTInputError
from nct_md.export import save_torchscript
from nct_md.export.files import export_model
from nct_md.flows import SymplecticFlow
from nct_md.flows.experimental import LinearSymplectic
from nct_md.model import NCTModel


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error" in line]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    return errors[0]


@pytest.mark.parametrize("select, n_bonds", [("all", 12), ("resname ALA", 5)])
def test_training_over_constrained_hydrogen_bonds_is_refused(ala_data_files, tmp_path, capsys,
                                                             select, n_bonds):
    """Alanine has 5 X-H bonds (N-H, CA-HA, CB-HB1..3); the molecule 12."""
    data = md.load(str(ala_data_files[1]), stride=20)
    in_selection = data.topology.select(select)
    assert sum(1 for a, b in data.topology.bonds
               if "H" in (a.element.symbol, b.element.symbol)
               and a.index in in_selection and b.index in in_selection) == n_bonds
    out = tmp_path / "m.pt"
    assert main(["train", str(ala_data_files[1]), "--select", select, "--stride", "20",
                 "--epochs", "1", "--out", str(out)]) == 2
    assert one_error_line(capsys) == (
        f"nct-md train: error: the selection holds {n_bonds} bonds that were constrained in the "
        "simulation (HBonds), which makes the density degenerate; select heavy atoms (--select "
        "heavy) or use unconstrained data")
    assert not list(tmp_path.iterdir())


@pytest.fixture
def mixing_model(small_model_file) -> NCTModel:
    """The small heavy-atom model with a linear symplectic layer after its point flow."""
    model = NCTModel.load(small_model_file)
    layer = perturb(LinearSymplectic(model.latent.n), seed=0, scale=0.1)
    return NCTModel(model.preprocessing, SymplecticFlow([*model.flow.layers, layer]),
                    model.latent, model.architecture, model.info)


def test_export_of_a_model_mixing_momenta_into_q_says_why(mixing_model, tmp_path):
    assert not mixing_model.configuration_separable
    reason = ("this model's flow mixes momenta into the latent positions Q (it contains "
              "linear-symplectic or leapfrog layers), so Q is not a function of the "
              "configuration and cannot be a CV; train a point-transformation model")
    with pytest.raises(NCTInputError) as exc:
        save_torchscript(mixing_model, tmp_path / "cvs.pt")
    assert str(exc.value) == reason
    with pytest.raises(NCTInputError, match="mixes momenta"):
        mixing_model.transform(md.load(str(Path(__file__).parent.parent / "data" /
                                           "alanine-dipeptide.pdb")))
    assert not list(tmp_path.iterdir())


def test_unknown_export_format_is_refused(small_model_file, tmp_path, capsys):
    with pytest.raises(NCTInputError) as exc:
        export_model(small_model_file, "onnx", tmp_path / "cvs.onnx")
    assert str(exc.value) == "format must be one of torchscript, plumed, openmm, got 'onnx'"
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(small_model_file), "--format", "onnx", "--out",
              str(tmp_path / "cvs.onnx")])
    assert exit_.value.code == 2
    assert "argument --format: invalid choice: 'onnx'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_export_of_a_model_file_of_another_flow_is_one_line(small_model_file, tmp_path, capsys):
    """A file whose flow recipe this nct-md does not know (e.g. written by a newer one)."""
    payload = torch.load(small_model_file, weights_only=True)
    payload["architecture"] = {**payload["architecture"], "kind": "leapfrog"}
    forged = tmp_path / "newer.pt"
    torch.save(payload, forged)
    out = tmp_path / "cvs.pt"
    assert main(["export", str(forged), "--format", "torchscript", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("nct-md export: error: unknown flow architecture 'leapfrog'; this "
                           "nct-md is "), line
    assert not out.exists()
