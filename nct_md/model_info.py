"""Typed metadata of a saved model: :class:`ModelInfo` and its parts, to and from JSON.

A model file (:meth:`nct_md.model.NCTModel.save`) stores ``ModelInfo.to_json()`` under its
``"metadata"`` key; :meth:`ModelInfo.from_json` reads that dict back, from files of this version
and of earlier ones (missing fields take their defaults). Keys this version does not know are
kept, at every level, in the record's ``extra`` dict and written back unchanged.

Units throughout: nm, ps, amu, kJ/mol, K; angular frequencies in 1/ps; free energies in kT.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from nct_md.errors import NCTInputError

#: Units of a model's inputs and outputs (the ``units`` field of :class:`ModelInfo`).
MODEL_UNITS = {"positions": "nm", "momenta": "amu nm/ps", "frequencies": "1/ps (angular)",
               "cvs": "ps (latent Q: mass-weighted nm / sqrt(kT))", "energy": "kJ/mol"}


class _Record:
    """JSON conversion shared by the records: fields in order, nested records, ``extra``.

    ``_nested`` names the fields that hold another record and its class; such a field may be
    None (not recorded), and is then left out of the JSON, as are the fields named in
    ``_optional`` (added in later versions) when they are None.
    """

    _nested: ClassVar[dict[str, type[_Record]]] = {}
    _optional: ClassVar[tuple[str, ...]] = ()
    extra: dict[str, Any]

    def to_json(self) -> dict:
        """A JSON-able dict (fresh containers): every field by name, then the ``extra`` keys."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "extra" or (value is None and (f.name in self._nested
                                                        or f.name in self._optional)):
                continue
            out[f.name] = value.to_json() if isinstance(value, _Record) else copy.deepcopy(value)
        out.update(copy.deepcopy(self.extra))
        return out

    @classmethod
    def from_json(cls, spec: dict):
        """The record of a dict written by :meth:`to_json` (or an earlier version's writer)."""
        if not isinstance(spec, dict):
            raise NCTInputError(f"model metadata: expected a dict for {cls.__name__}, got "
                                f"{type(spec).__name__}")
        known = {f.name for f in fields(cls) if f.name != "extra"}  # type: ignore[arg-type]
        values = {}
        for name in known & spec.keys():
            value = copy.deepcopy(spec[name])
            nested = cls._nested.get(name)
            values[name] = nested.from_json(value) if nested and value is not None else value
        extra = {k: copy.deepcopy(v) for k, v in spec.items() if k not in known}
        try:
            return cls(**values, extra=extra)
        except TypeError:
            missing = sorted(f.name for f in fields(cls)  # type: ignore[arg-type]
                             if f.name not in values and f.default is MISSING
                             and f.default_factory is MISSING)
            raise NCTInputError(f"model metadata: {cls.__name__} lacks {', '.join(missing)}; "
                                "the file is damaged or not an nct-md model") from None


@dataclass
class DataInfo(_Record):
    """How the training data were prepared (written by :mod:`nct_md.md.phase`).

    Attributes
    ----------
    selection : str, optional
        Atom selection, e.g. ``"heavy"`` or ``"(heavy) and (name CA)"``.
    constraints : str, optional
        Constraints of the simulation (``"hbonds"``, ``"none"``), None when unknown.
    n_constrained_in_selection : int
        Constrained bonds with both atoms in the selection (they make the density degenerate).
    momenta : str, optional
        ``"velocities"`` (stored velocities) or ``"maxwell-boltzmann"`` (drawn momenta).
    n_dof : int, optional
        Internal degrees of freedom ``3N - 6`` of the selection.
    rigid_body_dims : int, optional
        Rigid-body dimensions removed (6, or 5 for a linear selection).
    frame : str, optional
        How frames were superposed (mass-weighted Kabsch on the reference: Eckart frame).
    reference : str, optional
        Where the reference structure came from.
    units : dict of str to str
        Units of the data's arrays (``q``: nm, ``p``: amu nm/ps, ...); empty in a model's record,
        whose units are :attr:`ModelInfo.units`, and then not written.
    extra : dict
        Keys this version does not know, kept as read.
    """

    selection: str | None = None
    constraints: str | None = None
    n_constrained_in_selection: int = 0
    momenta: str | None = None
    n_dof: int | None = None
    rigid_body_dims: int | None = None
    frame: str | None = None
    reference: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        """As :meth:`_Record.to_json`, without ``units`` when empty (the model's record)."""
        out = super().to_json()
        if not self.units:
            del out["units"]
        return out


@dataclass
class Hyperparameters(_Record):
    """Optimiser settings of a maximum-likelihood fit.

    ``epochs`` (int, maximum), ``batch_size`` (frames per step), ``lr`` (AdamW learning rate),
    ``weight_decay`` (AdamW, flow weights only), ``patience`` (epochs without a better
    validation NLL before stopping; None: never stop early).
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Restarts(_Record):
    """The seeds fitted (``restarts > 1``) and each one's validation NLL (nats/frame).

    With the kinetic objective, ``kinetic_weights`` (each seed's weight, 0 for a likelihood-only
    fit) and ``validation_vamp2_discrete`` (each fit's discretised VAMP-2 of its slowest latent
    positions on the validation pairs, :func:`nct_md.train.kinetic.choose_restart`).
    """

    _optional: ClassVar[tuple[str, ...]] = ("kinetic_weights", "validation_vamp2_discrete")

    seeds: list[int]
    validation_nll: list[float]
    kinetic_weights: list[float] | None = None
    validation_vamp2_discrete: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class KineticInfo(_Record):
    """The kinetic objective of a fit (:mod:`nct_md.train.kinetic`).

    ``weight`` (of the VAMP-2 term; 0 for a likelihood-only fit that was scored the same way),
    ``lag_frames`` (its lag), ``n_slow`` (slowest latent positions scored), ``validation_vamp2``
    (their VAMP-2 score, constant excluded, on the validation pairs with the kept weights),
    ``validation_vamp2_discrete`` (the same pairs' discretised VAMP-2, constant included:
    :func:`nct_md.cv.scores.discrete_vamp2_pairs`).
    """

    _optional: ClassVar[tuple[str, ...]] = ("validation_vamp2_discrete",)

    weight: float
    lag_frames: int
    n_slow: int
    validation_vamp2: float
    validation_vamp2_discrete: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class WeightsInfo(_Record):
    """Per-frame weights of a fit on biased data (:attr:`nct_md.md.data.PhaseSpaceData.weights`).

    ``effective_train_frames``, ``effective_validation_frames``: Kish effective numbers of
    frames ``(sum w)^2 / sum w^2`` of the training and validation frames' weights.
    """

    effective_train_frames: float
    effective_validation_frames: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingInfo(_Record):
    """Record of a maximum-likelihood fit (written by :class:`nct_md.estimator.NCT`).

    Attributes
    ----------
    n_train_frames, n_validation_frames : int
    epochs_run : int
        Epochs trained (fewer than ``hyperparameters.epochs`` after early stopping).
    best_epoch : int
        Epoch of the kept weights (lowest validation NLL).
    validation_nll : float
        Validation negative log-likelihood of the kept weights, nats per frame (model units).
    seed : int
        Seed of the kept fit.
    epoch_losses : list of float, optional
        Mean training loss of each epoch, nats per frame.
    processes : int, optional
        Training processes (torch.distributed world size).
    objective : str, optional
        ``"phase_space"`` (likelihood of ``(p, q)``) or ``"configuration"`` (of ``q``).
    hyperparameters : Hyperparameters, optional
    restarts : Restarts, optional
        Every seed fitted, when more than one may have been.
    files : list of str, optional
        Provenance: training trajectory files, relative to the model file's folder.
    topology_file : str, optional
        Provenance: topology file, relative to the model file's folder.
    kinetic : KineticInfo, optional
        The kinetic objective, when it was used.
    weights : WeightsInfo, optional
        Per-frame weights, when the frames carried them (losses and validation NLL are then
        weighted means).
    extra : dict
        Keys this version does not know, kept as read.
    """

    _nested: ClassVar[dict[str, type[_Record]]] = {"hyperparameters": Hyperparameters,
                                                   "restarts": Restarts,
                                                   "kinetic": KineticInfo,
                                                   "weights": WeightsInfo}

    n_train_frames: int
    n_validation_frames: int
    epochs_run: int
    best_epoch: int
    validation_nll: float
    seed: int
    epoch_losses: list[float] | None = None
    processes: int | None = None
    objective: str | None = None
    hyperparameters: Hyperparameters | None = None
    restarts: Restarts | None = None
    files: list[str] | None = None
    topology_file: str | None = None
    kinetic: KineticInfo | None = None
    weights: WeightsInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class HamiltonianInfo(_Record):
    """The energy a generator was trained against (written by :mod:`nct_md.generate.boltzmann`).

    Attributes
    ----------
    form : str
        The Hamiltonian, e.g. ``"sum p^2/2m + U(q), U from OpenMM"``.
    platform : str
        OpenMM platform of the energy evaluations.
    temperature : float
        K.
    n_constraints : int
        Constraints of the OpenMM System (0 for an all-atom generator).
    clip_above_kT : float, optional
        Energies clipped above this many kT (None: no clipping).
    objective : str
        ``"phase_space"`` or ``"configuration"``.
    kl_weight, ml_weight : float
        Weights of the energy (reverse KL) and likelihood terms of the loss.
    steps : int
        Optimiser steps.
    free_energy_kT, free_energy_stderr_kT, free_energy_reweighted_kT : float
        Final variational free energy, its standard error and the reweighted estimate, in kT.
    ess_fraction : float
        Effective sample size of the importance weights, as a fraction of the samples.
    extra : dict
        Keys this version does not know, kept as read.
    """

    form: str
    platform: str
    temperature: float
    n_constraints: int
    clip_above_kT: float | None
    objective: str
    kl_weight: float
    ml_weight: float
    steps: int
    free_energy_kT: float
    free_energy_stderr_kT: float
    free_energy_reweighted_kT: float
    ess_fraction: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OODInfo(_Record):
    """The out-of-distribution threshold of a model (:mod:`nct_md.cv.ood`).

    ``score`` (what is scored: ``"-ln p(q)"``, the model's negative configuration log-density,
    nats in model coordinates), ``threshold`` (frames scoring above it are out of
    distribution), ``train_percentile`` (the percentile of the training frames' scores it is,
    weighted for weighted frames), ``validation_fraction_above`` (share of the validation
    frames above it, weighted; None when no validation frames were scored).
    """

    _optional: ClassVar[tuple[str, ...]] = ("validation_fraction_above",)

    score: str
    threshold: float
    train_percentile: float
    validation_fraction_above: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CVAxes(_Record):
    """The directions of CV1 and CV2 among the slowest latent positions
    (:mod:`nct_md.train.cv_axes`).

    ``matrix`` (k x 2; column ``j`` holds CV ``j + 1``'s coefficients on the ``k`` slowest
    latent positions, a unit vector), ``lag_frames`` (lag of the fit), ``method`` (``"plane"``:
    k = 2, CV1 along the slow plane's most metastable direction; ``"tica"``: the two leading
    TICA directions of the k slowest latent positions). For ``"plane"``: ``angle_deg`` (CV1's
    direction in the plane standardised by the frames' spread, degrees from the slowest latent
    axis), ``score`` (its 1-D binned VAMP-2, in [1, 2]), ``best_score`` (the best direction's),
    ``latent_axis_scores`` (the two latent axes'). For ``"tica"``: ``autocorrelations`` (the
    two TICA components' autocorrelations at the lag).
    """

    _optional: ClassVar[tuple[str, ...]] = ("angle_deg", "score", "best_score",
                                            "latent_axis_scores", "autocorrelations")

    matrix: list[list[float]]
    lag_frames: int
    method: str = "plane"
    angle_deg: float | None = None
    score: float | None = None
    best_score: float | None = None
    latent_axis_scores: list[float] | None = None
    autocorrelations: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInfo(_Record):
    """Everything a model file records besides its tensors and flow recipe.

    Attributes
    ----------
    atom_indices : list of int
        0-based indices of the model's atoms in the topology of the training files.
    atom_names : list of str
        ``"RES1-NAME"`` labels of the model's atoms, in order.
    topology : dict
        The model's atoms as :func:`nct_md.model.topology_to_json` writes them.
    temperature : float
        K; sets the model's ``kT`` and the default temperature of exports and simulations.
    units : dict of str to str
        Units of positions (nm), momenta (amu nm/ps), frequencies (1/ps), CVs (ps), energies.
    nct_md_version : str, optional
        Package version that trained the model (provenance).
    data : DataInfo
        Selection, constraints, momenta source and frame of the training data.
    constraints_handling : str, optional
        How constrained bonds inside the selection were treated.
    gaussian_start_shrinkage : float, optional
        Shrinkage intensity of the Gaussian start's covariance (None: not shrunk).
    training : TrainingInfo, optional
        The maximum-likelihood fit; None before training.
    hamiltonian : HamiltonianInfo, optional
        The energy a generator was trained against; None for models fitted to data only.
    ood : OODInfo, optional
        The out-of-distribution threshold; None for model files written before it existed.
    cv_axes : CVAxes, optional
        Directions of CV1 and CV2 among the slowest latent positions; None: the CVs are the
        latent positions, slowest first (pure likelihood, data without times, and older model
        files).
    extra : dict
        Keys this version does not know, kept as read.
    """

    _nested: ClassVar[dict[str, type[_Record]]] = {"data": DataInfo, "training": TrainingInfo,
                                                   "hamiltonian": HamiltonianInfo,
                                                   "ood": OODInfo, "cv_axes": CVAxes}

    atom_indices: list[int]
    atom_names: list[str]
    topology: dict
    temperature: float
    units: dict[str, str] = field(default_factory=lambda: dict(MODEL_UNITS))
    nct_md_version: str | None = None
    data: DataInfo = field(default_factory=DataInfo)
    constraints_handling: str | None = None
    gaussian_start_shrinkage: float | None = None
    training: TrainingInfo | None = None
    hamiltonian: HamiltonianInfo | None = None
    ood: OODInfo | None = None
    cv_axes: CVAxes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.atom_indices = [int(i) for i in self.atom_indices]
        self.atom_names = [str(name) for name in self.atom_names]
        self.temperature = float(self.temperature)
