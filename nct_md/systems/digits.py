"""The paper's MNIST example on scikit-learn's 8x8 digits: conceptual compression.

An image is a "molecule" with 64 degrees of freedom: its pixel intensities (0-16) are the
positions ``q``; momenta ``p ~ N(0, 1)`` (``kT = 1``, unit masses) are drawn fresh each epoch.
Integer pixels are dequantised with uniform noise ``u ~ U(0, 1)``, centred, and rotated onto their
principal axes (a fixed orthogonal point transformation); a point-transformation flow then maps
them to independent oscillators by maximum likelihood. Intensities are in pixel units, so latent
``Q`` are too and frequencies ``w`` are in 1/pixel-intensity (``Q_k ~ N(0, 1 / w_k^2)``).

Compression keeps ``k`` latent coordinates of an image (encoded with ``p = 0``, so ``Q = Q(q)``),
redraws the others from the latent ``N(0, 1 / w^2)`` (the paper's choice; ``redraw=False``
sets them to their mean 0 instead) and decodes with ``P = 0``. Keeping the slowest modes (the
widest, smallest ``w``) keeps the digit's identity; keeping the fastest keeps almost nothing.

- :func:`load_digits_split`: images and labels, stratified train/test split.
- :func:`fit_digits`: train a :class:`DigitsModel` (``quick=True`` for CI-sized settings).
- :func:`mode_masks`: which latent modes to keep (``"slow"``, ``"fast"``, ``"random"``).
- :meth:`DigitsModel.compress`: rebuild images from the kept modes.
- :func:`compression_accuracies`: a classifier trained on original images, scored on rebuilt
  held-out images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from torch import nn

from nct_md.flows import SymplecticFlow, point_flow
from nct_md.latent import HarmonicLatent
from nct_md.train import Trainer, negative_log_likelihood
from nct_md.train.gaussian_start import gaussian_start, principal_axes

Tensor = torch.Tensor
N_PIXELS = 64
MAX_INTENSITY = 16.0

#: Training settings: ``quick`` for CI (seconds), ``default`` for the real result.
SETTINGS = {
    "quick": {"n_couplings": 2, "hidden": 32, "epochs": 6},
    "default": {"n_couplings": 6, "hidden": 64, "epochs": 150},
}


@dataclass(frozen=True)
class DigitsSplit:
    """Images ``(n, 64)`` float32 (intensities 0-16, row-major 8x8) and labels ``(n,)`` int."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> DigitsSplit:
    """scikit-learn's 1797 digits, split train/test with the classes stratified."""
    images, labels = load_digits(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(
        images.astype(np.float32), labels, test_size=test_fraction, stratify=labels,
        random_state=seed)
    return DigitsSplit(train_x, train_y, test_x, test_y)


class DigitsModel(nn.Module):
    """Fixed principal-axes rotation, point-transformation flow and harmonic latent.

    Parameters
    ----------
    mean : tensor ``(64,)``
        Mean dequantised image (pixel intensities).
    axes : tensor ``(64, 64)``
        Orthonormal principal axes as columns, widest first: ``q = (x - mean) @ axes``.
    flow : SymplecticFlow
        Configuration-separable flow on the rotated coordinates ``q``.
    latent : HarmonicLatent
    """

    def __init__(self, mean: Tensor, axes: Tensor, flow: SymplecticFlow, latent: HarmonicLatent):
        super().__init__()
        if not flow.configuration_separable:
            raise ValueError("compression needs a point transformation (Q depends on q only)")
        self.register_buffer("mean", torch.as_tensor(mean))
        self.register_buffer("axes", torch.as_tensor(axes))
        self.flow = flow
        self.latent = latent

    def to_model(self, dequantised: Tensor) -> Tensor:
        """Rotated positions ``q`` ``(n, 64)`` of dequantised images ``(n, 64)``."""
        return (dequantised - self.mean) @ self.axes

    def encode(self, images: Tensor) -> Tensor:
        """Latent ``Q`` ``(n, 64)`` (parameter order) of integer images ``(n, 64)``.

        Images are taken at the centre of their dequantisation cell (``x + 1/2``).
        """
        return self.flow.transform_positions(self.to_model(images + 0.5))

    def decode(self, Q: Tensor) -> Tensor:
        """Images ``(n, 64)`` (intensities, unclipped) from latent ``Q`` ``(n, 64)``, ``P = 0``."""
        _, q = self.flow.inverse(torch.zeros_like(Q), Q)
        return q @ self.axes.T + self.mean - 0.5

    def compress(self, images: Tensor, keep: Tensor, redraw: bool = True,
                 generator: torch.Generator | None = None) -> Tensor:
        """Rebuild images ``(n, 64)`` from the latent modes where ``keep`` ``(n, 64)`` is True.

        The other modes are redrawn from ``N(0, 1 / w^2)`` (``redraw=True``) or set to 0.
        """
        Q = self.encode(images)
        fill = self.latent.sample(len(Q), generator=generator)[1] if redraw else torch.zeros_like(Q)
        return self.decode(torch.where(keep, Q, fill))


def mode_masks(latent: HarmonicLatent, k: int, which: str, n_images: int,
               generator: torch.Generator | None = None) -> Tensor:
    """Boolean ``(n_images, n)`` masks selecting ``k`` latent modes per image.

    ``which="slow"``: the ``k`` smallest frequencies; ``"fast"``: the ``k`` largest;
    ``"random"``: an independent uniformly random set of ``k`` modes for each image.
    """
    n = latent.n
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    order = latent.slow_order()
    if which == "random":
        chosen = torch.rand(n_images, n, generator=generator).argsort(dim=1)[:, :k]
    elif which in ("slow", "fast"):
        picked = order[:k] if which == "slow" else order[n - k:]
        chosen = picked.expand(n_images, k)
    else:
        raise ValueError(f"which must be 'slow', 'fast' or 'random', got {which!r}")
    mask = torch.zeros(n_images, n, dtype=torch.bool)
    return mask.scatter_(1, chosen, True)


def _initial_model(images: Tensor, settings: dict, generator: torch.Generator) -> DigitsModel:
    """The best Gaussian model of the dequantised images: principal axes and their widths.

    Uniform dequantisation noise adds ``1/12`` to the image covariance ``(64, 64)``.
    """
    cov = torch.cov(images.double().T) + torch.eye(N_PIXELS, dtype=torch.float64) / 12
    axes, widths = principal_axes(cov)
    flow = point_flow(N_PIXELS, settings["n_couplings"], settings["hidden"], settings["depth"],
                      generator=generator)
    latent = gaussian_start(flow, widths.float())
    return DigitsModel(images.mean(0) + 0.5, axes.float(), flow, latent)


def fit_digits(train_images: np.ndarray, quick: bool = False, seed: int = 0,
               epochs: int | None = None, n_couplings: int | None = None,
               hidden: int | None = None, depth: int = 2, batch_size: int = 128,
               lr: float = 2e-3, weight_decay: float = 1e-5, validation_fraction: float = 0.15,
               patience: int = 10, progress: bool = False) -> tuple[DigitsModel, list[dict]]:
    """Fit a :class:`DigitsModel` to ``train_images`` ``(n, 64)`` by maximum likelihood.

    Starts from the Gaussian (principal-axes) model, with latent frequencies ``1 / width`` and
    coupling feature scales ``width``. Each epoch redraws the dequantisation noise and the
    momenta ``p ~ N(0, 1)``; ``validation_fraction`` of the images (fixed noise and momenta)
    decide early stopping, and the best parameters are kept. Unset ``epochs``, ``n_couplings``
    and ``hidden`` come from ``SETTINGS["quick" if quick else "default"]``.

    Returns
    -------
    model : DigitsModel
        In eval mode, float32.
    history : list of dict
        Per-step metrics from :class:`~nct_md.train.Trainer` (``"validation"``: mean negative
        log-likelihood per image in nats, ``p`` and ``q`` together).
    """
    given = {"epochs": epochs, "n_couplings": n_couplings, "hidden": hidden}
    settings = {**SETTINGS["quick" if quick else "default"], "depth": depth,
                **{k: v for k, v in given.items() if v is not None}}
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images = torch.as_tensor(np.asarray(train_images, dtype=np.float32))
    order = torch.randperm(len(images), generator=generator)
    n_val = max(1, round(validation_fraction * len(images)))
    val_images, train = images[order[:n_val]], images[order[n_val:]]
    model = _initial_model(train, settings, generator)
    val_q = model.to_model(val_images + torch.rand(val_images.shape, generator=generator))
    val_p = torch.randn(val_q.shape, generator=generator)
    steps_per_epoch = max(1, len(train) // batch_size)
    state: dict = {"epoch": -1}

    def loss(step: int) -> tuple[Tensor, dict[str, float]]:
        epoch, k = divmod(step, steps_per_epoch)
        if epoch != state["epoch"]:
            state["epoch"] = epoch
            state["order"] = torch.randperm(len(train), generator=generator)
            with torch.no_grad():
                state["q"] = model.to_model(train + torch.rand(train.shape, generator=generator))
            state["p"] = torch.randn(train.shape, generator=generator)
        idx = state["order"][k * batch_size:(k + 1) * batch_size]
        nll = negative_log_likelihood(model.flow, model.latent, state["p"][idx], state["q"][idx])
        return nll, {"epoch": epoch}

    def evaluate() -> float:
        with torch.enable_grad():  # the couplings' momentum lift differentiates the conditioner
            return float(negative_log_likelihood(model.flow, model.latent, val_p, val_q).detach())

    def recenter_each_epoch(step: int) -> None:
        if step % steps_per_epoch == 0:
            model.flow.recenter()

    groups = [{"params": list(model.flow.parameters())},
              {"params": list(model.latent.parameters()), "weight_decay": 0.0}]
    trainer = Trainer(model, loss, steps=settings["epochs"] * steps_per_epoch, lr=lr,
                      param_groups=groups, weight_decay=weight_decay, seed=seed,
                      generator=generator, progress=progress, evaluate=evaluate,
                      eval_every=steps_per_epoch, patience=patience,
                      after_step=recenter_each_epoch)
    history = trainer.fit()
    return model, history


def fit_classifier(images: np.ndarray, labels: np.ndarray) -> LogisticRegression:
    """Multinomial logistic regression on intensities ``/ 16``, images ``(n, 64)``."""
    return LogisticRegression(max_iter=5000).fit(images / MAX_INTENSITY, labels)


@torch.no_grad()
def compression_accuracies(model: DigitsModel, split: DigitsSplit, k: int = 8,
                           redraw: bool = True, seed: int = 0,
                           classifier: LogisticRegression | None = None) -> dict[str, float]:
    """Accuracy of a classifier trained on original images, on rebuilt held-out images.

    Test images are rebuilt from their ``k`` slowest, ``k`` fastest and ``k`` random latent
    modes (:func:`mode_masks`, :meth:`DigitsModel.compress`), clipped to intensities 0-16.

    Returns
    -------
    dict
        ``{"original", "slow", "fast", "random"}``: fractions of correctly classified test
        images (``"original"``: the unmodified test images).
    """
    classifier = classifier or fit_classifier(split.train_images, split.train_labels)
    generator = torch.Generator().manual_seed(seed)
    images = torch.as_tensor(split.test_images)

    def score(x: np.ndarray) -> float:
        return float(classifier.score(np.clip(x, 0, MAX_INTENSITY) / MAX_INTENSITY,
                                      split.test_labels))

    result = {"original": score(split.test_images)}
    for which in ("slow", "fast", "random"):
        keep = mode_masks(model.latent, k, which, len(images), generator)
        rebuilt = model.compress(images, keep, redraw=redraw, generator=generator)
        result[which] = score(rebuilt.numpy())
    return result

