"""Surrogate CV export: a compact network distilled from a model's exact CVs.

The exact exported CV (:func:`nct_md.export.cv_module`) runs the whole flow at every MD step. The
surrogate keeps its first stage, the same float64 :class:`Superposition` (same atoms, masses and
reference), and replaces the flow by a small tanh network ``3N -> hidden... -> k`` fitted
Sobolev-style: on values and on Jacobians (d CV / d superposed positions, ps/nm) of training
frames and of Gaussian-perturbed copies of them. It is wrapped in the same :class:`CVModule` as
the exact CV, so PLUMED (``PYTORCH_MODEL``), OpenMM and :func:`load_torchscript` read it
unchanged; it is an approximation, and its fidelity on held-out trajectories (per-CV R^2,
median and 5th-percentile cosine between its position gradients and the exact ones) is stored
in the file's metadata under ``"surrogate"``.

Public API: :class:`DistilSettings`, :func:`split_trajectories` (which trajectories are held
out), :func:`model_target` (a model's exact CVs and Jacobians on superposed frames),
:func:`distil` (the fit), :func:`fidelity`, :func:`save_surrogate` (all of it, into a file).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nct_md.atomic import atomic_path
from nct_md.errors import NCTInputError, check_integer, check_number
from nct_md.export.cvmodule import Affine, CVModule, Superposition
from nct_md.export.torchscript import METADATA_FILE, metadata
from nct_md.model import NCTModel

Tensor = torch.Tensor
#: superposed frames ``(B, 3N)`` nm, float64 -> values ``(B, k)`` and Jacobians ``(B, k, 3N)``
Target = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass
class DistilSettings:
    """Settings of a distillation.

    ``hidden`` (widths of the tanh layers), ``epochs``, ``batch_size`` (frames per step), ``lr``
    (Adam, cosine-decayed to lr/1000), ``noise_nm`` (standard deviation of the Gaussian noise,
    nm per coordinate, of the perturbed frames), ``n_perturbed`` (perturbed copies per frame),
    ``gradient_weight`` (weight of the Jacobian term against the value term), ``seed``.
    """

    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 500
    batch_size: int = 256
    lr: float = 1e-2
    noise_nm: float = 0.005
    n_perturbed: int = 1
    gradient_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)  # any sequence of widths (a CLI list) is accepted

    def check(self) -> None:
        """Raise NCTInputError naming the first bad setting."""
        if not self.hidden:
            raise NCTInputError("hidden must list at least one layer width")
        for width in self.hidden:
            check_integer("hidden", width)
        check_integer("epochs", self.epochs)
        check_integer("batch_size", self.batch_size)
        check_integer("n_perturbed", self.n_perturbed, minimum=0)
        check_number("lr", self.lr)
        check_number("noise_nm", self.noise_nm, zero=True)
        check_number("gradient_weight", self.gradient_weight, zero=True)


def tanh_network(h: Tensor, weights: list[Tensor], biases: list[Tensor]
                 ) -> tuple[Tensor, Tensor]:
    """Values ``(B, k)`` and Jacobian ``d values / d h`` ``(B, k, n_in)`` of affine layers
    ``h @ weights[i] + biases[i]`` (weights ``(n_i, n_{i+1})``) with tanh after every layer but
    the last, in one forward and one reverse sweep (TorchScript-compatible)."""
    activations: list[Tensor] = []
    for i in range(len(weights) - 1):
        h = torch.tanh(torch.addmm(biases[i], h, weights[i]))
        activations.append(h)
    values = torch.addmm(biases[-1], h, weights[-1])
    grad = weights[-1].t().unsqueeze(0).expand(h.shape[0], values.shape[1], h.shape[1])
    for i in range(len(activations) - 1, -1, -1):
        slope = 1 - activations[i] * activations[i]
        grad = torch.matmul(grad * slope.unsqueeze(1), weights[i].t())
    return values, grad


class SurrogateNetwork(nn.Module):
    """Superposition, then affine layers with tanh between them: ``(B, 3N)`` nm -> ``(B, k)``.

    Has what :class:`CVModule` needs of a network: ``n_atoms``, ``n_cvs``, ``forward`` and a
    hand-written ``jacobian`` (values and ``(B, k, 3N)`` ps/nm in one forward and one reverse
    sweep). ``hidden`` are :class:`Affine` layers each followed by tanh, ``head`` the last one.
    """

    def __init__(self, superposition: Superposition, hidden: list[Affine], head: Affine):
        super().__init__()
        self.superposition = superposition
        self.hidden = nn.ModuleList(hidden)
        self.head = head
        self.n_atoms = superposition.n_atoms
        self.n_cvs = int(head.weight.shape[1])

    def forward(self, x: Tensor) -> Tensor:
        h = self.superposition(x.to(torch.float64)).to(self.head.weight.dtype)
        for layer in self.hidden:
            h = torch.tanh(layer(h))
        return self.head(h).to(x.dtype)

    @torch.jit.export
    def jacobian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """CVs ``(B, k)`` and their Jacobian ``(B, k, 3N)`` (ps/nm), without autograd."""
        aligned, cache = self.superposition.run(x.to(torch.float64))
        weights = [layer.weight for layer in self.hidden] + [self.head.weight]
        biases = [layer.bias for layer in self.hidden] + [self.head.bias]
        values, grad = tanh_network(aligned.to(self.head.weight.dtype), weights, biases)
        grad = self.superposition.pullback(cache, grad.to(torch.float64))
        return values.to(x.dtype), grad.to(x.dtype)


class _Student(nn.Module):
    """The network being fitted, on whitened superposed frames, with an analytic Jacobian.

    ``mean (3N,)`` and ``whiten (3N, 3N)``: input map ``(a - mean) @ whiten``; ``scale (k,)``
    and ``offset (k,)``: output map ``y * scale + offset``. Both fold into the first and last
    layer at export (:meth:`export`), which therefore costs no extra operation.
    """

    def __init__(self, widths: list[int], mean: Tensor, whiten: Tensor, offset: Tensor,
                 scale: Tensor):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b)
                                    for a, b in zip(widths[:-1], widths[1:], strict=True))
        for name, value in zip(("mean", "whiten", "offset", "scale"),
                               (mean, whiten, offset, scale), strict=True):
            self.register_buffer(name, value.float())

    def forward(self, aligned: Tensor) -> tuple[Tensor, Tensor]:
        """Superposed frames ``(B, 3N)`` nm -> values ``(B, k)`` ps, Jacobians ``(B, k, 3N)``."""
        values, grad = tanh_network((aligned - self.mean) @ self.whiten,
                                    [layer.weight.t() for layer in self.layers],
                                    [layer.bias for layer in self.layers])
        return values * self.scale + self.offset, (grad @ self.whiten.T) * self.scale[:, None]

    def export(self, superposition: Superposition, dtype: torch.dtype) -> SurrogateNetwork:
        """The fitted network with the input and output maps folded in, in ``dtype``."""
        weights = [layer.weight.detach().double().T for layer in self.layers]
        biases = [layer.bias.detach().double() for layer in self.layers]
        weights[0] = self.whiten.double() @ weights[0]
        biases[0] = biases[0] - self.mean.double() @ weights[0]
        weights[-1] = weights[-1] * self.scale.double()
        biases[-1] = biases[-1] * self.scale.double() + self.offset.double()
        layers = [Affine(w.contiguous().to(dtype), b.to(dtype))
                  for w, b in zip(weights, biases, strict=True)]
        return SurrogateNetwork(superposition, layers[:-1], layers[-1])


def split_trajectories(n: int) -> tuple[list[int], list[int]]:
    """Indices of the training and the held-out trajectories among ``n`` (n >= 2).

    Every third trajectory (the 3rd, 6th, ...) is held out; of two, the second.
    """
    if n < 2:
        raise NCTInputError("the surrogate needs at least 2 trajectories (one is held out to "
                            f"measure its fidelity), got {n}")
    held = [i for i in range(n) if i % 3 == 2] or [n - 1]
    return [i for i in range(n) if i not in held], held


def model_target(model: NCTModel, n_cvs: int, chunk: int = 8192) -> Target:
    """The exact CVs of ``model`` on superposed frames, in float64, Jacobians by autograd."""
    model64 = copy.deepcopy(model).double().cpu().requires_grad_(False)

    def target(aligned: Tensor) -> tuple[Tensor, Tensor]:
        values, jacobians = [], []
        for part in aligned.split(chunk):
            a = part.detach().double().requires_grad_(True)
            with torch.enable_grad():
                y = model64.cvs(a, n_cvs)
                rows = [torch.autograd.grad(y[:, j].sum(), a, retain_graph=True)[0]
                        for j in range(n_cvs)]
            values.append(y.detach())
            jacobians.append(torch.stack(rows, 1))
        return torch.cat(values), torch.cat(jacobians)

    return target


def _student(settings: DistilSettings, aligned: Tensor, values: Tensor) -> _Student:
    """A fresh student whose input and output maps whiten the training frames and CVs."""
    mean = aligned.mean(0)
    variances, axes = torch.linalg.eigh(torch.cov(aligned.T))
    floor = 1e-3 * variances.clamp(min=0).mean()  # the rigid-body directions have ~0 variance
    whiten = axes / (variances.clamp(min=0) + floor).sqrt()
    widths = [aligned.shape[1], *settings.hidden, values.shape[1]]
    return _Student(widths, mean, whiten, values.mean(0), values.std(0))


def distil(target: Target, superposition: Superposition, frames: np.ndarray,
           settings: DistilSettings | None = None, dtype: torch.dtype = torch.float32,
           progress: bool = True) -> SurrogateNetwork:
    """Fit a :class:`SurrogateNetwork` to ``target`` on frames ``(F, N, 3)`` nm.

    The training set is the frames and ``settings.n_perturbed`` copies of each with Gaussian
    noise of ``settings.noise_nm`` nm on every coordinate, all superposed. The loss is the mean
    squared error of the values divided by their variance, plus ``gradient_weight`` times the
    squared error of the Jacobians divided by their mean squared norm (per CV).
    """
    (settings := settings or DistilSettings()).check()
    generator = torch.Generator().manual_seed(settings.seed)
    x = torch.as_tensor(frames, dtype=torch.float64).reshape(len(frames), -1)
    noisy = x.repeat(settings.n_perturbed, 1)
    noisy += settings.noise_nm * torch.randn(noisy.shape, generator=generator, dtype=x.dtype)
    with torch.no_grad():
        aligned = superposition(torch.cat([x, noisy]))
    values, jacobians = target(aligned)
    aligned, values, jacobians = aligned.float(), values.float(), jacobians.float()
    torch.manual_seed(settings.seed)
    student = _student(settings, aligned, values)
    variance, grad_norm = values.var(0), jacobians.square().sum(2).mean(0)
    optimiser = torch.optim.Adam(student.parameters(), lr=settings.lr)
    steps_per_epoch = -(-len(aligned) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, settings.epochs * steps_per_epoch, eta_min=settings.lr * 1e-3)
    bar = tqdm(range(settings.epochs), disable=not progress, desc="distil", unit="epoch")
    for _ in bar:
        order = torch.randperm(len(aligned), generator=generator)
        for batch in order.split(settings.batch_size):
            y, jac = student(aligned[batch])
            value_loss = ((y - values[batch]).square() / variance).mean()
            grad_loss = ((jac - jacobians[batch]).square().sum(2) / grad_norm).mean()
            loss = value_loss + settings.gradient_weight * grad_loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
        bar.set_postfix(values=f"{value_loss:.2e}", gradients=f"{grad_loss:.2e}", refresh=False)
    return student.export(superposition, dtype).eval()


def fidelity(network: nn.Module, target: Target, frames: np.ndarray) -> dict:
    """How well ``network`` (with ``superposition`` and ``jacobian``) matches ``target`` on frames
    ``(F, N, 3)`` nm: per CV ``r2`` (of the values), ``gradient_cosine_median`` and
    ``gradient_cosine_p05`` (cosine between the two gradients d CV / d positions, per frame),
    ``rmse`` (ps), and ``n_frames``."""
    x = torch.as_tensor(frames, dtype=torch.float64).reshape(len(frames), -1)
    with torch.no_grad():
        aligned, cache = network.superposition.run(x)
        exact, exact_jacobian = target(aligned)
        exact_grad = network.superposition.pullback(cache, exact_jacobian.double())
        values, grad = network.jacobian(x)
    exact, exact_grad = exact.double().numpy(), exact_grad.numpy()
    values, grad = values.double().numpy(), grad.double().numpy()
    residual = ((values - exact) ** 2).sum(0)
    r2 = 1 - residual / ((exact - exact.mean(0)) ** 2).sum(0)
    cosine = (grad * exact_grad).sum(2) / (np.linalg.norm(grad, axis=2)
                                           * np.linalg.norm(exact_grad, axis=2))
    return {"r2": r2.tolist(), "gradient_cosine_median": np.median(cosine, 0).tolist(),
            "gradient_cosine_p05": np.percentile(cosine, 5, axis=0).tolist(),
            "rmse": np.sqrt(residual / len(x)).tolist(), "n_frames": len(x)}


def save_surrogate(model: NCTModel, path: str | os.PathLike, trajectories: Sequence[np.ndarray],
                   names: Sequence[str], n_cvs: int = 2, dtype: torch.dtype = torch.float32,
                   settings: DistilSettings | None = None, overwrite: bool = False,
                   progress: bool = True) -> dict:
    """Distil ``model``'s ``n_cvs`` CVs and write the surrogate as TorchScript to ``path``.

    ``trajectories``: one array ``(F_i, N, 3)`` nm of the model's atoms per trajectory,
    ``names`` their labels; the split is :func:`split_trajectories`. Returns the metadata
    stored in the file (:func:`nct_md.export.torchscript.metadata` with ``"surrogate"``: the
    settings, the trajectories used and the held-out :func:`fidelity`).
    """
    model.check_separable()
    train, held = split_trajectories(len(trajectories))
    superposition = Superposition(model.preprocessing.reference.detach().cpu().double(),
                                  model.preprocessing.masses.detach().cpu().double())
    target, settings = model_target(model, n_cvs), settings or DistilSettings()
    network = distil(target, superposition, np.concatenate([trajectories[i] for i in train]),
                     settings, dtype, progress)
    report = fidelity(network, target, np.concatenate([trajectories[i] for i in held]))
    info = metadata(model, n_cvs, dtype)
    info["output"] += "; SURROGATE: a network distilled from these CVs (see surrogate)"
    widths = " -> ".join(str(w) for w in [3 * network.n_atoms, *settings.hidden, n_cvs])
    info["surrogate"] = {
        "architecture": f"superposition, then {widths} (tanh)",
        "settings": asdict(settings) | {"hidden": list(settings.hidden)},
        "train_trajectories": [names[i] for i in train],
        "held_out_trajectories": [names[i] for i in held],
        "n_train_frames": int(sum(len(trajectories[i]) for i in train)),
        "held_out": report,
    }
    scripted = torch.jit.script(CVModule(network, list(model.info.atom_indices)).eval())
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: json.dumps(info)})
    return info
