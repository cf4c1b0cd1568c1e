"""The NCT estimator: fit a model to MD phase-space data by maximum likelihood.

Follows deeptime's estimator/model split: ``NCT(...).fit(data)`` returns the estimator and
``fetch_model()`` an independent :class:`~nct_md.model.NCTModel`. Hyperparameters are checked
when the estimator is made; ``restarts`` fits several seeds and keeps one (:mod:`nct_md.train.
kinetic`); checkpoints are resumed only by the run they belong to (:mod:`nct_md.train.
checkpoint`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from nct_md import __version__
from nct_md.cv.ood import fit_threshold
from nct_md.defaults import TRAINING, hidden_width
from nct_md.errors import NCTInputError, check_integer, check_number
from nct_md.flows.builders import COUPLINGS
from nct_md.generate.diagnostics import kish_ess
from nct_md.md.data import PhaseSpaceData
from nct_md.md.zmatrix import zmatrix
from nct_md.model import ModelInfo, NCTModel, Preprocessing, build_flow, topology_to_json
from nct_md.model_info import Hyperparameters, KineticInfo, Restarts, TrainingInfo, WeightsInfo
from nct_md.train import Trainer
from nct_md.train.checkpoint import content_hash, data_fingerprint
from nct_md.train.cv_axes import fit_cv_axes
from nct_md.train.gaussian_start import (
    SHRINK_BELOW_FRAMES_PER_DOF,
    gaussian_start,
    internal_gaussian_start,
    principal_axes,
    start_covariance,
)
from nct_md.train.kinetic import (
    choose_restart,
    discrete_score,
    kinetic_pairs,
    restart_weights,
    vamp2,
)
from nct_md.train.losses import OBJECTIVES, ConfigurationNLL
from nct_md.train.split import (
    MIN_TRAIN_FRAMES,
    distributed_rank_and_size,
    frames_needed,
    mean_over_processes,
    validation_split,
)


def _epoch_means(history: list[dict[str, float]], key: str) -> list[float]:
    """Mean of ``key`` over the steps of each epoch (the training loss curve)."""
    epochs: dict[int, list[float]] = {}
    for record in history:
        epochs.setdefault(int(record["epoch"]), []).append(record[key])
    return [float(np.mean(values)) for _, values in sorted(epochs.items())]


class NCT:
    """Maximum-likelihood neural canonical transformation of MD phase-space data.

    Parameters
    ----------
    n_couplings : int
        Affine-coupling point transformations in the flow (a linear point transform follows).
    hidden : int, optional
        Width of each coupling's conditioner; default sized from the degrees of freedom
        ``d`` of the data (:func:`nct_md.defaults.hidden_width`: ``2 d`` within [128, 256]).
    depth : int
        Hidden layers of each coupling's conditioner.
    epochs : int
        Passes over the training frames (early stopping may end sooner).
    batch_size : int
    lr : float
        Peak learning rate (cosine schedule); frequencies get no weight decay.
    weight_decay : float
        AdamW weight decay of the network weights.
    validation_fraction : float
        Share of frames held out (by trajectory or time block) for early stopping.
    patience : int
        Epochs without validation improvement before stopping.
    seed : int
    restarts : int
        Fit this many times (:attr:`seeds`, disjoint between values of ``seed``); keep one fit
        (:func:`~nct_md.train.kinetic.choose_restart`); all are recorded in
        ``info.training.restarts``.
    device : str or torch.device
    dtype : torch.dtype
        float32 (default) or float64.
    checkpoint : path, optional
        Resumable training state, written every epoch (by rank 0 when distributed); with
        ``restarts > 1`` one per seed (:meth:`checkpoint_paths`). It records the data and
        settings, and a checkpoint of another run is refused (NCTInputError).
    restart : bool
        Delete existing checkpoints and start fresh instead of resuming.
    progress : bool
        tqdm progress bar on a terminal, one line per epoch otherwise.
    internal_coordinates : bool
        Start the flow with bond lengths, angles and torsions (:class:`~nct_md.flows.
        InternalCoordinates`, from the topology's bonds); the model's first coordinates are
        then standardised internal coordinates. Meant for generators over every atom.
    objective : {"phase_space", "configuration"}
        Likelihood of phase-space points (default, as in the paper) or of configurations alone
        (momenta integrated out; needs no velocities; several times faster per step).
    coupling : {"affine", "spline"}
        Affine couplings (default; exportable as a TorchScript CV) or rational-quadratic spline
        couplings (multimodal coordinates such as torsions; for generators).
    kinetic_weight : float, optional
        Weight of the kinetic objective (:mod:`nct_md.train.kinetic`): each step also maximises
        ``kinetic_weight`` times the VAMP-2 score of the ``n_slow`` slowest latent positions at
        ``t`` and ``t + lag_ps`` (pairs within one trajectory, training frames only); validation
        and early stopping use the same combined objective. 0 is the paper's pure likelihood; a
        number needs time-ordered trajectories with frame times. None (the default): restarts
        alternate between the likelihood alone and :data:`nct_md.defaults.KINETIC_WEIGHT`
        (:func:`~nct_md.train.kinetic.restart_weights`), and the kinetic fit is kept only where
        its slowest CVs are measurably slower on the validation frames; data that do not allow
        the kinetic objective (no frame times, weights, a separate validation set, several
        processes) train on the likelihood alone. ``info.training`` records what was used.
        CV axes: see :meth:`fit` (with weight 0, the CVs are the paper's latent positions).
    lag_ps : float
        Lag time of the kinetic objective, ps (a multiple of the frame spacing).
    n_slow : int
        Slowest latent coordinates the kinetic objective makes slow (the CVs one will use).
    biased_kinetics : bool
        With per-frame weights (biased sampling), still take the kinetic objective from the
        time-lagged pairs of every trajectory, unweighted, as TICA of biased trajectories does.
        Their dynamics are not the unbiased kinetics, but the transitions a bias drives remain
        their slowest motions, which is what CVs for the next bias need (the exploration loop
        passes it on from its ``train`` settings). False (the default): weights turn the
        kinetic objective off.

    Notes
    -----
    Under ``torchrun`` (an initialised ``torch.distributed`` process group) training runs data-
    parallel with ``DistributedDataParallel``: every process holds the same data and seed, takes
    every ``world_size``-th frame of each global batch, and gradients are averaged, so the run
    follows the single-process one with the same global ``batch_size``.

    With fewer than two training frames per degree of freedom the Gaussian start uses a
    covariance shrunk toward its diagonal (a warning says so); fewer than
    :data:`MIN_TRAIN_FRAMES` training frames are refused.
    """

    def __init__(self, n_couplings: int = TRAINING["n_couplings"], hidden: int | None = None,
                 depth: int = TRAINING["depth"], epochs: int = TRAINING["epochs"],
                 batch_size: int = TRAINING["batch_size"], lr: float = TRAINING["lr"],
                 weight_decay: float = 1e-5, validation_fraction: float = 0.2,
                 patience: int = TRAINING["patience"], seed: int = 0,
                 restarts: int = TRAINING["restarts"],
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 checkpoint: str | os.PathLike | None = None, restart: bool = False,
                 progress: bool = True,
                 internal_coordinates: bool = False, objective: str = "phase_space",
                 coupling: str = "affine", kinetic_weight: float | None = None,
                 lag_ps: float = TRAINING["lag_ps"], n_slow: int = TRAINING["n_slow"],
                 biased_kinetics: bool = False):
        check_integer("n_couplings", n_couplings, minimum=0)
        if hidden is not None:
            check_integer("hidden", hidden)
        for name, value in (("depth", depth), ("epochs", epochs),
                            ("batch_size", batch_size), ("patience", patience),
                            ("restarts", restarts), ("n_slow", n_slow)):
            check_integer(name, value)
        check_integer("seed", seed, minimum=-2**63)
        check_number("lr", lr)
        check_number("weight_decay", weight_decay, zero=True)
        if kinetic_weight is not None:
            check_number("kinetic_weight", kinetic_weight, zero=True)
        check_number("lag_ps", lag_ps)
        if not (isinstance(validation_fraction, numbers.Real) and 0 < validation_fraction < 1):
            raise NCTInputError(f"validation_fraction must be in (0, 1), got "
                                f"{validation_fraction}")
        if objective not in OBJECTIVES:
            raise NCTInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if coupling not in COUPLINGS:
            raise NCTInputError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
        self.architecture = {"kind": "point_flow", "n_couplings": n_couplings,
                             "hidden": hidden, "depth": depth, "linear": True,
                             "coupling": coupling}
        self.internal_coordinates, self.objective = internal_coordinates, objective
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.weight_decay = weight_decay
        self.validation_fraction, self.patience = validation_fraction, patience
        self.seed, self.restarts = seed, restarts
        self.device, self.dtype = torch.device(device), dtype
        self.checkpoint, self.restart, self.progress = checkpoint, restart, progress
        self.kinetic_weight, self.lag_ps, self.n_slow = kinetic_weight, lag_ps, n_slow
        self.biased_kinetics = bool(biased_kinetics)
        self.history: list[dict[str, float]] = []
        self._model: NCTModel | None = None

    @property
    def seeds(self) -> list[int]:
        """Seeds fitted: ``seed * restarts + r``, ``r < restarts`` (disjoint between seeds)."""
        return [self.seed * self.restarts + r for r in range(self.restarts)]

    def checkpoint_paths(self) -> list[Path]:
        """The checkpoint file of each seed (``CKPT``, or ``NAME.seedS.SUFFIX`` with restarts)."""
        if self.checkpoint is None:
            return []
        path = Path(self.checkpoint)
        if self.restarts == 1:
            return [path]
        return [path.with_suffix(f".seed{seed}{path.suffix}") for seed in self.seeds]

    def settings(self, seed: int, weight: float) -> dict:
        """Every setting that changes the run of ``seed`` with kinetic weight ``weight`` (the
        checkpoint's settings record)."""
        return {**{k: v for k, v in self.architecture.items() if k not in ("kind", "linear")},
                "internal_coordinates": self.internal_coordinates, "objective": self.objective,
                "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay,
                "validation_fraction": self.validation_fraction, "patience": self.patience,
                "seed": seed, "dtype": str(self.dtype),
                **({"kinetic_weight": weight, "lag_ps": self.lag_ps, "n_slow": self.n_slow,
                    "biased_kinetics": self.biased_kinetics} if weight != 0 else {})}

    def _initial_model(self, data: PhaseSpaceData, train: np.ndarray) -> NCTModel:
        """The best Gaussian model of the training frames: principal axes and their widths."""
        pre = Preprocessing(data.reference, data.masses, data.temperature)
        internal = pre.eckart_coordinates(data.q[train].double())  # (n, d), sqrt(amu) nm
        cov, shrinkage = start_covariance(internal)
        if shrinkage is not None:
            warnings.warn(
                f"{len(train)} training frames (of {len(data)}) for {pre.n_dof} degrees of "
                f"freedom, fewer than {SHRINK_BELOW_FRAMES_PER_DOF:g} per degree of freedom: "
                f"the Gaussian start shrinks the covariance toward its diagonal (intensity "
                f"{shrinkage:.2f}); expect a rough model, or train on more frames", stacklevel=4)
        axes, widths = principal_axes(cov)
        pre.mean.copy_(internal.mean(0))
        pre.axes.copy_(axes)
        architecture = {**self.architecture, "n": pre.n_dof,
                        "hidden": self.architecture["hidden"] or hidden_width(pre.n_dof)}
        if self.internal_coordinates:
            try:
                architecture["internal_coordinates"] = zmatrix(data.topology).tolist()
            except ValueError as exc:
                raise NCTInputError(f"internal coordinates of this selection: {exc}") from None
        flow = build_flow(architecture)
        if self.internal_coordinates:
            latent = internal_gaussian_start(flow, pre, data.q[train].double())
        else:
            latent = gaussian_start(flow, widths / pre.sqrt_kT)  # widths in ps (model units)
        info = ModelInfo(
            atom_indices=list(data.atom_indices), atom_names=list(data.atom_names),
            topology=topology_to_json(data.topology), temperature=data.temperature,
            nct_md_version=__version__, data=dataclasses.replace(data.info, units={}),
            constraints_handling=(
                "no constrained bonds inside the selection" if not
                data.info.n_constrained_in_selection else
                "constrained bonds inside the selection: their directions are nearly degenerate"),
            gaussian_start_shrinkage=shrinkage,
        )
        model = NCTModel(pre, flow, latent, architecture, info)
        return model.to(device=self.device, dtype=self.dtype)

    def fit(self, data: PhaseSpaceData, validation: PhaseSpaceData | None = None,
            files: Sequence[str | os.PathLike] | None = None) -> NCT:
        """Fit to ``data``; validation frames are held out of it unless given separately.

        ``files`` (the trajectory and topology files the data came from, when known) join the
        checkpoint's record of the data by path and size. Every seed of :attr:`seeds` is fitted
        and one kept (:func:`~nct_md.train.kinetic.choose_restart`). Frames with
        :attr:`~nct_md.md.data.PhaseSpaceData.weights` (biased sampling) are drawn into the
        training batches with probability proportional to their weight, and the validation NLL
        is the weighted mean; the kinetic objective is then off (refused if asked for) unless
        ``biased_kinetics``. The kept model records its out-of-distribution threshold
        (:mod:`nct_md.cv.ood`) and, where it was scored on time-lagged pairs and ``n_slow`` is
        2, the directions of CV1 and CV2 among its slowest latent positions (:mod:`nct_md.train.
        cv_axes`).
        """
        if data.info.n_constrained_in_selection:
            raise NCTInputError(
                f"the selection holds {data.info.n_constrained_in_selection} bonds that "
                "were constrained in the simulation (HBonds), which makes the density "
                "degenerate; select heavy atoms (--select heavy) or use unconstrained data")
        record = (data_fingerprint(data, validation, files) if self.checkpoint is not None
                  else {})
        frame_weights = [d.weights for d in (data, validation)
                         if d is not None and d.weights is not None]
        if record and frame_weights:
            record["weights hash"] = content_hash(*map(torch.from_numpy, frame_weights))
        kinetic_weights = restart_weights(self.kinetic_weight, self.restarts)
        fits = [self._fit_seed(data, validation, seed, weight, checkpoint,
                               {"data": record, "settings": self.settings(seed, weight)})
                for seed, weight, checkpoint in zip(
                    self.seeds, kinetic_weights,
                    self.checkpoint_paths() or [None] * self.restarts, strict=True)]
        models, histories = [f[0] for f in fits], [f[1] for f in fits]
        infos = [m.info.training for m in models]
        kinetic = [t.kinetic for t in infos]
        best = choose_restart([t.validation_nll for t in infos], kinetic)
        self._model, self.history = models[best], histories[best]
        self._model.info.training.restarts = Restarts(
            seeds=self.seeds, validation_nll=[float(t.validation_nll) for t in infos],
            kinetic_weights=[k.weight if k else 0.0 for k in kinetic] if any(kinetic) else None,
            validation_vamp2_discrete=[k.validation_vamp2_discrete for k in kinetic]
            if all(kinetic) else None)
        self._model.info.ood = fit_threshold(self._model, data, validation,
                                             self.validation_fraction)
        if (kept := kinetic[best]) is not None and self.n_slow == 2:
            self._model.info.cv_axes = fit_cv_axes(self._model, data, kept)
        return self

    def _fit_seed(self, data: PhaseSpaceData, validation: PhaseSpaceData | None, seed: int,
                  weight: float, checkpoint: Path | None, fingerprint: dict
                  ) -> tuple[NCTModel, list[dict[str, float]]]:
        """One fit with ``seed`` and kinetic weight ``weight`` (:func:`restart_weights`); the
        model and its per-step history. Likelihood-only restarts of the default (automatic)
        kinetic objective are scored on the same lagged pairs."""
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        if validation is None:
            train, val = validation_split(data, self.validation_fraction)
            val_p, val_q = data.p[val], data.q[val]
            val_w = None if data.weights is None else data.weights[val]
        else:
            train, val = np.arange(len(data)), None
            val_p, val_q, val_w = validation.p, validation.q, validation.weights
        if len(train) < MIN_TRAIN_FRAMES:
            raise NCTInputError(
                f"only {len(train)} training frames ({len(data)} frames, {len(val_q)} held out "
                f"for validation); training needs at least {MIN_TRAIN_FRAMES} training frames "
                f"(about {frames_needed(self.validation_fraction)} frames): use a smaller "
                "stride or more trajectories")
        model = self._initial_model(data, train)
        rank, world = distributed_rank_and_size()
        if self.batch_size % world:
            raise NCTInputError(f"batch size {self.batch_size} must be a multiple of the number "
                                f"of training processes ({world})")
        # Under torch.distributed each process takes every world-th frame of each global batch;
        # DistributedDataParallel averages the gradients, so the step equals the global one.
        objective = model if self.objective == "phase_space" else ConfigurationNLL(model)
        net = DistributedDataParallel(objective) if world > 1 else objective
        to = {"device": self.device, "dtype": self.dtype}
        q_train = data.q[train].to(**to)
        val_p, val_q = val_p.to(**to), val_q.to(**to)
        # Weighted frames: batches drawn with probability w (unbiased, and a lower variance than
        # w-weighted batch means); the validation NLL is the w-weighted mean (w = 1 without).
        train_w = None if data.weights is None else torch.as_tensor(data.weights[train])
        val_w = torch.ones(len(val_q)) if val_w is None else torch.as_tensor(val_w)
        val_w = val_w.to(**to)
        if train_w is not None and not (train_w.any() and val_w.any()):
            raise NCTInputError("the training or the validation frames all have weight 0; "
                                "give positive weights to frames throughout the data")
        steps_per_epoch = max(1, len(train) // self.batch_size)
        state = {"epoch": -1, "order": None, "p": data.p[train].to(**to)}
        kinetic = kinetic_pairs(data, train, val, weight, self.lag_ps,
                                required=self.kinetic_weight is not None,
                                separate_validation=validation is not None, world=world,
                                biased_kinetics=self.biased_kinetics)
        q_all = None if kinetic is None else data.q.to(**to)  # lagged pairs index all frames

        def loss(step: int):
            epoch, k = divmod(step, steps_per_epoch)
            if epoch != state["epoch"]:
                state["epoch"] = epoch
                state["order"] = (torch.randperm(len(train), generator=generator)
                                  if train_w is None else
                                  torch.multinomial(train_w, len(train), True, generator=generator))
                if not data.has_velocities:
                    state["p"] = data.resample_momenta(generator)[train].to(**to)
            idx = state["order"][k * self.batch_size:(k + 1) * self.batch_size][rank::world]
            nll = net(state["p"][idx], q_train[idx]).mean()
            metrics = {"epoch": epoch, "global_loss": mean_over_processes(nll, world)}
            if kinetic is None or kinetic.weight == 0:
                return nll, metrics
            pick = torch.randint(len(kinetic.train_first), (self.batch_size,), generator=generator)
            score = self._pair_vamp2(model, q_all, kinetic.train_first[pick],
                                     kinetic.train_second[pick])
            return nll - kinetic.weight * score, {**metrics, "vamp2": float(score.detach())}

        @torch.no_grad()  # the couplings' momentum lift then builds no double-backward graph
        def validation_nll() -> float:
            total = sum(float((objective(val_p[start:start + 4096], val_q[start:start + 4096])
                               * val_w[start:start + 4096]).sum())
                        for start in range(0, len(val_q), 4096))
            return total / float(val_w.sum())

        @torch.no_grad()
        def validation_vamp2() -> float | None:
            return (None if kinetic is None else
                    float(self._pair_vamp2(model, q_all, kinetic.val_first, kinetic.val_second)))

        def evaluate() -> float:  # the likelihood restarts' VAMP-2 is scored once, at the end
            return validation_nll() - (0.0 if kinetic is None or kinetic.weight == 0 else
                                       kinetic.weight * validation_vamp2())

        def recenter_each_epoch(step: int) -> None:
            if step % steps_per_epoch == 0:
                model.flow.recenter()

        groups = [{"params": [p for n, p in model.named_parameters()
                              if not n.startswith("latent.")]},
                  {"params": list(model.latent.parameters()), "weight_decay": 0.0}]
        trainer = Trainer(model, loss, steps=self.epochs * steps_per_epoch, lr=self.lr,
                          param_groups=groups, weight_decay=self.weight_decay, seed=seed,
                          generator=generator, checkpoint=checkpoint, fingerprint=fingerprint,
                          restart=self.restart, write_checkpoints=rank == 0,
                          checkpoint_every=steps_per_epoch, progress=self.progress and rank == 0,
                          evaluate=evaluate, eval_every=steps_per_epoch, patience=self.patience,
                          after_step=recenter_each_epoch, steps_per_epoch=steps_per_epoch)
        history = trainer.fit()
        best = trainer.best or {"value": math.nan, "step": trainer.step}
        model.eval()
        vamp = validation_vamp2()
        model.info.training = TrainingInfo(
            n_train_frames=int(len(train)), n_validation_frames=int(len(val_q)),
            epochs_run=int(math.ceil(trainer.step / steps_per_epoch)),
            best_epoch=int(best["step"] // steps_per_epoch),
            validation_nll=(float(best["value"]) if kinetic is None or kinetic.weight == 0
                            else validation_nll()),  # the best value holds -W * VAMP-2 then
            seed=seed,
            epoch_losses=_epoch_means(history, "global_loss"),
            processes=world, objective=self.objective,
            hyperparameters=Hyperparameters(epochs=self.epochs, batch_size=self.batch_size,
                                            lr=self.lr, weight_decay=self.weight_decay,
                                            patience=self.patience),
            kinetic=None if vamp is None else KineticInfo(
                weight=kinetic.weight, lag_frames=kinetic.lag, n_slow=self.n_slow,
                validation_vamp2=vamp, validation_vamp2_discrete=discrete_score(
                    model.latent_positions, q_all, kinetic, self.n_slow)),
            weights=None if train_w is None else WeightsInfo(
                kish_ess(train_w.log().numpy()), kish_ess(val_w.double().cpu().log().numpy())),
        )
        return model, history

    def _pair_vamp2(self, model: NCTModel, q: torch.Tensor, first: torch.Tensor,
                    second: torch.Tensor) -> torch.Tensor:
        """VAMP-2 of the ``n_slow`` slowest latent positions over pairs ``(first, second)``."""
        return vamp2(model.latent_positions(q[first])[:, :self.n_slow],
                     model.latent_positions(q[second])[:, :self.n_slow])

    def fetch_model(self) -> NCTModel:
        """An independent copy of the fitted model."""
        if self._model is None:
            raise RuntimeError("call fit(data) before fetch_model()")
        return copy.deepcopy(self._model)
