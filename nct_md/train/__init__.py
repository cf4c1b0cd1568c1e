"""Training: objectives (:mod:`~nct_md.train.losses`) and a loop (:class:`Trainer`).

:mod:`~nct_md.train.checkpoint` makes checkpoints that know their data and settings (and locks
them); :func:`nct_md.train.files.train_files` is ``nct-md train`` as one library call (not
imported here: it needs :mod:`nct_md.estimator`, which needs this package).
"""

from nct_md.train.losses import (
    ConfigurationDensity,
    FreeEnergyEstimate,
    configuration_free_energy,
    configuration_negative_log_likelihood,
    free_energy_estimate,
    negative_log_likelihood,
    variational_free_energy,
)
from nct_md.train.trainer import Trainer

__all__ = [
    "ConfigurationDensity",
    "FreeEnergyEstimate",
    "Trainer",
    "configuration_free_energy",
    "configuration_negative_log_likelihood",
    "free_energy_estimate",
    "negative_log_likelihood",
    "variational_free_energy",
]
