"""Peer slow-CV learners for the slow-CV head-to-head: Deep-TICA (mlcolvar), VAMPNet (deeptime).

Both learn ``n_cvs`` collective variables from per-frame features (aligned heavy-atom positions in
nm, flattened to ``(n_frames, d)``) under one protocol:

- features standardised with the training mean/std (the returned transform applies the same);
- time-lagged pairs ``(x_t, x_{t+lag})`` built within each trajectory, never across trajectories;
- validation = the last ``VALID_FRACTION`` of every training trajectory (a time block; pairs never
  straddle the split), early stopping on the validation loss (Lightning's ``EarlyStopping``
  semantics: stop after ``PATIENCE`` epochs without a ``MIN_DELTA`` improvement; the last
  weights are kept);
- network d -> 64 -> 64 -> n_cvs, tanh hidden layers, linear output, Adam, CPU, float32, seeded;
- the network output is made ordered and whitened by a linear fit on all training pairs: Deep-TICA's
  own TICA block is refitted on them (mlcolvar's validation step otherwise leaves it fitted on the
  validation batch), VAMPNet's lobe output is projected on the left singular functions of a
  ``deeptime.decomposition.VAMP`` fit. CV1 is therefore the slowest learnt mode for both.

mlcolvar and lightning (the ``bench`` extra) are imported only inside the Deep-TICA path.
"""
from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

HIDDEN = (64, 64)
LEARNING_RATE = 1e-3
BATCH_SIZE = 256
PATIENCE = 10
MIN_DELTA = 1e-5
VALID_FRACTION = 0.2
METHODS = ("deep_tica", "vampnet")

Pairs = tuple[np.ndarray, np.ndarray]


def lagged_pairs(trajs: list[np.ndarray], lag: int) -> Pairs:
    """Time-lagged pairs within each trajectory: ``(x_t, x_{t+lag})``, each (n_pairs, d) float32.

    Trajectories shorter than ``lag + 1`` frames contribute nothing.
    """
    if lag < 1:
        raise ValueError(f"lag must be >= 1 frame, got {lag}")
    kept = [t for t in trajs if len(t) > lag]
    if not kept:
        raise ValueError(f"no trajectory block is longer than the lag ({lag} frames)")
    x0 = np.concatenate([t[:-lag] for t in kept]).astype(np.float32)
    xt = np.concatenate([t[lag:] for t in kept]).astype(np.float32)
    return x0, xt


def split_pairs(trajs: list[np.ndarray], lag: int) -> tuple[Pairs, Pairs]:
    """(train, validation) pairs; the last ``VALID_FRACTION`` of each trajectory validates."""
    cuts = [int(round(len(t) * (1.0 - VALID_FRACTION))) for t in trajs]
    train = lagged_pairs([t[:c] for t, c in zip(trajs, cuts, strict=True)], lag)
    valid = lagged_pairs([t[c:] for t, c in zip(trajs, cuts, strict=True)], lag)
    return train, valid


def batch_size(n_pairs: int) -> int:
    """Pairs per batch: about ``BATCH_SIZE`` but balanced, so no tiny last batch skews the
    batch covariance estimates that both losses are built on."""
    return -(-n_pairs // -(-n_pairs // BATCH_SIZE))


def _network(d: int, n_cvs: int) -> torch.nn.Sequential:
    """MLP d -> 64 -> 64 -> n_cvs with tanh hidden activations and a linear output."""
    sizes = (d, *HIDDEN)
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], n_cvs))


def _fit_deep_tica(train: Pairs, valid: Pairs, n_cvs: int, max_epochs: int) -> tuple[Callable, int]:
    """Train mlcolvar's DeepTICA; returns (float32 tensor (n, d) -> (n, n_cvs) map, epochs run)."""
    import lightning
    from lightning.pytorch.callbacks import EarlyStopping
    from mlcolvar.cvs import DeepTICA
    from mlcolvar.data import DictDataset, DictLoader

    def loader(pairs: Pairs, size: int) -> DictLoader:  # size 0: one unshuffled batch
        w = torch.ones(len(pairs[0]))
        data = DictDataset({"data": pairs[0], "data_lag": pairs[1], "weights": w, "weights_lag": w})
        return DictLoader(data, batch_size=size, shuffle=size > 0)

    d = train[0].shape[1]
    model = DeepTICA([d, *HIDDEN, n_cvs], n_cvs=n_cvs, options={
        "norm_in": None, "nn": {"activation": "tanh"}, "optimizer": {"lr": LEARNING_RATE}})
    stop = EarlyStopping(monitor="valid_loss", patience=PATIENCE, min_delta=MIN_DELTA, mode="min")
    quiet = logging.getLogger("lightning.pytorch")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as root:
            trainer = lightning.Trainer(
                accelerator="cpu", devices=1, max_epochs=max_epochs, callbacks=[stop], logger=False,
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0, log_every_n_steps=1, default_root_dir=root)
            trainer.fit(model, train_dataloaders=loader(train, batch_size(len(train[0]))),
                        val_dataloaders=loader(valid, 0))
    finally:
        quiet.setLevel(level)
    model.eval()
    with torch.no_grad():  # refit the TICA block on all training pairs (see module docstring)
        f0, ft = (model.forward_nn(torch.from_numpy(x)) for x in train)
        model.tica.compute([f0, ft], save_params=True)
    return model, trainer.current_epoch


def _fit_vampnet(train: Pairs, valid: Pairs, n_cvs: int, max_epochs: int) -> tuple[Callable, int]:
    """Train deeptime's VAMPNet (VAMP-2); whiten its lobe output by a VAMP fit on the train pairs.

    Returns (float32 tensor (n, d) -> (n, n_cvs) map, epochs run).
    """
    from deeptime.decomposition import VAMP
    from deeptime.decomposition.deep import VAMPNet

    lobe = _network(train[0].shape[1], n_cvs)
    vnet = VAMPNet(lobe, learning_rate=LEARNING_RATE, score_method="VAMP2")
    pairs = torch.utils.data.TensorDataset(*map(torch.from_numpy, train))
    batches = torch.utils.data.DataLoader(pairs, batch_size=batch_size(len(pairs)), shuffle=True)
    valid_all = [tuple(map(torch.from_numpy, valid))]
    best, wait, epochs = np.inf, 0, 0
    while epochs < max_epochs and wait < PATIENCE:
        vnet.fit(batches, n_epochs=1, validation_loader=valid_all)
        epochs += 1
        loss = -vnet.validation_scores[-1, 1]
        best, wait = (loss, 0) if loss < best - MIN_DELTA else (best, wait + 1)
    lobe.eval()
    with torch.no_grad():
        y0, yt = (lobe(torch.from_numpy(x)).double().numpy() for x in train)
    koopman = VAMP(dim=n_cvs).fit((y0, yt)).fetch_model()

    def cvs(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(koopman.transform(lobe(x).double().numpy()))

    return cvs, epochs


def fit_peer(method: str, train: list[np.ndarray], lag: int, n_cvs: int = 2, seed: int = 0,
             max_epochs: int = 500) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """Learn ``n_cvs`` slow CVs with a peer method.

    method: "deep_tica" (mlcolvar) or "vampnet" (deeptime). train: trajectories, each (n_frames, d)
    float features (aligned heavy-atom positions, nm, flattened). lag: lag time in frames.
    max_epochs: upper bound on training epochs (early stopping usually ends sooner).

    Returns (transform, record): transform maps (n, d) features to (n, n_cvs) float64 CVs, CV1 the
    slowest; record holds "method", "seconds" (training wall time, s), "epochs", "settings".
    Deterministic on CPU for a given seed.
    """
    if method not in METHODS:
        raise ValueError(f"unknown peer method {method!r}; expected one of {METHODS}")
    train = [np.asarray(t, dtype=np.float64) for t in train]
    frames = np.concatenate(train)
    mean, std = frames.mean(axis=0), frames.std(axis=0)
    std[std == 0.0] = 1.0
    train_pairs, valid_pairs = split_pairs([(t - mean) / std for t in train], lag)
    torch.manual_seed(seed)
    fit = _fit_deep_tica if method == "deep_tica" else _fit_vampnet
    start = time.perf_counter()
    net, epochs = fit(train_pairs, valid_pairs, n_cvs, max_epochs)
    seconds = time.perf_counter() - start

    def transform(x: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32))
        with torch.no_grad():
            return net(z).double().numpy()

    settings = {"lag": lag, "n_cvs": n_cvs, "seed": seed, "hidden": list(HIDDEN),
                "activation": "tanh", "lr": LEARNING_RATE,
                "batch_size": batch_size(len(train_pairs[0])), "max_epochs": max_epochs,
                "patience": PATIENCE, "min_delta": MIN_DELTA, "valid_fraction": VALID_FRACTION,
                "n_train_pairs": len(train_pairs[0]), "n_valid_pairs": len(valid_pairs[0]),
                "output": "TICA block refit on train pairs" if method == "deep_tica"
                else "lobe output projected on VAMP left singular functions (train pairs)"}
    return transform, {"method": method, "seconds": seconds, "epochs": epochs, "settings": settings}
