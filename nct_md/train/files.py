"""Training from trajectory files, as ``nct-md train`` does: load, fit, record, save.

:func:`train_files` is the whole command as one library call: it checks the settings and the
output path before any work, reads the files, fits :class:`~nct_md.estimator.NCT` (resuming
from ``OUT.ckpt`` when it belongs to the same data and settings), records where the data came
from, writes the model and removes the checkpoints. Under ``torchrun`` it joins the process
group and trains data-parallel; only rank 0 writes. :func:`read_weights` reads the per-frame
weights of biased data (``--weights``).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nct_md.atomic import check_output
from nct_md.errors import NCTInputError, check_integer
from nct_md.estimator import NCT
from nct_md.md.io import read_provenance
from nct_md.md.phase import load_phase_space
from nct_md.md.thermo import check_temperature
from nct_md.model import NCTModel

PathLike = str | os.PathLike


def _start_distributed(device: str) -> int:
    """Join the torchrun process group when launched by torchrun; returns this rank."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank() if dist.is_initialized() else 0


def warn_temperature(paths: Sequence[PathLike], temperature: float | None) -> None:
    """Warn (once) when ``temperature`` (K) differs from one the files' provenance records."""
    if temperature is None:
        return
    for path in paths:
        recorded = read_provenance(path).get("temperature")
        if recorded is not None and not math.isclose(float(recorded), temperature):
            warnings.warn(f"temperature {temperature:g} K differs from the {float(recorded):g} K "
                          f"that {path} was simulated at; training uses {temperature:g} K",
                          stacklevel=3)
            return


def read_weights(path: PathLike) -> np.ndarray:
    """Per-frame weights ``(n_frames,)`` from a ``.npy`` file or a text file (one per line).

    Text files (``.txt``, ``.dat``, ...) may hold ``#`` comments; when the first line is
    ``# log-weights`` the numbers are ``ln w`` (any offset; ``-inf`` for weight 0), which keeps
    the large dynamic range of metadynamics weights. ``.npy`` files hold plain weights. The
    values are checked when the data are built (:func:`nct_md.md.data.frame_weights`).
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            values, log = np.load(path, allow_pickle=False), False
        else:
            with path.open() as handle:
                log = handle.readline().strip().lower().startswith("# log-weights")
            values = np.loadtxt(path, dtype=np.float64, ndmin=1)
        values = np.asarray(values, dtype=np.float64)
    except ValueError as exc:
        raise NCTInputError(f"weights file {path} is not a column of numbers ({exc}); write one "
                            "weight per line, or a 1-D .npy array") from None
    if values.ndim != 1:
        raise NCTInputError(f"weights file {path} holds an array of shape {values.shape}; "
                            "write one weight per line, or a 1-D .npy array")
    if not log:
        return values
    if (np.isnan(values) | (values == np.inf)).any():
        raise NCTInputError(f"weights file {path} has NaN or +inf log-weights; fix them")
    top = values.max(initial=-np.inf)
    return np.exp(values - top) if np.isfinite(top) else np.zeros_like(values)


def record_files(model: NCTModel, paths: Sequence[PathLike], top: PathLike | None,
                 out: PathLike) -> None:
    """Store the data and topology files in ``model.info.training``, relative to ``out``.

    Relative paths let a model moved together with its data still find them.
    """
    where = Path(out).resolve().parent
    training = model.info.training
    training.files = [os.path.relpath(Path(p).resolve(), where) for p in paths]
    training.topology_file = os.path.relpath(Path(top).resolve(), where) if top else None


def train_files(paths: Sequence[PathLike], out: PathLike, top: PathLike | None = None,
                select: str = "heavy", temperature: float | None = None, stride: int = 1,
                overwrite: bool = False, restart: bool = False, verbose: bool = True,
                weights: PathLike | np.ndarray | None = None, **settings) -> NCTModel | None:
    """Fit a model to trajectory files and save it to ``out``.

    Parameters
    ----------
    paths : sequence of paths
        Trajectory files (any mdtraj format), one trajectory each.
    out : path
        Model file to write; the checkpoint is ``OUT.ckpt`` (``OUT.seedS.ckpt`` per seed with
        ``restarts > 1``), locked by ``OUT.ckpt.lock`` while training and removed at the end.
    top : path, optional
        Topology file (optional for formats that carry one).
    select : str
        Atom selection (see :func:`nct_md.md.io.resolve_selection`).
    temperature : float, optional
        Data temperature in K; default the one ``nct-md simulate`` stored in the files. A
        value that differs from the stored one gives a warning.
    stride : int
        Use every ``stride``-th frame.
    overwrite : bool
        Replace an existing ``out``.
    restart : bool
        Delete an existing checkpoint and start fresh (otherwise it is resumed when it belongs
        to the same data and settings, and refused when not).
    verbose : bool
        Print summaries of the data and of the fit (stdout) and show training progress.
    weights : path or ndarray, optional
        Per-frame weights of biased data (a file for :func:`read_weights`, or the array): one per
        frame of all trajectories concatenated in the order of ``paths``, after ``stride``.
    **settings
        Keyword arguments of :class:`~nct_md.estimator.NCT` (``n_couplings``, ``epochs``,
        ``lr``, ``seed``, ``restarts``, ...).

    Returns
    -------
    NCTModel or None
        The saved model (None in the non-writing processes of a torchrun run).
    """
    check_integer("stride", stride)
    if temperature is not None:
        check_temperature(temperature)
    out = Path(out)
    estimator = NCT(**settings, checkpoint=out.with_name(out.name + ".ckpt"), restart=restart,
                    progress=verbose)
    check_output(out, overwrite)
    if weights is not None and not isinstance(weights, np.ndarray):
        weights = read_weights(weights)
    rank = _start_distributed(str(estimator.device))
    warn_temperature(paths, temperature)
    data = load_phase_space(paths, top, select=select, temperature=temperature, stride=stride,
                            weights=weights)
    if rank == 0 and verbose:
        print(f"{len(data)} frames in {data.n_traj} trajectories, {data.n_atoms} atoms "
              f"({select}), {data.n_dof} internal degrees of freedom, "
              f"momenta from {data.info.momenta}, T = {data.temperature} K", flush=True)
    estimator.fit(data, files=[*paths, *([top] if top is not None else [])])
    if rank != 0:
        return None
    model = estimator.fetch_model()
    record_files(model, paths, top, out)
    model.save(out, overwrite=overwrite)
    for checkpoint in estimator.checkpoint_paths():
        checkpoint.unlink(missing_ok=True)
    if verbose:
        _print_summary(model, out)
    return model


def _print_summary(model: NCTModel, out: Path) -> None:
    """Each restart's validation scores and objective, the objective kept, slowest frequencies,
    the CV axes."""
    training = model.info.training
    restarts, kinetic = training.restarts, training.kinetic
    if restarts is not None and len(restarts.seeds) > 1:
        weights = restarts.kinetic_weights or [None] * len(restarts.seeds)
        slow = restarts.validation_vamp2_discrete or [None] * len(restarts.seeds)
        for seed, nll, weight, score in zip(restarts.seeds, restarts.validation_nll, weights,
                                            slow, strict=True):
            print(f"seed {seed}: validation NLL {nll:.3f} nats/frame" +
                  ("" if weight is None else ", likelihood only" if weight == 0 else
                   f", kinetic objective (weight {weight:g})") +
                  ("" if score is None else f", discretised VAMP-2 of CV1-2 {score:.3f}"))
    print("kept: " + ("the likelihood fit" if kinetic is None or kinetic.weight == 0 else
                      f"the fit with the kinetic objective (weight {kinetic.weight:g}, lag "
                      f"{kinetic.lag_frames} frames)") + f", seed {training.seed}")
    print("slowest frequencies (1/ps): " + ", ".join(f"{x:.3g}" for x in model.frequencies[:6]))
    axes = model.info.cv_axes
    if axes is not None and axes.method == "tica":
        print(f"CV1, CV2: the leading TICA directions of the {len(axes.matrix)} slowest latent "
              f"positions (autocorrelations {axes.autocorrelations[0]:.3f}, "
              f"{axes.autocorrelations[1]:.3f} at {axes.lag_frames} frames)")
    elif axes is not None:
        print(f"CV1: the slow latent plane's kinetic axis, {axes.angle_deg:.0f} deg from the "
              f"slowest latent position (1-D binned VAMP-2 {axes.score:.3f}; the latent axes "
              f"{axes.latent_axis_scores[0]:.3f}, {axes.latent_axis_scores[1]:.3f}); "
              f"CV2: the latent position farther from it")
    print(f"validation NLL {training.validation_nll:.3f} nats/frame "
          f"(best epoch {training.best_epoch}); wrote {out}")
