"""Training: objectives (:mod:`~nct_md.train.losses`) and a loop (:class:`Trainer`)."""

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
