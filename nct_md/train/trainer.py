"""A small training loop: Adam(W), cosine learning-rate schedule, progress bar, checkpoints."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from nct_md.atomic import atomic_path

LossFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]


class Trainer:
    """Minimise ``loss_fn(step)`` over ``steps`` optimiser steps.

    Parameters
    ----------
    module : nn.Module
        Holds every trained parameter (saved in checkpoints).
    loss_fn : callable
        ``loss_fn(step) -> (loss, metrics)``: a scalar tensor and a dict of floats to log.
    steps : int
        Number of optimiser steps.
    lr : float
        Peak learning rate; a cosine schedule decays it to ``lr * final_lr_fraction``.
    betas : (float, float)
        Adam's moment decay rates. A smaller second one (e.g. 0.99) forgets the large early
        gradients sooner, which matters when late progress is along nearly flat directions.
    param_groups : iterable of dicts, optional
        Optimiser parameter groups (e.g. no weight decay on frequencies); default all
        parameters of ``module``.
    weight_decay : float
        AdamW decoupled weight decay for groups that do not set their own.
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    seed : int, optional
        Seeds torch's global generator at the start of :meth:`fit`.
    generator : torch.Generator, optional
        A generator used by ``loss_fn``; its state is checkpointed so resumed runs match.
    checkpoint : path, optional
        File to save training state to every ``checkpoint_every`` steps (atomically) and to
        resume from if it exists.
    write_checkpoints : bool
        False in the non-writing processes of a distributed run (they still resume from it).
    progress : bool
        Show a tqdm progress bar with the loss.
    evaluate : callable, optional
        ``evaluate() -> float``, a validation loss, called every ``eval_every`` steps. The
        parameters with the lowest value are restored at the end (early stopping).
    eval_every : int
        Steps between evaluations (e.g. one epoch).
    patience : int, optional
        Stop after this many evaluations without improvement.
    after_step : callable, optional
        ``after_step(step)`` called after every optimiser step (e.g. to recenter a flow).
    """

    def __init__(self, module: nn.Module, loss_fn: LossFn, steps: int, lr: float = 1e-3,
                 param_groups: Iterable[dict] | None = None, weight_decay: float = 0.0,
                 final_lr_fraction: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
                 grad_clip: float | None = None,
                 seed: int | None = None, generator: torch.Generator | None = None,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 100,
                 write_checkpoints: bool = True,
                 progress: bool = True, evaluate: Callable[[], float] | None = None,
                 eval_every: int = 100, patience: int | None = None,
                 after_step: Callable[[int], None] | None = None):
        self.module = module
        self.loss_fn = loss_fn
        self.steps = steps
        self.grad_clip = grad_clip
        self.seed = seed
        self.generator = generator
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = checkpoint_every
        self.write_checkpoints = write_checkpoints
        self.progress = progress
        self.evaluate = evaluate
        self.eval_every = eval_every
        self.patience = patience
        self.after_step = after_step
        self.best: dict | None = None  # {"value", "step", "module"} of the best evaluation
        self.bad_evaluations = 0
        groups = list(param_groups) if param_groups is not None else [
            {"params": [p for p in module.parameters() if p.requires_grad]}]
        self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas,
                                           weight_decay=weight_decay)
        floor = final_lr_fraction

        def cosine(step: int) -> float:
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, cosine)
        self.step = 0
        self.history: list[dict[str, float]] = []

    def state_dict(self) -> dict:
        """Everything needed to resume: weights, optimiser, schedule, step, RNG states."""
        state = {
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "best": self.best,
            "bad_evaluations": self.bad_evaluations,
        }
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        torch.set_rng_state(state["torch_rng"])
        self.best = state.get("best")
        self.bad_evaluations = int(state.get("bad_evaluations", 0))
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])

    def save_checkpoint(self) -> None:
        """Write the training state atomically to ``checkpoint``."""
        if self.checkpoint is None or not self.write_checkpoints:
            return
        with atomic_path(self.checkpoint) as tmp:
            torch.save(self.state_dict(), tmp)

    def fit(self) -> list[dict[str, float]]:
        """Run (or resume) training; returns the per-step history of metrics."""
        if self.seed is not None:
            torch.manual_seed(self.seed)
        if self.checkpoint is not None and self.checkpoint.exists():
            self.load_state_dict(torch.load(self.checkpoint, weights_only=True))
        bar = tqdm(total=self.steps, initial=self.step, disable=None if self.progress else True,
                   desc="training", dynamic_ncols=True)
        self.module.train()
        while self.step < self.steps:
            self.optimizer.zero_grad(set_to_none=True)
            loss, metrics = self.loss_fn(self.step)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at step {self.step}; "
                                         "lower the learning rate or check the input data")
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            if self.after_step is not None:
                self.after_step(self.step)
            record = {"step": self.step, "loss": float(loss.detach()), **metrics}
            self.history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4g}")
            stop = False
            if self.evaluate is not None and (self.step % self.eval_every == 0
                                              or self.step == self.steps):
                stop = self._evaluate(record)
            if stop or self.step % self.checkpoint_every == 0 or self.step == self.steps:
                self.save_checkpoint()
            if stop:
                break
        bar.close()
        if self.best is not None:
            self.module.load_state_dict(self.best["module"])
        self.module.eval()
        return self.history

    def _evaluate(self, record: dict[str, float]) -> bool:
        """Run the validation, keep the best parameters; True when patience is exhausted."""
        self.module.eval()
        value = float(self.evaluate())
        self.module.train()
        record["validation"] = value
        if self.best is None or value < self.best["value"]:
            state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            self.best = {"value": value, "step": self.step, "module": state}
            self.bad_evaluations = 0
        else:
            self.bad_evaluations += 1
        return self.patience is not None and self.bad_evaluations >= self.patience
