"""The matched reference CV of the export benchmark (bench/reference_cv.py): a Deep-TICA-shaped
network on exactly the exported CV's atoms and superposition, scripted, with derivatives as
PLUMED takes them; and the C++ harness timing it interleaved with the exported CV."""

from __future__ import annotations

import copy
from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import torch

from bench import libtorch_call
from bench.bench_export import plumed_call
from bench.reference_cv import HIDDEN, reference_cv, save_reference_cv
from nct_md.export import cv_module, save_torchscript
from nct_md.model import NCTModel

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "data" / "alanine-dipeptide-heavy.pt"
FD_STEP = 1e-6  # nm


@pytest.fixture(scope="module")
def model() -> NCTModel:
    return NCTModel.load(SHIPPED)


@pytest.fixture(scope="module")
def xyz(ala_data_files, model) -> np.ndarray:
    """40 frames (both Phi basins) of the model's atoms, ``(40, N, 3)`` float32 nm."""
    traj = md.join([md.load(str(f), stride=500) for f in ala_data_files])[:40]
    return traj.xyz[:, model.select_atoms(traj.topology)]


@pytest.fixture(scope="module")
def reference_file(model, tmp_path_factory) -> Path:
    return save_reference_cv(model, tmp_path_factory.mktemp("reference") / "reference-cv.pt")


def test_shape_and_dtype(model, reference_file, xyz):
    module = torch.jit.load(str(reference_file))
    n_in = 3 * model.preprocessing.masses.numel()
    linears = [m for m in reference_cv(model, 3).network if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(n_in, HIDDEN[0]),
                                                                 (*HIDDEN,), (HIDDEN[1], 3)]
    assert all(m.weight.dtype == torch.float32 for m in linears)
    out = module(torch.from_numpy(xyz.reshape(len(xyz), -1)))
    assert out.shape == (len(xyz), 2) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.std(0).min() > 0


def test_the_superposition_is_the_exported_cvs(model, reference_file, xyz):
    """Same atoms, masses and reference: the reference's superposition stage gives the
    exported CV's superposed frames."""
    x = torch.from_numpy(xyz.reshape(len(xyz), -1).astype(np.float64))
    ours = cv_module(model).network.superposition(x)
    reference = torch.jit.load(str(reference_file)).superposition(x)
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max() < 1e-6


def test_plumed_call_derivatives(model, reference_file, xyz):
    """PLUMED's sequence (one backward per output) on the file, plain and as current PLUMED
    loads it (eval, freeze, optimize_for_inference), against central differences of a float64
    copy of the same network."""
    plain = torch.jit.load(str(reference_file))
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(
        torch.jit.load(str(reference_file)).eval()))
    exact = torch.jit.script(copy.deepcopy(reference_cv(model)).double())
    for row in xyz[:10].reshape(10, -1).astype(np.float64):
        steps = np.concatenate([np.eye(row.size), -np.eye(row.size)]) * FD_STEP
        with torch.no_grad():
            shifted = exact(torch.from_numpy(row + steps)).numpy()
        fd = ((shifted[:row.size] - shifted[row.size:]) / (2 * FD_STEP)).T
        for module in (plain, frozen):
            values, derivatives = plumed_call(module, row)
            with torch.no_grad():
                expected = exact(torch.from_numpy(row[None]))[0].numpy()
            assert np.abs(values - expected).max() < 1e-5
            errors = np.linalg.norm(derivatives - fd, axis=1) / np.linalg.norm(fd, axis=1)
            assert errors.max() < 1e-4


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    exe = libtorch_call.build(tmp_path_factory.mktemp("harness"))
    if exe is None:
        pytest.skip("no C++ compiler to build the LibTorch harness")
    return exe


@pytest.mark.slow  # compiles a C++ harness against LibTorch (~25 s)
def test_interleaved_harness(harness, model, reference_file, xyz, tmp_path):
    """Two files timed in one harness process, alternating rounds; each one's values and
    derivatives are those of the same call from Python."""
    exported_file = tmp_path / "cvs.pt"
    save_torchscript(model, exported_file)
    files = [exported_file, reference_file]
    frames = xyz[:5].reshape(5, -1)
    results = libtorch_call.run_interleaved(harness, files, frames, repeats=3, rounds=2)
    for path, result in zip(files, results, strict=True):
        assert len(result["us_per_call"]) == len(result["us_forward_backward"]) == 2
        assert min(result["us_per_call"] + result["us_forward_backward"]) > 0
        module = torch.jit.load(str(path))
        calls = [plumed_call(module, row) for row in frames]
        assert np.abs(result["values"] - np.asarray([c[0] for c in calls])).max() < 1e-5
        assert np.abs(result["derivatives"] - np.asarray([c[1] for c in calls])).max() < 1e-4
    frozen = libtorch_call.run(harness, reference_file, frames, repeats=3, freeze=True)
    assert frozen["us_per_call"] > 0 and frozen["values"].shape == (5, 2)
