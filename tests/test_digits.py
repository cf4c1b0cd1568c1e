"""Conceptual compression of 8x8 digits: exact round trips, mode selection, slow beats fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nct_md.latent import HarmonicLatent
from nct_md.systems.digits import (
    N_PIXELS,
    compression_accuracies,
    fit_digits,
    load_digits_split,
    mode_masks,
)


@pytest.fixture(scope="module")
def split():
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def quick_model(split):
    model, history = fit_digits(split.train_images, quick=True, seed=0)
    return model, history


def test_split_shapes_units_and_stratification(split):
    assert split.train_images.shape == (1347, N_PIXELS)
    assert split.test_images.shape == (450, N_PIXELS)
    assert split.train_images.dtype == np.float32
    for images in (split.train_images, split.test_images):
        assert images.min() == 0 and images.max() == 16
        assert np.array_equal(images, np.round(images))  # integer intensities
    counts = np.bincount(split.test_labels, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # 25 % of each class (about 180)


def test_mode_masks_pick_slowest_fastest_and_random():
    w = torch.tensor([3.0, 0.5, 2.0, 0.1, 1.0, 4.0])
    latent = HarmonicLatent(6, w)
    slow = mode_masks(latent, 2, "slow", 3)
    fast = mode_masks(latent, 2, "fast", 3)
    assert slow.shape == (3, 6) and slow.dtype == torch.bool
    assert torch.equal(slow[0], torch.tensor([False, True, False, True, False, False]))
    assert torch.equal(fast[2], torch.tensor([True, False, False, False, False, True]))
    rand = mode_masks(latent, 3, "random", 200, torch.Generator().manual_seed(0))
    assert torch.equal(rand.sum(1), torch.full((200,), 3))
    counts = rand.sum(0).float()  # each mode chosen about 100 times
    assert counts.min() > 60 and counts.max() < 140
    assert torch.equal(mode_masks(latent, 6, "slow", 1), torch.ones(1, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="which"):
        mode_masks(latent, 2, "median", 1)
    with pytest.raises(ValueError, match="k must be"):
        mode_masks(latent, 7, "slow", 1)


def test_all_modes_rebuild_the_originals(split, quick_model):
    model, _ = quick_model
    images = torch.as_tensor(split.test_images[:50])
    keep = torch.ones(50, N_PIXELS, dtype=torch.bool)
    with torch.no_grad():
        rebuilt = model.compress(images, keep, generator=torch.Generator().manual_seed(1))
    assert rebuilt.shape == images.shape
    assert torch.allclose(rebuilt, images, atol=1e-3)


def test_kept_modes_are_preserved_and_the_rest_redrawn(split, quick_model):
    model, _ = quick_model
    images = torch.as_tensor(split.test_images[:400])
    keep = mode_masks(model.latent, 8, "slow", len(images))
    with torch.no_grad():
        Q = model.encode(images)
        rebuilt = model.compress(images, keep, generator=torch.Generator().manual_seed(2))
        Q_rebuilt = model.encode(rebuilt)
        mean_filled = model.compress(images, keep, redraw=False)
        Q_mean = model.encode(mean_filled)
    assert torch.allclose(Q_rebuilt[keep], Q[keep], atol=1e-3)
    assert torch.allclose(Q_mean[~keep], torch.zeros(()), atol=1e-3)
    # redrawn modes follow the latent N(0, 1/w^2): unit variance once scaled by w
    scaled = (Q_rebuilt * model.latent.frequencies.detach())[~keep]
    assert abs(float(scaled.var()) - 1) < 0.1


def test_training_improves_likelihood(quick_model):
    _, history = quick_model
    validation = [h["validation"] for h in history if "validation" in h]
    assert min(validation) < validation[0]


def test_slow_modes_keep_the_digit_and_fast_modes_do_not(split, quick_model):
    model, _ = quick_model
    acc = compression_accuracies(model, split, k=8, seed=0)
    assert set(acc) == {"original", "slow", "fast", "random"}
    assert acc["original"] > 0.9
    assert acc["slow"] >= acc["fast"] + 0.2
    assert acc["slow"] > acc["random"]
