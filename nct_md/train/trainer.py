"""A small training loop: Adam(W), cosine learning-rate schedule, progress, checkpoints.

Checkpoints record a fingerprint of their run and are resumed only by the same run (see
:mod:`nct_md.train.checkpoint`); Ctrl-C or SIGTERM stops after the current step, keeps the last
checkpoint and raises :class:`~nct_md.errors.NCTInterrupted`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from nct_md.atomic import atomic_path
from nct_md.errors import NCTInputError, NCTInterrupted
from nct_md.train.checkpoint import (
    FRESH_HINT,
    InterruptSignals,
    checkpoint_lock,
    first_difference,
    load_checkpoint,
)

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
        resume from if it exists. While training, ``CHECKPOINT.lock`` (holding the pid) keeps
        other runs from using it.
    fingerprint : dict, optional
        ``{section: {name: value}}`` (JSON-able) describing the data and settings of this run;
        stored in the checkpoint together with the trainer's own settings, and a checkpoint
        whose record differs is refused (:class:`~nct_md.errors.NCTInputError`).
    restart : bool
        Delete an existing checkpoint (under the lock) and start fresh.
    write_checkpoints : bool
        False in the non-writing processes of a distributed run (they still resume from it).
    progress : bool
        A tqdm progress bar with the loss on a terminal; otherwise (stderr not a terminal, e.g.
        a batch job) one line per epoch: epoch, train loss, validation loss, elapsed time.
    steps_per_epoch : int, optional
        Steps of one epoch: progress lines, resume and interrupt messages count epochs. Default:
        they count steps, and progress lines come every ``eval_every`` steps.
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
                 fingerprint: dict | None = None, restart: bool = False,
                 write_checkpoints: bool = True,
                 progress: bool = True, evaluate: Callable[[], float] | None = None,
                 eval_every: int = 100, patience: int | None = None,
                 after_step: Callable[[int], None] | None = None,
                 steps_per_epoch: int | None = None):
        self.module = module
        self.loss_fn = loss_fn
        self.steps = steps
        self.grad_clip = grad_clip
        self.seed = seed
        self.generator = generator
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = checkpoint_every
        self.restart = restart
        self.steps_per_epoch = steps_per_epoch
        self.fingerprint = {**(fingerprint or {}), "trainer": {
            "steps": steps, "lr": lr, "betas": list(betas), "weight_decay": weight_decay,
            "final_lr_fraction": final_lr_fraction, "grad_clip": grad_clip, "seed": seed,
            "checkpoint_every": checkpoint_every, "eval_every": eval_every,
            "patience": patience}}
        self._saved_step: int | None = None  # step of the checkpoint on disk, if any
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

    def save_checkpoint(self, state: dict | None = None) -> None:
        """Write the training state (default: the current one) atomically to ``checkpoint``."""
        if self.checkpoint is None or not self.write_checkpoints:
            return
        state = self.state_dict() if state is None else state
        with atomic_path(self.checkpoint) as tmp:
            torch.save({**state, "fingerprint": self.fingerprint}, tmp)
        self._saved_step = int(state["step"])

    def _position(self, step: int) -> str:
        """``"epoch N"`` (completed epochs) or ``"step N"``."""
        if self.steps_per_epoch:
            return f"epoch {step // self.steps_per_epoch}"
        return f"step {step}"

    def _resume(self) -> None:
        """Load the checkpoint after checking that it belongs to this run."""
        state = load_checkpoint(self.checkpoint)
        difference = first_difference(state.get("fingerprint"), self.fingerprint)
        if difference is not None:
            raise NCTInputError(f"checkpoint {self.checkpoint} belongs to another run "
                                f"({difference}); {FRESH_HINT}")
        try:
            self.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise NCTInputError(f"checkpoint {self.checkpoint} does not fit this model "
                                f"({reason}); {FRESH_HINT}") from None
        self._saved_step = self.step
        if self.write_checkpoints:
            print(f"resuming from {self._position(self.step)} (checkpoint {self.checkpoint})",
                  file=sys.stderr, flush=True)

    def _interrupted(self) -> NCTInterrupted:
        """The exception that reports where the kept checkpoint stands."""
        if self.checkpoint is None or self._saved_step is None:
            return NCTInterrupted(f"interrupted at {self._position(self.step)}; no checkpoint "
                                  "was kept")
        again = " without --restart" if self.restart else ""
        return NCTInterrupted(f"interrupted at {self._position(self._saved_step)}; checkpoint "
                              f"kept at {self.checkpoint}; run the same command again{again} "
                              "to resume")

    def fit(self) -> list[dict[str, float]]:
        """Run (or resume) training; returns the per-step history of metrics.

        Raises :class:`~nct_md.errors.NCTInputError` for a checkpoint of another run, an
        unreadable checkpoint, a checkpoint locked by a running process or a non-finite loss,
        and :class:`~nct_md.errors.NCTInterrupted` on Ctrl-C / SIGTERM (after keeping the last
        checkpoint: the one of the last completed epoch, or the starting state).
        """
        if self.seed is not None:
            torch.manual_seed(self.seed)
        writes = self.checkpoint is not None and self.write_checkpoints
        with contextlib.ExitStack() as stack:
            if writes:
                stack.enter_context(checkpoint_lock(self.checkpoint))
                if self.restart:
                    self.checkpoint.unlink(missing_ok=True)
            if self.checkpoint is not None and not self.restart and self.checkpoint.exists():
                self._resume()
            # the starting state, kept if a signal comes before the first checkpoint
            fresh = writes and self._saved_step is None
            start = copy.deepcopy(self.state_dict()) if fresh else None
            signals = stack.enter_context(InterruptSignals())
            try:
                self._run(signals)
            except KeyboardInterrupt:
                if self._saved_step is None and start is not None:
                    self.save_checkpoint(start)
                raise self._interrupted() from None
        if self.best is not None:
            self.module.load_state_dict(self.best["module"])
        self.module.eval()
        return self.history

    def _run(self, signals: InterruptSignals) -> None:
        """The optimisation loop from ``self.step``; KeyboardInterrupt when a signal came."""
        lines = self.progress and not sys.stderr.isatty()
        bar = tqdm(total=self.steps, initial=self.step, disable=not self.progress or lines,
                   desc="training", dynamic_ncols=True)
        started, losses = time.perf_counter(), []
        log_every = self.steps_per_epoch or self.eval_every
        self.module.train()
        try:
            while self.step < self.steps and not self.patience_used:
                record = self._step()
                self.history.append(record)
                losses.append(record["loss"])
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4g}")
                stop = False
                if self.evaluate is not None and (self.step % self.eval_every == 0
                                                  or self.step == self.steps):
                    stop = self._evaluate(record)
                if stop or self.step % self.checkpoint_every == 0 or self.step == self.steps:
                    self.save_checkpoint()
                if lines and (stop or self.step % log_every == 0 or self.step == self.steps):
                    self._log(record, losses, time.perf_counter() - started)
                    losses = []
                if signals.requested:
                    raise KeyboardInterrupt
                if stop:
                    break
        finally:
            bar.close()

    def _step(self) -> dict[str, float]:
        """One optimiser step; its record (step, loss, metrics)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, metrics = self.loss_fn(self.step)
        if not torch.isfinite(loss):
            lr = self.optimizer.param_groups[0]["initial_lr"]
            raise NCTInputError(f"the loss became {float(loss.detach())} at step {self.step} "
                                f"({self._position(self.step)}); lower the learning rate (now "
                                f"{lr:g}) or check the input data for broken frames")
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        if self.after_step is not None:
            self.after_step(self.step)
        return {"step": self.step, "loss": float(loss.detach()), **metrics}

    def _log(self, record: dict[str, float], losses: list[float], elapsed: float) -> None:
        """One progress line on stderr: position, mean train loss, validation loss, time."""
        if self.steps_per_epoch:
            where = (f"epoch {math.ceil(self.step / self.steps_per_epoch)}/"
                     f"{math.ceil(self.steps / self.steps_per_epoch)}")
        else:
            where = f"step {self.step}/{self.steps}"
        line = f"{where}: train loss {sum(losses) / len(losses):.4g}"
        if "validation" in record:
            line += f", validation loss {record['validation']:.4g}"
        print(f"{line}, {elapsed:.1f} s elapsed", file=sys.stderr, flush=True)

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
        return self.patience_used

    @property
    def patience_used(self) -> bool:
        """True when early stopping has ended the run (also when resumed from its checkpoint)."""
        return self.patience is not None and self.bad_evaluations >= self.patience
