"""TorchScript CV export: values, gradients (as PLUMED computes them), invariance, PLUMED input.

Reference values come from the in-package model (``preprocessing.superpose`` + ``cvs``: numpy
superposition, then the flow) in float64; reference gradients from its central finite
differences. The model is the shared small trained model with its flow parameters perturbed,
so the couplings are far from linear.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import mdtraj as md
import numpy as np
import pytest
import torch
from conftest import DATA, perturb

from bench import libtorch_call
from nct_md.cli import main
from nct_md.errors import NCTInputError
from nct_md.export import cv_module, load_torchscript, plumed_input, save_torchscript
from nct_md.export.cvmodule import BIAS_UNIT, Superposition
from nct_md.flows import (
    AffineCoupling,
    LinearPointTransform,
    MomentumKick,
    SymplecticFlow,
    SymplecticScaling,
    alternating_masks,
)
from nct_md.flows.experimental import LinearSymplectic
from nct_md.model import NCTModel

N_FRAMES = 1000
FD_STEP = 1e-6  # nm


@pytest.fixture(scope="module")
def model(small_model_file) -> NCTModel:
    model = NCTModel.load(small_model_file)
    perturb(model.flow, seed=1, scale=0.2)
    return model


@pytest.fixture(scope="module")
def model64(model) -> NCTModel:
    return copy.deepcopy(model).double()


@pytest.fixture(scope="module")
def xyz(ala_data_files, model) -> np.ndarray:
    """1,000 frames (both Phi basins) of the model's atoms, ``(1000, N, 3)`` float32 nm."""
    traj = md.join([md.load(str(f), stride=24) for f in ala_data_files])[:N_FRAMES]
    assert traj.n_frames == N_FRAMES
    return traj.xyz[:, model.select_atoms(traj.topology)]


@pytest.fixture(scope="module")
def exported_file(model, tmp_path_factory):
    """The float32 export of two CVs, written to a file."""
    path = tmp_path_factory.mktemp("export") / "cvs.pt"
    save_torchscript(model, path, n_cvs=2)
    return path


@pytest.fixture(scope="module")
def exported(exported_file):
    """The float32 export loaded back as PLUMED does."""
    return torch.jit.load(str(exported_file))


def in_package(model: NCTModel, xyz: np.ndarray, n_cvs: int = 2) -> np.ndarray:
    """In-package CVs of frames ``(B, N, 3)`` nm in the model's dtype, ``(B, n_cvs)``."""
    with torch.no_grad():
        return model.cvs(model.preprocessing.superpose(xyz), n_cvs).double().numpy()


def fd_gradients(model64: NCTModel, xyz: np.ndarray, n_cvs: int = 2) -> np.ndarray:
    """Central differences of the float64 in-package CVs, ``(B, n_cvs, 3N)`` ps/nm."""
    n_frames, n_atoms, _ = xyz.shape
    steps = np.eye(3 * n_atoms).reshape(3 * n_atoms, 1, n_atoms, 3) * np.array([1, -1])[
        :, None, None] * FD_STEP  # (3N, 2, N, 3): +h e_c, -h e_c
    shifted = xyz.astype(np.float64)[:, None, None] + steps[None]
    values = in_package(model64, shifted.reshape(-1, n_atoms, 3), n_cvs)
    values = values.reshape(n_frames, 3 * n_atoms, 2, n_cvs)
    return ((values[:, :, 0] - values[:, :, 1]) / (2 * FD_STEP)).transpose(0, 2, 1)


def plumed_call(module, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What PLUMED's PYTORCH_MODEL::calculate does: values ``(k,)``, derivatives ``(k, n_in)``.

    ``torch::tensor(vector<float>).view({1, n_in})`` with requires_grad, ``forward``, then one
    ``autograd::grad`` per output slice ``[:, j:j+1]`` with grad_outputs ones ``(1, 1)``.
    """
    n_in = row.size
    input_s = torch.tensor(row.astype(np.float32).tolist()).view(1, n_in)
    input_s.requires_grad_(True)
    output = module.forward(input_s)
    values = output.detach().numpy()[0]
    derivatives = []
    for j in range(output.shape[1]):
        (grad,) = torch.autograd.grad([output[:, j:j + 1]], [input_s],
                                      grad_outputs=[torch.ones(1).expand(1, 1)],
                                      retain_graph=True, create_graph=False)
        derivatives.append(grad.numpy()[0])
    return values, np.asarray(derivatives)


def relative_errors(grad: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``|g - g_ref| / |g_ref|`` per frame and CV (norms over the 3N inputs)."""
    return np.linalg.norm(grad - ref, axis=-1) / np.linalg.norm(ref, axis=-1)


# -- values ---------------------------------------------------------------------------------

def test_values_match_in_package_model(exported, model, model64, xyz):
    out = exported(torch.from_numpy(xyz.reshape(N_FRAMES, -1))).numpy()
    assert out.dtype == np.float32 and out.shape == (N_FRAMES, 2)
    ref = in_package(model64, xyz)
    assert np.abs(out - ref).max() < 1e-5
    # the float32 in-package model itself is no closer to the float64 one
    assert np.abs(in_package(model, xyz) - ref).max() > 0.1 * np.abs(out - ref).max()
    assert ref.std(axis=0).min() > 0.01  # the comparison is not between constants


def test_float64_export_matches_to_rounding(model64, xyz):
    module = torch.jit.script(cv_module(model64, n_cvs=3, dtype=torch.float64))
    out = module(torch.from_numpy(xyz[:200].astype(np.float64).reshape(200, -1))).numpy()
    assert np.abs(out - in_package(model64, xyz[:200], 3)).max() < 1e-10


def test_linear_layers_of_every_kind_export(model, model64, xyz):
    """Scalings, momentum kicks and linear point transforms fold into the affine stages."""
    n = model.preprocessing.n_dof
    masks = alternating_masks(n, 2, torch.Generator().manual_seed(0))
    flow = SymplecticFlow([SymplecticScaling(n), AffineCoupling(masks[0], 8, 1),
                           MomentumKick(n), LinearPointTransform(n),
                           AffineCoupling(masks[1], 8, 2), LinearPointTransform(n)])
    perturb(flow.double(), seed=2, scale=0.2)
    other = NCTModel(model64.preprocessing, flow, model64.latent, model.architecture,
                     model.info)
    out = cv_module(other, n_cvs=4, dtype=torch.float64)(
        torch.from_numpy(xyz[:100].astype(np.float64).reshape(100, -1))).detach().numpy()
    assert np.abs(out - in_package(other, xyz[:100], 4)).max() < 1e-10


# -- gradients ------------------------------------------------------------------------------

def assert_plumed_call_matches(module, model64, sample: np.ndarray) -> None:
    """PLUMED's call sequence on each frame of ``sample`` ``(F, N, 3)`` nm: values within 1e-5
    of the float64 model, derivatives within 1e-4 (relative) of its finite differences."""
    ref_values, ref_grads = in_package(model64, sample), fd_gradients(model64, sample)
    for row, value, grad in zip(sample.reshape(len(sample), -1), ref_values, ref_grads,
                                strict=True):
        values, derivatives = plumed_call(module, row)
        assert np.abs(values - value).max() < 1e-5
        assert relative_errors(derivatives, grad).max() < 1e-4


def test_plumed_call_values_and_derivatives(exported, model64, xyz):
    """200 frames through PLUMED's exact call sequence, against finite differences."""
    assert_plumed_call_matches(exported, model64, xyz[::5])


def test_derivatives_survive_plumeds_frozen_load(exported_file, exported, xyz):
    """PLUMED (LibTorch 2) loads with eval, freeze and optimize_for_inference; the frozen
    module's values and derivatives are the plain module's."""
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(
        torch.jit.load(str(exported_file)).eval()))
    for row in xyz[::100].reshape(10, -1):
        values, derivatives = plumed_call(frozen, row)
        plain_values, plain_derivatives = plumed_call(exported, row)
        assert np.abs(values - plain_values).max() < 1e-6
        assert np.abs(derivatives - plain_derivatives).max() < 1e-5


@pytest.mark.slow  # compiles a C++ harness against LibTorch (~25 s)
def test_libtorch_call_values_and_derivatives(exported_file, model64, xyz, tmp_path_factory):
    """The file called from C++ (LibTorch) with PLUMED's exact sequence (bench/plumed_call.cpp)."""
    exe = libtorch_call.build(tmp_path_factory.mktemp("harness"))
    if exe is None:
        pytest.skip("no C++ compiler to build the LibTorch harness")
    sample = xyz[::50]
    result = libtorch_call.run(exe, exported_file, sample.reshape(len(sample), -1), repeats=20)
    assert np.abs(result["values"] - in_package(model64, sample)).max() < 1e-5
    assert relative_errors(result["derivatives"], fd_gradients(model64, sample)).max() < 1e-4
    assert result["us_per_call"] > 0 and result["us_forward_backward"] > 0


def test_batched_gradients_on_1000_frames(exported, model64, xyz):
    x = torch.from_numpy(xyz.reshape(N_FRAMES, -1)).requires_grad_(True)
    out = exported(x)
    grads = np.stack([torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)[0].numpy()
                      for j in range(2)], axis=1)
    errors = relative_errors(grads, fd_gradients(model64, xyz))
    assert errors.max() < 1e-4
    assert errors.max() > 0  # float32 against float64: a real comparison


def test_jacobian_against_finite_differences(exported, model64, xyz):
    """``jacobian`` (hand-written reverse sweep; the OpenMM forces and autograd callers use
    it) against central differences of the in-package model, which shares no code with it."""
    module = torch.jit.script(cv_module(model64, n_cvs=3, dtype=torch.float64))
    frames = xyz[:100].astype(np.float64)
    with torch.no_grad():
        values, jacobian = module.jacobian(torch.from_numpy(frames.reshape(100, -1)))
    np.testing.assert_allclose(values.numpy(), in_package(model64, frames, 3), rtol=0,
                               atol=1e-12)
    assert relative_errors(jacobian.numpy(), fd_gradients(model64, frames, 3)).max() < 1e-7
    with torch.no_grad():
        values, jacobian = exported.jacobian(torch.from_numpy(xyz.reshape(N_FRAMES, -1)))
    assert values.dtype == torch.float32 and jacobian.shape == (N_FRAMES, 2, xyz[0].size)
    assert relative_errors(jacobian.numpy(), fd_gradients(model64, xyz)).max() < 1e-4


def test_one_frame_gradient_is_the_jacobian_row(exported, xyz):
    """PLUMED's single-frame call: autograd through ``forward`` returns the Jacobian rows."""
    x = torch.from_numpy(xyz[:1].reshape(1, -1)).requires_grad_(True)
    out = exported(x)
    with torch.no_grad():
        values, jacobian = exported.jacobian(x.detach())
    assert torch.equal(out.detach(), values)
    for j in range(2):
        grad = torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)[0]
        assert torch.allclose(grad, jacobian[:, j], rtol=1e-6, atol=0)


@pytest.mark.parametrize("noise", [0.05, 0.5])
def test_gradients_for_any_structure(model64, xyz, noise):
    """Distorted and fully scrambled structures: autograd agrees with finite differences."""
    rng = np.random.default_rng(3)
    frames = xyz[:20].astype(np.float64) + noise * rng.normal(size=(20, *xyz.shape[1:]))
    module = torch.jit.script(cv_module(model64, n_cvs=2, dtype=torch.float64))
    x = torch.from_numpy(frames.reshape(20, -1)).requires_grad_(True)
    out = module(x)
    grads = np.stack([torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)[0].numpy()
                      for j in range(2)], axis=1)
    assert relative_errors(grads, fd_gradients(model64, frames)).max() < 1e-6


# -- the fused network and the superposition ------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bias_unit_passes_silu_exactly(dtype):
    """The constant unit that carries the hidden layers' biases is its own SiLU, slope 1."""
    unit = torch.full((1, 3), BIAS_UNIT, dtype=dtype)
    assert torch.equal(torch.nn.functional.silu(unit), unit)
    ones = torch.ones_like(unit)
    assert torch.equal(torch.ops.aten.silu_backward(ones, unit), ones)


def test_superposition_pullback_is_autograd_of_forward(model64, xyz):
    """``run``/``pullback`` (also used by the surrogate and the TICA CV) against autograd."""
    pre = model64.preprocessing
    superposition = torch.jit.script(Superposition(pre.reference.double(), pre.masses.double()))
    x = torch.from_numpy(xyz[:5].astype(np.float64).reshape(5, -1))
    grad = torch.randn(5, 3, x.shape[1], dtype=torch.float64,
                       generator=torch.Generator().manual_seed(0))
    aligned, cache = superposition.run(x)
    x_grad = x.clone().requires_grad_(True)
    out = superposition(x_grad)
    torch.testing.assert_close(aligned, out.detach(), rtol=0, atol=1e-14)
    expected = torch.stack([torch.autograd.grad(out, x_grad, grad[:, j], retain_graph=True)[0]
                            for j in range(3)], dim=1)
    torch.testing.assert_close(superposition.pullback(cache, grad), expected, rtol=1e-10,
                               atol=1e-12)


def test_batched_jacobian_rows_are_the_single_frame_ones(model64, xyz):
    """One frame (PLUMED's call: per-frame factors broadcast) and a batch take two paths."""
    module = torch.jit.script(cv_module(model64, n_cvs=3, dtype=torch.float64))
    x = torch.from_numpy(xyz[:4].astype(np.float64).reshape(4, -1))
    values, jacobian = module.jacobian(x)
    for i in range(4):
        one_values, one_jacobian = module.jacobian(x[i:i + 1])
        torch.testing.assert_close(one_values, values[i:i + 1], rtol=0, atol=1e-13)
        torch.testing.assert_close(one_jacobian, jacobian[i:i + 1], rtol=1e-12, atol=1e-12)


def test_flow_without_couplings_exports(model64, xyz):
    """Only linear layers: the entry map gives the CVs directly."""
    n = model64.preprocessing.n_dof
    flow = perturb(SymplecticFlow([SymplecticScaling(n), LinearPointTransform(n)]).double(),
                   seed=5, scale=0.2)
    other = NCTModel(model64.preprocessing, flow, model64.latent, model64.architecture,
                     model64.info)
    module = torch.jit.script(cv_module(other, n_cvs=2, dtype=torch.float64))
    frames = xyz[:20].astype(np.float64)
    for batch in (frames, frames[:1]):
        values, jacobian = module.jacobian(torch.from_numpy(batch.reshape(len(batch), -1)))
        np.testing.assert_allclose(values.numpy(), in_package(other, batch), rtol=0,
                                   atol=1e-10)
        assert relative_errors(jacobian.numpy(), fd_gradients(other, batch)).max() < 1e-7


def test_refuses_a_conditioner_without_hidden_layers(model):
    n = model.preprocessing.n_dof
    flow = SymplecticFlow([AffineCoupling(alternating_masks(n, 1, torch.Generator())[0], 8, 0)])
    other = NCTModel(model.preprocessing, flow, model.latent, model.architecture, model.info)
    with pytest.raises(NCTInputError, match="at least one"):
        cv_module(other)


def test_shipped_model_exports_with_plumeds_frozen_load(tmp_path, xyz):
    """``data/alanine-dipeptide-heavy.pt`` (8 couplings, depth 2): file, frozen load, values
    and derivatives against the float64 in-package model."""
    model = NCTModel.load(DATA / "alanine-dipeptide-heavy.pt")
    model64 = copy.deepcopy(model).double()
    save_torchscript(model, tmp_path / "cvs.pt")
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(
        torch.jit.load(str(tmp_path / "cvs.pt")).eval()))
    assert_plumed_call_matches(frozen, model64, xyz[::100])


# -- invariance and PLUMED conventions ------------------------------------------------------

def test_rigid_motions_leave_cvs_unchanged(exported, xyz, rotations):
    rng = np.random.default_rng(4)
    rot = rotations(N_FRAMES, rng)
    moved = np.einsum("fnj,fij->fni", xyz, rot) + rng.uniform(-5, 5, size=(N_FRAMES, 1, 3))
    before = exported(torch.from_numpy(xyz.reshape(N_FRAMES, -1))).numpy()
    after = exported(torch.from_numpy(moved.astype(np.float32).reshape(N_FRAMES, -1))).numpy()
    assert np.abs(after - before).max() < 1e-4


def test_zero_input_like_plumed_initialisation(exported, model):
    """PLUMED counts the outputs by calling forward on zeros of shape (1, n_in)."""
    out = exported(torch.zeros(1, 3 * model.preprocessing.masses.numel()))
    assert out.shape == (1, 2) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_wrong_input_shape_raises(exported, model):
    with pytest.raises(torch.jit.Error, match="expected positions of shape"):
        exported(torch.zeros(1, 7))
    with pytest.raises(ValueError, match=r"expected positions of shape \(batch, 30\)"):
        cv_module(model)(torch.zeros(30))


def test_file_loads_without_nct_md(exported, model, tmp_path, xyz):
    path = tmp_path / "cvs.pt"
    save_torchscript(model, path, n_cvs=2)
    np.save(tmp_path / "x.npy", xyz[:3].reshape(3, -1))
    code = ("import sys; sys.modules['nct_md'] = None\n"
            "import numpy as np, torch\n"
            f"m = torch.jit.load({str(path)!r})\n"
            f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))\n"
            f"np.save({str(tmp_path / 'y.npy')!r}, m(x).numpy())\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    expected = exported(torch.from_numpy(xyz[:3].reshape(3, -1))).numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_metadata_round_trip(model, tmp_path):
    info = save_torchscript(model, tmp_path / "cvs.pt", n_cvs=3)
    module, loaded = load_torchscript(tmp_path / "cvs.pt")
    assert loaded == info
    assert loaded["atom_indices"] == list(model.info.atom_indices)
    assert module.n_cvs == 3 and list(module.atom_indices) == loaded["atom_indices"]
    np.testing.assert_allclose(loaded["frequencies_per_ps"], model.frequencies[:3])
    with pytest.raises(FileExistsError):
        save_torchscript(model, tmp_path / "cvs.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(NCTInputError, match="not a TorchScript file"):
        load_torchscript(tmp_path / "junk.pt")
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(tmp_path / "other.pt"))
    with pytest.raises(NCTInputError, match="not an nct-md CV export"):
        load_torchscript(tmp_path / "other.pt")


def test_refuses_models_that_mix_momenta_into_q(model):
    n = model.preprocessing.n_dof
    mixed = NCTModel(model.preprocessing, SymplecticFlow([LinearSymplectic(n)]), model.latent,
                     model.architecture, model.info)
    with pytest.raises(NCTInputError, match="mixes momenta"):
        cv_module(mixed)


@pytest.mark.parametrize("n_cvs", [0, 25])
def test_n_cvs_out_of_range(model, n_cvs):
    with pytest.raises(NCTInputError, match="n_cvs must be between 1 and 24"):
        cv_module(model, n_cvs=n_cvs)


def test_plumed_input(model, tmp_path):
    info = save_torchscript(model, tmp_path / "cvs.pt", n_cvs=3)
    text = plumed_input(info, "cvs.pt", topology=model.topology)
    lines = text.splitlines()
    serials = [i + 1 for i in info["atom_indices"]]
    assert f"WHOLEMOLECULES ENTITY0={','.join(map(str, serials))}" in lines
    positions = [line for line in lines if ": POSITION" in line]
    assert positions == [f"p{k}: POSITION ATOM={s} NOPBC" for k, s in enumerate(serials, 1)]
    args = ",".join(f"p{k}.{c}" for k in range(1, len(serials) + 1) for c in "xyz")
    assert f"cv: PYTORCH_MODEL FILE=cvs.pt ARG={args}" in lines
    assert "phi: TORSION ATOMS=5,7,9,15" in lines and "psi: TORSION ATOMS=7,9,15,17" in lines
    opes = next(line for line in lines if line.startswith("bias: OPES_METAD"))
    assert "ARG=cv.node-0,cv.node-1 " in opes and "TEMP=300 " in opes
    assert any(line.startswith("# bias: METAD") for line in lines)
    assert lines[-1].startswith("PRINT ARG=cv.node-0,cv.node-1,cv.node-2,phi,psi,bias.bias")
    metad = plumed_input(info, "cvs.pt", bias="metad", n_biased=1, widths=[0.05])
    assert "bias: METAD ARG=cv.node-0 PACE=250 HEIGHT=2 BIASFACTOR=10 TEMP=300 SIGMA=0.05 " \
           "FILE=HILLS" in metad.splitlines()
    with pytest.raises(ValueError, match="n_biased"):
        plumed_input(info, "cvs.pt", n_biased=4)


# -- command line ---------------------------------------------------------------------------

def test_cli_export_formats(small_model_file, tmp_path, capsys):
    out = tmp_path / "cvs.pt"
    assert main(["export", str(small_model_file), "--format", "torchscript", "--out",
                 str(out), "--n-cvs", "3"]) == 0
    assert torch.jit.load(str(out))(torch.zeros(2, 30)).shape == (2, 3)
    assert main(["export", str(small_model_file), "--format", "plumed", "--out",
                 str(tmp_path / "plumed"), "--bias", "metad"]) == 0
    text = (tmp_path / "plumed" / "plumed.dat").read_text()
    assert "cv: PYTORCH_MODEL FILE=nct_cvs.pt" in text and "\nbias: METAD" in text
    assert (tmp_path / "plumed" / "nct_cvs.pt").is_file()
    assert main(["export", str(small_model_file), "--format", "openmm", "--out",
                 str(tmp_path / "openmm")]) == 0
    helper = (tmp_path / "openmm" / "nct_openmm.py").read_text()
    assert "nct_md" not in "\n".join(line for line in helper.splitlines()
                                     if line.startswith(("import", "from")))
    assert "bias_variables(" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--format", "torchscript", "--out", "{tmp}/cvs.txt"], "must end in .pt"),
    (["--format", "plumed", "--out", "{tmp}/x.dat"], "must be a folder"),
    (["--format", "torchscript", "--out", "{tmp}/cvs.pt", "--n-cvs", "0"], "n_cvs must be"),
    (["--format", "plumed", "--out", "{tmp}/p", "--n-biased", "3"], "--n-biased must be"),
])
def test_cli_export_bad_input(small_model_file, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["export", str(small_model_file), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_export_does_not_overwrite(small_model_file, tmp_path, capsys):
    args = ["export", str(small_model_file), "--format", "plumed", "--out", str(tmp_path)]
    assert main(args) == 0
    assert main(args) == 2 and "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
