"""NCTModel: preprocessing + configuration-separable symplectic flow + harmonic latent.

The only module that joins molecules and networks. Users pass physical units (nm, amu nm/ps,
Cartesian coordinates of the selected atoms, superposed and rigid-body-free as produced by
:class:`nct_md.md.frame.EckartFrame`); the model works in its own coordinates:

``x_q = R^T (C^T sqrt(m) q - mean) / sqrt(kT)`` (ps) and ``x_p = R^T C^T (p / sqrt(m)) / sqrt(kT)``
(dimensionless), with ``C`` the internal (rigid-body-free) basis and ``R`` the principal axes of
the training data. Mass weighting and the orthogonal maps are point transformations; the common
``1/sqrt(kT)`` is a constant rescaling of the symplectic form, so latent frequencies ``w`` keep
their physical meaning, angular frequencies in 1/ps.
"""

from __future__ import annotations

import copy
import os
import zipfile
from pathlib import Path

import mdtraj as md
import numpy as np
import torch
from torch import nn

from nct_md import __version__
from nct_md.atomic import atomic_path
from nct_md.cv.ood import OODScores, ood_scores
from nct_md.errors import NCTInputError
from nct_md.flows import InternalCoordinates, SymplecticFlow, point_flow
from nct_md.latent import HarmonicLatent
from nct_md.md.frame import EckartFrame, eckart_log_volume, kabsch
from nct_md.md.thermo import kt
from nct_md.model_info import ModelInfo
from nct_md.train.losses import (
    configuration_log_prob,
    phase_space_log_prob,
    sample_configurations,
)

Tensor = torch.Tensor
#: Speed of light in cm/ps, to express angular frequencies in wavenumbers.
C_CM_PER_PS = 0.0299792458
FORMAT = "nct-md-model"


def per_ps_to_wavenumber(w: np.ndarray) -> np.ndarray:
    """Angular frequency in 1/ps to wavenumber in cm^-1: ``w / (2 pi c)``."""
    return np.asarray(w) / (2 * np.pi * C_CM_PER_PS)


class Preprocessing(nn.Module):
    """Cartesian ``(p, q)`` of the selection <-> model coordinates ``(x_p, x_q)``.

    Parameters
    ----------
    reference : ndarray ``(N, 3)`` nm; masses : ndarray ``(N,)`` amu; temperature : float K
    mean : ndarray ``(d,)``, optional
        Mean internal coordinate of the training data (sqrt(amu) nm); default 0.
    axes : ndarray ``(d, d)``, optional
        Orthogonal principal axes (columns) of the training data; default identity.

    Frames enter through :meth:`superpose` (the :class:`~nct_md.md.frame.EckartFrame` of the
    reference and masses); :meth:`affine` is the map of superposed positions to ``x_q`` and back
    as matrices, for layers and exports that need it.
    """

    def __init__(self, reference: np.ndarray, masses: np.ndarray, temperature: float,
                 mean: np.ndarray | None = None, axes: np.ndarray | None = None):
        super().__init__()
        #: the Eckart frame of ``reference`` and ``masses`` (numpy, float64), built once
        self.frame = EckartFrame(reference, masses)
        basis = self.frame.internal
        d = basis.shape[1]
        sqrt_m = np.sqrt(np.repeat(np.asarray(masses, dtype=np.float64), 3))
        self.register_buffer("reference", torch.as_tensor(np.asarray(reference, np.float64)))
        self.register_buffer("masses", torch.as_tensor(np.asarray(masses, np.float64)))
        self.register_buffer("sqrt_m", torch.as_tensor(sqrt_m))
        self.register_buffer("basis", torch.as_tensor(basis))
        self.register_buffer("mean", torch.as_tensor(np.zeros(d) if mean is None else mean))
        self.register_buffer("axes", torch.as_tensor(np.eye(d) if axes is None else axes))
        self.register_buffer("sqrt_kT", torch.tensor(np.sqrt(kt(temperature))))

    @property
    def n_dof(self) -> int:
        """Internal degrees of freedom ``d`` (3N - 6)."""
        return self.basis.shape[1]

    def superpose(self, xyz: np.ndarray) -> Tensor:
        """Frames of the model's atoms ``(B, N, 3)`` nm -> Eckart-frame positions ``q``
        ``(B, 3N)`` nm (superposed, rigid-body-free; float64 math, module's dtype and device)."""
        return torch.as_tensor(self.frame.positions(xyz)[0], dtype=self.basis.dtype,
                               device=self.basis.device)

    def eckart_coordinates(self, q: Tensor) -> Tensor:
        """``z = C^T sqrt(m) q``: ``(B, 3N)`` nm -> ``(B, d)`` sqrt(amu) nm (before centring)."""
        return (q * self.sqrt_m) @ self.basis

    def to_model(self, q: Tensor) -> Tensor:
        """Eckart-frame positions ``q`` ``(B, 3N)`` nm -> model coordinates ``(B, d)`` ps."""
        internal = self.eckart_coordinates(q) - self.mean
        return (internal @ self.axes) / self.sqrt_kT

    @torch.no_grad()
    def affine(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The map :meth:`to_model` and its inverse :meth:`cartesian` as float64 matrices.

        Returns
        -------
        weight ``(3N, d)``, bias ``(d,)``, inverse_weight ``(d, 3N)``, inverse_bias ``(3N,)``
            ``to_model(q) = q @ weight + bias`` for Eckart-frame positions ``q`` (projecting
            out the rigid-body directions first changes nothing: the basis is orthogonal to
            them) and ``cartesian(x_q) = x_q @ inverse_weight + inverse_bias``.
        """
        sqrt_kt, sqrt_m = self.sqrt_kT.double(), self.sqrt_m.double()
        basis, axes, mean = self.basis.double(), self.axes.double(), self.mean.double()
        weight = sqrt_m[:, None] * (basis @ axes) / sqrt_kt
        bias = -(mean @ axes) / sqrt_kt
        inverse_weight = sqrt_kt * (axes.T @ basis.T) / sqrt_m
        inverse_bias = (mean @ basis.T) / sqrt_m
        return weight, bias, inverse_weight, inverse_bias

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        """Cartesian ``(p, q)``, each ``(B, 3N)`` -> model ``(x_p, x_q)``, each ``(B, d)``."""
        x_p = ((p / self.sqrt_m) @ self.basis @ self.axes) / self.sqrt_kT
        return x_p, self.to_model(q)

    def cartesian(self, x_q: Tensor) -> Tensor:
        """Model positions ``(B, d)`` ps -> Cartesian ``(B, 3N)`` nm (undoes :meth:`to_model`)."""
        internal = (x_q * self.sqrt_kT) @ self.axes.T + self.mean
        return (internal @ self.basis.T) / self.sqrt_m

    def inverse(self, x_p: Tensor, x_q: Tensor) -> tuple[Tensor, Tensor]:
        """Model ``(x_p, x_q)`` -> Cartesian ``(p, q)`` (rigid-body-free, reference frame)."""
        p = ((x_p * self.sqrt_kT) @ self.axes.T @ self.basis.T) * self.sqrt_m
        return p, self.cartesian(x_q)


class NCTModel(nn.Module):
    """A fitted neural canonical transformation of a molecule's phase space.

    Parameters
    ----------
    preprocessing : Preprocessing
    flow : SymplecticFlow
        Must be configuration-separable for CVs and export.
    latent : HarmonicLatent
    architecture : dict
        JSON-able recipe that rebuilds ``flow`` (see :func:`build_flow`).
    info : ModelInfo
        Atom selection (indices, names), temperature, units, data, training, ... (copied).
    """

    def __init__(self, preprocessing: Preprocessing, flow: SymplecticFlow,
                 latent: HarmonicLatent, architecture: dict, info: ModelInfo):
        super().__init__()
        self.preprocessing = preprocessing
        self.flow = flow
        self.latent = latent
        self.architecture = dict(architecture)
        self.info = copy.deepcopy(info)
        self._positions_map = None  # torch.compile'd flow.transform_positions, see compile_flow

    def compile_flow(self) -> None:
        """Run the positions-only flow of :meth:`latent_positions` through ``torch.compile``.

        On CPU the compiled flow is 1.5x faster at batch 10,000 (``bench.bench_training``) but
        takes 5-15 s to compile, so it pays off from a few million frames; without gradients
        only (training needs double backward, which torch.compile does not support).
        """
        self._positions_map = torch.compile(self.flow.transform_positions, dynamic=True)

    # -- phase space -------------------------------------------------------------------------
    def encode(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        """Cartesian ``(p, q)`` ``(B, 3N)`` -> latent ``(P, Q)`` ``(B, d)`` (model units)."""
        return self.flow(*self.preprocessing(p, q))

    def decode(self, P: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
        """Latent ``(P, Q)`` ``(B, d)`` -> Cartesian ``(p, q)`` ``(B, 3N)``, nm and amu nm/ps."""
        return self.preprocessing.inverse(*self.flow.inverse(P, Q))

    def forward(self, p: Tensor, q: Tensor) -> Tensor:
        """Negative log-likelihood per sample ``(B,)`` of Cartesian ``(p, q)`` (training loss).

        In model coordinates (nats); Cartesian densities differ by a constant.
        """
        return -self.log_prob(p, q)

    def log_prob(self, p: Tensor, q: Tensor) -> Tensor:
        """Log-density ``(B,)`` of model coordinates (Cartesian densities differ by a constant)."""
        return phase_space_log_prob(self.flow, self.latent, *self.preprocessing(p, q))

    def configuration_log_prob(self, x_q: Tensor) -> Tensor:
        """Log-density ``(B,)`` of model positions ``x_q`` ``(B, d)``, momenta integrated out.

        ``ln rho(Q(x_q)) + ln |det dQ/dx_q|``; configuration-separable flows only.
        """
        self.check_separable()
        return configuration_log_prob(self.flow, self.latent, x_q)

    def sample_configurations(self, n: int, generator: torch.Generator | None = None
                              ) -> tuple[Tensor, Tensor]:
        """``n`` model positions ``x_q`` ``(n, d)`` and their log-density ``(n,)``."""
        self.check_separable()
        return sample_configurations(self.flow, self.latent, n, 1.0, generator)

    # -- modes -------------------------------------------------------------------------------
    @property
    def frequencies(self) -> np.ndarray:
        """Latent angular frequencies ascending (slowest first), 1/ps, shape ``(d,)``."""
        return self.latent.sorted_frequencies().cpu().double().numpy()

    @property
    def configuration_separable(self) -> bool:
        return self.flow.configuration_separable

    def check_separable(self) -> None:
        """Raise if latent positions depend on momenta (CVs would then be undefined)."""
        if not self.configuration_separable:
            raise NCTInputError(
                "this model's flow mixes momenta into the latent positions Q (it contains "
                "linear-symplectic or leapfrog layers), so Q is not a function of the "
                "configuration and cannot be a CV; train a point-transformation model")

    def latent_positions(self, q: Tensor) -> Tensor:
        """All latent positions ``Q`` ``(B, d)`` from Cartesian ``q`` ``(B, 3N)``, slowest first."""
        self.check_separable()
        flow_positions = self._positions_map or self.flow.transform_positions
        Q = flow_positions(self.preprocessing.to_model(q))
        return Q[:, self.latent.slow_order()]

    def cv_matrix(self, n_cvs: int = 2) -> Tensor:
        """``(d, n_cvs)`` float64 map from the latent positions (slowest first) to the CVs.

        The identity's first ``n_cvs`` columns, with CV1 and CV2 along ``info.cv_axes`` (unit
        vectors over the slowest latent positions) when the model has them
        (:mod:`nct_md.train.cv_axes`).
        """
        d = self.preprocessing.n_dof
        if not 1 <= n_cvs <= d:
            raise NCTInputError(f"n_cvs must be between 1 and {d}, got {n_cvs}")
        matrix = torch.eye(d, dtype=torch.float64)
        if self.info.cv_axes is not None:
            axes = torch.tensor(self.info.cv_axes.matrix, dtype=torch.float64)
            matrix[:len(axes), :2] = axes
        return matrix[:, :n_cvs]

    def cv_frequencies(self, n_cvs: int = 2) -> np.ndarray:
        """``(n_cvs,)`` angular frequencies of the CVs, 1/ps: one over each CV's standard
        deviation under the latent density (kT = 1), ``w_k`` for a CV along latent axis ``k``."""
        spread = (self.cv_matrix(n_cvs).numpy() / self.frequencies[:, None]) ** 2
        return 1.0 / np.sqrt(spread.sum(0))

    def cvs(self, q: Tensor, n_cvs: int = 2) -> Tensor:
        """The CVs ``(B, n_cvs)`` in ps (model units): the slowest latent positions, CV1 and CV2
        along ``info.cv_axes`` when the model has them (:meth:`cv_matrix`)."""
        matrix = self.cv_matrix(n_cvs)
        Q = self.latent_positions(q)
        return Q @ matrix.to(Q)

    # -- trajectories ------------------------------------------------------------------------
    @property
    def atom_names(self) -> list[str]:
        """``"RES1-NAME"`` labels of the model's atoms, in order."""
        return list(self.info.atom_names)

    @property
    def topology(self) -> md.Topology:
        """mdtraj topology of the model's atoms (stored in the model file)."""
        return topology_from_json(self.info.topology)

    def to_trajectory(self, q: Tensor | np.ndarray) -> md.Trajectory:
        """Frames ``(B, 3N)`` nm of the model's atoms as an ``mdtraj.Trajectory``."""
        xyz = q.detach().cpu().numpy() if isinstance(q, Tensor) else np.asarray(q)
        return md.Trajectory(xyz.reshape(len(xyz), -1, 3).astype(np.float32), self.topology)

    def select_atoms(self, topology: md.Topology) -> np.ndarray:
        """Indices of the model's atoms in ``topology``; raises clearly if it does not match."""
        names = self.atom_names
        indices = np.asarray(self.info.atom_indices, dtype=np.int64)
        if indices.max() >= topology.n_atoms:
            raise NCTInputError(
                f"the model was trained on atoms up to index {indices.max()} but this topology "
                f"has {topology.n_atoms} atoms; use the topology the model was trained with")
        atoms = list(topology.atoms)
        found = [f"{atoms[i].residue}-{atoms[i].name}" for i in indices]
        if found != names:
            bad = next(k for k, (a, b) in enumerate(zip(found, names, strict=True)) if a != b)
            raise NCTInputError(
                f"topology does not match the model: atom {indices[bad]} is {found[bad]}, the "
                f"model expects {names[bad]}; use the topology the model was trained with")
        return indices

    @torch.no_grad()
    def transform_selected(self, xyz: np.ndarray, n_cvs: int = 2,
                           batch: int = 65_536) -> np.ndarray:
        """CVs ``(n_frames, n_cvs)`` (float64, slowest first) of frames of the model's atoms.

        ``xyz`` is ``(n_frames, N, 3)`` in nm, atoms in the model's order.
        """
        out = [self.cvs(self.preprocessing.superpose(xyz[start:start + batch]), n_cvs)
               for start in range(0, len(xyz), batch)]
        return (torch.cat(out).cpu().double().numpy() if out
                else np.zeros((0, n_cvs), dtype=np.float64))

    def transform(self, traj: md.Trajectory, n_cvs: int = 2, return_ood: bool = False
                  ) -> np.ndarray | tuple[np.ndarray, OODScores]:
        """CVs ``(n_frames, n_cvs)`` of a trajectory over its full topology, slowest first.

        With ``return_ood``, also their :class:`~nct_md.cv.ood.OODScores`: per-frame ``score``
        (``-ln p(q)``, nats) and ``flag`` (True for frames outside the training data's support,
        whose CVs are extrapolations); models saved without a threshold raise NCTInputError.
        """
        xyz = traj.xyz[:, self.select_atoms(traj.topology)]
        ood = ood_scores(self, xyz) if return_ood else None
        cvs = self.transform_selected(xyz, n_cvs)
        return cvs if ood is None else (cvs, ood)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write one file of plain tensors and JSON-able metadata (``info``), atomically.

        Only flows that :func:`build_flow` can rebuild from ``architecture`` are saved; a flow
        with other layers (e.g. :mod:`nct_md.flows.experimental`) is refused.
        """
        expected = build_flow(self.architecture).state_dict().keys()
        if set(self.flow.state_dict().keys()) != set(expected):
            raise NCTInputError("this model's flow is not the one its architecture describes "
                                "(research layers cannot be saved); save the state dict instead")
        payload = {
            "format": FORMAT,
            "version": __version__,
            "architecture": self.architecture,
            "metadata": self.info.to_json(),
            "reference": self.preprocessing.reference.cpu().tolist(),
            "masses": self.preprocessing.masses.cpu().tolist(),
            "temperature": self.info.temperature,
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        with atomic_path(path, overwrite=overwrite) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> NCTModel:
        """Read a model saved by :meth:`save` (no code is executed: ``weights_only=True``)."""
        path = Path(path)
        if not path.is_file():
            raise NCTInputError(f"model file {path} not found; pass the file written by "
                                "`nct-md train`")
        if _is_torchscript(path):
            raise NCTInputError(f"{path} is an exported TorchScript CV (from nct-md export), not "
                                "a model; pass the model file written by nct-md train")
        try:
            payload = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
            raise NCTInputError(f"{path} is not a readable nct-md model ({type(exc).__name__}); "
                                "it may be truncated or of another format") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise NCTInputError(f"{path} is not an nct-md model file")
        model = build_model(payload["architecture"], ModelInfo.from_json(payload["metadata"]),
                            np.asarray(payload["reference"]), np.asarray(payload["masses"]),
                            payload["temperature"])
        state = payload["state_dict"]
        model.to(state["latent.log_frequencies"].dtype)
        model.load_state_dict(state)
        return model.to(device)


def _is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (a zip with a ``code/`` folder), e.g. an exported CV."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def topology_to_json(topology: md.Topology) -> dict:
    """A JSON-able description of an mdtraj topology: chains of residues of atoms, and bonds."""
    chains = [[{"name": res.name, "resSeq": res.resSeq,
                "atoms": [[a.name, a.element.symbol if a.element else ""] for a in res.atoms]}
               for res in chain.residues] for chain in topology.chains]
    bonds = [[a.index, b.index] for a, b in topology.bonds]
    return {"chains": chains, "bonds": bonds}


def topology_from_json(spec: dict) -> md.Topology:
    """Inverse of :func:`topology_to_json`."""
    topology = md.Topology()
    for chain_spec in spec["chains"]:
        chain = topology.add_chain()
        for res_spec in chain_spec:
            residue = topology.add_residue(res_spec["name"], chain, res_spec["resSeq"])
            for name, symbol in res_spec["atoms"]:
                element = md.element.get_by_symbol(symbol) if symbol else None
                topology.add_atom(name, element, residue)
    atoms = list(topology.atoms)
    for i, j in spec["bonds"]:
        topology.add_bond(atoms[i], atoms[j])
    return topology


def build_flow(architecture: dict) -> SymplecticFlow:
    """Rebuild a flow from its JSON recipe (weights and masks come from the state dict).

    With ``architecture["internal_coordinates"]`` (a Z-matrix, rows of atom indices) the flow
    starts with an :class:`~nct_md.flows.InternalCoordinates` layer in the Eckart frame
    (:func:`~nct_md.md.frame.kabsch`, :func:`~nct_md.md.frame.eckart_log_volume`); its affine
    map comes from :meth:`Preprocessing.affine` or the state dict.
    """
    kind = architecture.get("kind")
    if kind != "point_flow":
        raise NCTInputError(f"unknown flow architecture {kind!r}; this nct-md is {__version__}")
    flow = point_flow(architecture["n"], architecture["n_couplings"], architecture["hidden"],
                      architecture["depth"], architecture["linear"],
                      coupling=architecture.get("coupling", "affine"),
                      bins=architecture.get("bins", 8))
    rows = architecture.get("internal_coordinates")
    if rows:
        internal = InternalCoordinates(rows, architecture["n"], kabsch, eckart_log_volume)
        flow = SymplecticFlow([internal, *flow.layers])
    return flow


def build_model(architecture: dict, info: ModelInfo, reference: np.ndarray, masses: np.ndarray,
                temperature: float) -> NCTModel:
    """An untrained :class:`NCTModel` of the given architecture (identity flow, w = 1)."""
    pre = Preprocessing(reference, masses, temperature)
    flow = build_flow(architecture)
    latent = HarmonicLatent(pre.n_dof)
    return NCTModel(pre, flow, latent, architecture, info)
