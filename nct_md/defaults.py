"""Default training settings, defined once for :class:`nct_md.estimator.NCT` and ``nct-md train``.

Plain data (no torch): the command line shows them in ``--help`` without importing torch. They
were chosen on held-out alanine-dipeptide and capped tri-alanine trajectories (the README's
slow-CV benchmarks): 12 couplings whose width grows with the degrees of freedom, and three
restarts, likelihood-only and (where the data are time-ordered trajectories) with the kinetic
objective, the kinetic fit kept where it makes the slowest CVs measurably slower.
"""

from __future__ import annotations

#: keyword defaults of ``NCT`` that ``nct-md train`` shows and passes on
TRAINING = {"n_couplings": 12, "depth": 2, "epochs": 40, "batch_size": 256, "lr": 2e-3,
            "patience": 6, "restarts": 3, "lag_ps": 10.0, "n_slow": 2}
#: weight of the kinetic objective (VAMP-2 of the slowest latent positions, a score in
#: ``[0, n_slow]``, against a likelihood in nats per frame) where the data allow it
KINETIC_WEIGHT = 10.0
#: gain in validation discretised VAMP-2 (a score in ``[1, 1 + n_slow]``) that a kinetic fit
#: needs over the likelihood-only fit to be kept (:func:`nct_md.train.kinetic.choose_restart`)
KINETIC_MARGIN = 0.02
#: slowest latent positions whose TICA gives CV1 and CV2 of a kept kinetic fit
#: (:func:`nct_md.train.cv_axes.tica_axes`)
KINETIC_READOUT = 8
#: conditioner width bounds of :func:`hidden_width`
MIN_HIDDEN, MAX_HIDDEN = 128, 256


def hidden_width(n_dof: int) -> int:
    """Conditioner width for ``n_dof`` internal degrees of freedom: ``2 n_dof`` in [128, 256]."""
    return min(MAX_HIDDEN, max(MIN_HIDDEN, 2 * n_dof))
