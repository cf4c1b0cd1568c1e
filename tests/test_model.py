"""NCTModel: persistence, topology checks, separability, and the train/cvs CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nct_md.cli import main
from nct_md.cv.extract import iter_cvs
from nct_md.errors import NCTInputError
from nct_md.flows import SymplecticFlow
from nct_md.flows.experimental import LinearSymplectic
from nct_md.md import io
from nct_md.md.phase import load_phase_space
from nct_md.model import NCTModel
from nct_md.train.split import validation_split


def test_save_load_transform_identical(small_model_file, ala_data_files, tmp_path):
    model = NCTModel.load(small_model_file)
    traj = io.load(ala_data_files[1], stride=10)[0].traj
    before = model.transform(traj, 3)
    model.save(tmp_path / "copy.pt")
    again = NCTModel.load(tmp_path / "copy.pt")
    assert np.array_equal(again.transform(traj, 3), before)
    assert again.info.atom_names == model.info.atom_names
    assert again.topology.n_atoms == 10 and again.info.temperature == 300.0
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "copy.pt")  # models are never overwritten by default
    payload = torch.load(small_model_file, weights_only=True)  # plain data, no code
    assert payload["format"] == "nct-md-model"


def test_cvs_are_the_slowest_latent_positions(small_model_file, ala_data_files):
    model = NCTModel.load(small_model_file)
    data = load_phase_space(ala_data_files[2], select="heavy", stride=20,
                            reference=model.preprocessing.reference.numpy())
    with torch.no_grad():
        P, Q = model.encode(data.p, data.q)
        cvs = model.cvs(data.q, 2)
        p2, q2 = model.decode(P, Q)
    order = np.argsort(model.latent.frequencies.detach().numpy())
    assert torch.allclose(cvs, Q[:, order[:2]], rtol=0, atol=1e-6)
    # round trip, float32: measured 1e-7 nm and 8e-6 amu nm/ps (momenta up to 21)
    assert torch.allclose(q2, data.q, rtol=0, atol=1e-6)
    assert torch.allclose(p2, data.p, rtol=0, atol=1e-4)


def test_wrong_topology_fails_clearly(small_model_file, ala_pdb, tmp_path):
    import mdtraj as md

    model = NCTModel.load(small_model_file)
    traj = md.load(str(ala_pdb))
    renamed = traj.atom_slice(list(range(1, 22)))  # every index shifted by one
    with pytest.raises(NCTInputError, match="does not match the model"):
        model.transform(renamed)
    with pytest.raises(NCTInputError, match="topology"):
        model.transform(traj.atom_slice(range(5)))


def test_model_mixing_momenta_is_refused(small_model_file, ala_data_files, tmp_path, capsys):
    model = NCTModel.load(small_model_file)
    model.flow = SymplecticFlow([*model.flow.layers, LinearSymplectic(model.latent.n)])
    with pytest.raises(NCTInputError, match="mixes momenta"):
        next(iter_cvs(model, ala_data_files[:1]))


def test_validation_split_by_blocks_and_trajectories(ala_data_files):
    data = load_phase_space(ala_data_files[:3], select="heavy", stride=10)
    train, val = validation_split(data, 0.2)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(data)
    assert 0.15 < len(val) / len(data) < 0.25
    for k in range(3):  # every trajectory contributes validation frames
        assert np.any((val >= data.boundaries[k]) & (val < data.boundaries[k + 1]))
    train_t, val_t = validation_split(data, 0.3, by="trajectory")
    assert set(val_t) == set(range(data.boundaries[2], data.boundaries[3]))


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".npz", ".dat"])
def test_cvs_cli_formats(small_model_file, ala_data_files, tmp_path, suffix):
    """Every output format holds the model's CVs, file index and stored times (ps)."""
    out = tmp_path / f"cvs{suffix}"
    files = [str(ala_data_files[0]), str(ala_data_files[5])]
    assert main(["cvs", str(small_model_file), *files, "--n-cvs", "3", "--chunk", "700",
                 "--out", str(out)]) == 0
    model = NCTModel.load(small_model_file)
    trajs = [chunk.traj for chunk in io.load(files)]
    expected = np.concatenate([model.transform(t, 3) for t in trajs])
    times = np.concatenate([t.time for t in trajs])
    traj = np.repeat([0, 1], [len(t) for t in trajs])
    if suffix == ".npy":  # exactly the (n_frames, k) CVs
        table = np.load(out)
        assert table.shape == (8000, 3)
        np.testing.assert_allclose(table, expected, rtol=1e-5, atol=1e-5)
        return
    if suffix == ".npz":
        with np.load(out) as arrays:
            assert sorted(arrays.files) == ["cvs", "time_ps", "traj"]
            table = np.column_stack([arrays["traj"], arrays["time_ps"], arrays["cvs"]])
    elif suffix == ".csv":
        assert out.read_text().splitlines()[0] == "traj,time_ps,cv1,cv2,cv3"
        table = np.loadtxt(out, delimiter=",", skiprows=1)
    else:  # one PLUMED COLVAR file per trajectory, OUT itself not written
        assert not out.exists()
        parts = []
        for k in range(2):
            lines = (tmp_path / f"cvs.traj{k}.dat").read_text().splitlines()
            assert lines[0] == "#! FIELDS time cv1 cv2 cv3"
            part = np.loadtxt([ln for ln in lines if not ln.startswith("#")])
            parts.append(np.column_stack([np.full(len(part), k), part]))
        table = np.concatenate(parts)
    assert table.shape == (8000, 5)
    np.testing.assert_array_equal(table[:, 0], traj)
    np.testing.assert_allclose(table[:, 1], times, rtol=1e-6)
    np.testing.assert_allclose(table[:, -3:], expected, rtol=1e-5, atol=1e-5)


def test_cvs_cli_compiled_flow(small_model_file, ala_data_files, tmp_path):
    """--compile (torch.compile of the flow, chunks of varying size) gives the eager CVs."""
    out = tmp_path / "cvs.npy"
    assert main(["cvs", str(small_model_file), str(ala_data_files[0]), "--chunk", "1500",
                 "--compile", "--out", str(out)]) == 0
    model = NCTModel.load(small_model_file)
    expected = model.transform(io.load(ala_data_files[0])[0].traj, 2)
    assert np.allclose(np.load(out), expected, rtol=1e-5, atol=1e-5)


def test_cli_bad_input(small_model_file, ala_data_files, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["cvs", str(tmp_path / "missing.pt"), str(ala_data_files[0]),
                 "--out", str(out)]) == 2
    assert main(["cvs", str(small_model_file), str(ala_data_files[0]),
                 "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["train", str(ala_data_files[0]), "--out", str(small_model_file)]) == 2
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main(["cvs", str(bad), str(ala_data_files[0]), "--out", str(out)]) == 2
    assert main(["train", str(ala_data_files[0]), "--temperature", "-5", "--epochs", "1",
                 "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(line.startswith("nct-md ") for line in err)
    assert not out.exists() and not (tmp_path / "m.pt").exists()


def test_cli_train_flow_size(ala_data_files, tmp_path):
    """--couplings, --hidden and --depth reach the saved architecture, --patience the metadata."""
    out = tmp_path / "m.pt"
    assert main(["train", str(ala_data_files[0]), "--stride", "20", "--epochs", "1",
                 "--couplings", "1", "--hidden", "8", "--depth", "1", "--patience", "3",
                 "--out", str(out)]) == 0
    model = NCTModel.load(out)
    architecture = model.architecture
    assert (architecture["n_couplings"], architecture["hidden"], architecture["depth"]) == (1, 8, 1)
    assert model.info.training.hyperparameters.patience == 3


def test_cli_train_restarts_keep_the_best_validation_fit(ala_data_files, tmp_path):
    out = tmp_path / "m.pt"
    assert main(["train", str(ala_data_files[0]), "--stride", "20", "--epochs", "2",
                 "--couplings", "1", "--hidden", "8", "--restarts", "3", "--seed", "4",
                 "--out", str(out)]) == 0
    training = NCTModel.load(out).info.training
    restarts = training.restarts
    assert restarts.seeds == [12, 13, 14] and len(set(restarts.validation_nll)) == 3
    assert training.validation_nll == min(restarts.validation_nll)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no checkpoints left
    assert main(["train", str(ala_data_files[0]), "--restarts", "0",
                 "--out", str(tmp_path / "x.pt")]) == 2


def test_shipped_model_loads_and_matches_the_data(ala_data_files):
    from pathlib import Path

    model = NCTModel.load(Path(__file__).resolve().parent.parent / "data"
                          / "alanine-dipeptide-heavy.pt")
    assert model.configuration_separable and len(model.atom_names) == 10
    cvs = model.transform(io.load(ala_data_files[1], stride=50)[0].traj, 2)
    assert cvs.shape == (80, 2) and np.isfinite(cvs).all()


def test_model_with_research_layers_is_not_saved(small_model_file, tmp_path):
    model = NCTModel.load(small_model_file)
    model.save(tmp_path / "same.pt")
    model.flow = SymplecticFlow([*model.flow.layers, LinearSymplectic(model.latent.n)])
    with pytest.raises(NCTInputError, match="research layers"):
        model.save(tmp_path / "mixed.pt")
    assert not (tmp_path / "mixed.pt").exists()
