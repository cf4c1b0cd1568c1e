"""Per-frame weights of a well-tempered metadynamics run, for training on its biased frames.

A frame ``t`` with CVs ``s_t`` sampled under a bias ``V`` stands for ``w_t`` frames of the
unbiased ensemble. Tiwary and Parrinello (J. Phys. Chem. B 119, 736 (2015)) give, for a bias
that grows in time,

    w_t ∝ exp((V(s_t, t) - c(t)) / kT),
    c(t) = kT ln( ∫ exp(γ V(s, t) / ((γ - 1) kT)) ds / ∫ exp(V(s, t) / ((γ - 1) kT)) ds ),

with bias factor ``γ``. ``c(t)`` needs the whole bias grid ``V(s, t)`` at every frame time, and
``nct-md metad`` (OpenMM's ``Metadynamics``) does not keep it: OpenMM deletes each saved bias
file when it writes the next, so only the final bias survives (as ``free_energy.npy``
``F = -γ / (γ - 1) V_final``). :func:`metad_log_weights` therefore uses the final bias,

    w_t ∝ exp(V_final(s_t) / kT),

exact once the bias has stopped changing (well-tempered: ``V_final = -(1 - 1/γ) F + const``,
so the run samples ``p^(1/γ)`` and ``w`` restores ``p``); frames of the early filling stage,
when the bias was still far from ``V_final``, are weighted less well: ``skip_ps`` gives them
weight 0. Units: bias in kJ/mol, temperature in K, CVs in the model's units (ps).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from nct_md.errors import NCTInputError
from nct_md.md.thermo import kt


def bias_at(cvs: np.ndarray, bias: np.ndarray, lows: Sequence[float],
            highs: Sequence[float]) -> np.ndarray:
    """The bias of an OpenMM metadynamics grid at CV values, kJ/mol, shape ``(n,)``.

    Parameters
    ----------
    cvs : ndarray ``(n, k)``
        CV values, column ``j`` the ``j``-th biased CV.
    bias : ndarray, ``k`` axes, kJ/mol
        OpenMM's layout: axis ``i`` is CV ``k - 1 - i`` (reversed order), sampled at
        ``linspace(lows[j], highs[j], n_j)``.
    lows, highs : CV ranges of the grid (the bias is 0 outside, as in OpenMM's tables).

    Cubic interpolation (OpenMM interpolates with natural cubic splines).
    """
    grid = np.transpose(np.asarray(bias, dtype=np.float64))  # axis j is CV j
    axes = [np.linspace(lo, hi, n) for lo, hi, n in zip(lows, highs, grid.shape, strict=True)]
    method = "cubic" if min(grid.shape) >= 4 else "linear"
    table = RegularGridInterpolator(axes, grid, method=method, bounds_error=False,
                                    fill_value=0.0)
    return table(np.asarray(cvs, dtype=np.float64).reshape(len(cvs), grid.ndim))


def metad_log_weights(out_dir: str | Path, skip_ps: float = 0.0) -> np.ndarray:
    """``ln w`` (max 0) of each frame of an ``nct-md metad`` folder, shape ``(n_frames,)``.

    Reads ``metad.json`` (temperature K, bias factor, grid), ``colvar.csv`` (frame times ps and
    CVs) and ``free_energy.npy``; the final bias ``V_final = -(γ - 1) / γ F`` (kJ/mol) gives
    ``ln w_t = V_final(s_t) / kT`` (module docstring). Frames before ``skip_ps`` get
    ``-inf`` (weight 0). The frames are those of ``trajectory.h5``, in order; for
    ``nct-md train --weights`` write them with
    ``np.savetxt(FILE, log_w, header="log-weights")``.
    """
    out_dir = Path(out_dir)
    try:
        settings = json.loads((out_dir / "metad.json").read_text())
        free_energy = np.load(out_dir / "free_energy.npy")
        with (out_dir / "colvar.csv").open() as handle:
            columns = handle.readline().strip().split(",")
            table = np.loadtxt(handle, delimiter=",", ndmin=2)
    except FileNotFoundError as exc:
        raise NCTInputError(f"{out_dir} is not an nct-md metad folder: {exc.filename} is "
                            "missing") from None
    gamma = float(settings["bias_factor"])
    final_bias = -(gamma - 1.0) / gamma * free_energy
    cvs = table[:, [columns.index(f"cv{j + 1}") for j in range(free_energy.ndim)]]
    log_w = bias_at(cvs, final_bias, settings["grid_min_ps"], settings["grid_max_ps"])
    log_w = log_w / kt(settings["temperature"])
    log_w -= log_w.max()
    log_w[table[:, columns.index("time_ps")] < skip_ps] = -np.inf
    return log_w
