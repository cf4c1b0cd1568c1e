"""Per-frame weights of a well-tempered metadynamics run, for training on its biased frames.

A frame ``t`` with CVs ``s_t`` sampled under a bias ``V`` stands for ``w_t`` frames of the
unbiased ensemble. Two estimates, :data:`METHODS`:

``"final_bias"`` (the default)
    ``w_t ∝ exp(V_final(s_t) / kT)`` with the last bias of the run (``free_energy.npy``,
    ``F = -γ / (γ - 1) V_final``, bias factor ``γ``): exact once the bias has stopped changing
    (well-tempered: ``V_final = -(1 - 1/γ) F + const``, so the run samples ``p^(1/γ)`` and
    ``w`` restores ``p``); frames of the early filling stage, when the bias was still far from
    ``V_final``, are weighted less well: ``skip_ps`` gives them weight 0.
``"rbias"``
    Tiwary and Parrinello (J. Phys. Chem. B 119, 736 (2015)): the bias each frame felt, less the
    time-dependent offset :func:`bias_offset`,
    ``w_t ∝ exp((V(s_t, t) - c(t)) / kT)``,
    ``c(t) = kT ln( ∫ exp(γ V(s, t) / ((γ - 1) kT)) ds / ∫ exp(V(s, t) / ((γ - 1) kT)) ds )``,
    which needs the whole grid at every frame time: ``nct-md metad`` records
    ``rbias = V(s_t, t) - c(t)`` per frame in ``colvar.csv`` (PLUMED's ``metad.rbias``). It
    weights the filling stage too, by the bias then in place.

Units: bias in kJ/mol, temperature in K, CVs in the model's units (ps).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.interpolate import RegularGridInterpolator
from scipy.special import logsumexp

from nct_md.errors import NCTInputError
from nct_md.md.thermo import kt

#: The weights :func:`metad_log_weights` computes (module docstring).
METHODS = ("final_bias", "rbias")


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


def bias_offset(bias: np.ndarray, temperature: float, bias_factor: float,
                periodic: Sequence[bool]) -> float:
    """Tiwary-Parrinello ``c(t)`` (kJ/mol) of a well-tempered bias grid (module docstring).

    ``bias`` : OpenMM's layout (axis ``i`` is CV ``k - 1 - i``), kJ/mol; ``periodic`` per CV, in
    CV order: a periodic axis repeats its first point last, which is left out of the integrals.
    The uniform grid spacing cancels in the ratio.
    """
    grid = np.asarray(bias, dtype=np.float64)
    for axis, wraps in enumerate(reversed(list(periodic))):
        if wraps:
            grid = np.delete(grid, -1, axis=axis)
    scaled = grid.ravel() / ((bias_factor - 1.0) * kt(temperature))
    return float(kt(temperature) * (logsumexp(bias_factor * scaled) - logsumexp(scaled)))


def metad_log_weights(out_dir: str | Path, skip_ps: float = 0.0,
                      method: str = "final_bias") -> np.ndarray:
    """``ln w`` (max 0) of each frame of an ``nct-md metad`` folder, shape ``(n_frames,)``.

    Reads ``metad.json`` (temperature K, bias factor, grid), ``colvar.csv`` (frame times ps,
    CVs, ``rbias_kjmol``) and ``free_energy.npy``. ``method`` (module docstring):
    ``"final_bias"``, ``ln w_t = V_final(s_t) / kT`` with ``V_final = -(γ - 1) / γ F``
    (kJ/mol); ``"rbias"``, ``ln w_t = rbias_t / kT``. Frames before ``skip_ps`` get ``-inf``
    (weight 0). The frames are those of ``trajectory.h5``, in order; for
    ``nct-md train --weights`` write them with
    ``np.savetxt(FILE, log_w, header="log-weights")``.
    """
    if method not in METHODS:
        raise NCTInputError(f"method must be one of {METHODS}, got {method!r}")
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
    if method == "rbias":
        log_w = table[:, columns.index("rbias_kjmol")].copy()
    else:
        gamma = float(settings["bias_factor"])
        final_bias = -(gamma - 1.0) / gamma * free_energy
        cvs = table[:, [columns.index(f"cv{j + 1}") for j in range(free_energy.ndim)]]
        log_w = bias_at(cvs, final_bias, settings["grid_min_ps"], settings["grid_max_ps"])
    log_w = log_w / kt(settings["temperature"])
    log_w -= log_w.max()
    log_w[table[:, columns.index("time_ps")] < skip_ps] = -np.inf
    return log_w
