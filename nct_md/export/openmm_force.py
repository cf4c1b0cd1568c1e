"""NCT collective variables as OpenMM forces (PythonForce, optionally openmm-torch TorchForce).

Self-contained: imports only numpy, torch and openmm, so ``nct-md export --format openmm``
copies this file beside the exported TorchScript CV file and colleagues without nct-md can use
both.

Public API
----------
cv_forces(cvs) -> list[openmm.PythonForce]
    One force per CV whose "energy" is the CV value (ps, reported by OpenMM as kJ/mol) and
    whose forces are minus its gradient, applied to the model's atoms only. Use them as
    collective variables of a ``CustomCVForce`` or as ``openmm.app.BiasVariable`` forces.
add_cv_force(system, cvs, energy) -> openmm.CustomCVForce
    A CustomCVForce with the CVs named ``cv1, cv2, ...`` and the given energy expression.
bias_variables(cvs, min_values, max_values, widths) -> list[openmm.app.BiasVariable]
    Ready variables for ``openmm.app.Metadynamics``.
torch_forces(cvs) -> list[openmmtorch.TorchForce]
    The same CVs as TorchForce objects (much less Python overhead), where openmm-torch imports.

``cvs`` is the path of a file written by ``nct-md export`` (TorchScript) or the CV module
itself (``nct_md.export.cv_module(model)``). All k CVs and their gradients are computed once per
set of positions (one forward and one reverse sweep, ``CVModule.jacobian``) and shared by the k
forces.

Pickling (OpenMM pickles a PythonForce's function, and ``CustomCVForce`` clones its variables
through that pickle when a Context is created) carries the TorchScript bytes, so the forces also
survive ``XmlSerializer``; inside one process every clone shares one evaluator and its cache.
"""

from __future__ import annotations

import io
import os
import uuid
import weakref

import numpy as np
import openmm
import torch
from openmm import app, unit

Tensor = torch.Tensor
CVSource = str | os.PathLike | torch.nn.Module


class CVEvaluator:
    """Values and gradients of all CVs at one set of positions, cached for the last positions.

    Parameters
    ----------
    module : torch.jit.ScriptModule or nn.Module
        Exported CV module: ``(B, 3N)`` nm -> ``(B, k)``, with the method ``jacobian`` and the
        attributes ``n_cvs``, ``n_atoms`` and ``atom_indices``; scripted here if it is not
        already.
    key : str, optional
        Registry name (set when restoring a pickled force).
    """

    def __init__(self, module: torch.nn.Module, key: str | None = None):
        if not isinstance(module, torch.jit.ScriptModule):
            module = torch.jit.script(module)
        self.module = module.eval()
        self.n_cvs = int(module.n_cvs)
        self.n_atoms = int(module.n_atoms)
        self.atom_indices = [int(i) for i in module.atom_indices]
        self.key = key or uuid.uuid4().hex
        self._payload: bytes | None = None
        self._positions: np.ndarray | None = None
        self._values = np.zeros(self.n_cvs)
        self._gradients = np.zeros((self.n_cvs, self.n_atoms, 3))
        _EVALUATORS[self.key] = self

    def payload(self) -> bytes:
        """The TorchScript module as bytes (what a pickled force carries)."""
        if self._payload is None:
            buffer = io.BytesIO()
            torch.jit.save(self.module, buffer)
            self._payload = buffer.getvalue()
        return self._payload

    def __call__(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CV values ``(k,)`` and gradients ``(k, N, 3)`` (ps/nm) at positions ``(N, 3)`` nm."""
        if self._positions is None or not np.array_equal(positions, self._positions):
            x = torch.as_tensor(np.asarray(positions, dtype=np.float64).reshape(1, -1))
            with torch.no_grad():
                values, jacobian = self.module.jacobian(x)
            self._values = values[0].numpy()
            self._gradients = jacobian[0].numpy().reshape(self.n_cvs, self.n_atoms, 3)
            self._positions = np.array(positions, dtype=np.float64)
        return self._values, self._gradients


#: Evaluators alive in this process, so that unpickled clones of a force share one cache.
_EVALUATORS: weakref.WeakValueDictionary[str, CVEvaluator] = weakref.WeakValueDictionary()


def _restore_term(key: str, payload: bytes, index: int) -> CVTerm:
    """Unpickle a :class:`CVTerm`: reuse the live evaluator ``key`` or rebuild it from bytes."""
    evaluator = _EVALUATORS.get(key)
    if evaluator is None:
        evaluator = CVEvaluator(torch.jit.load(io.BytesIO(payload), map_location="cpu"), key)
    return CVTerm(evaluator, index)


class CVTerm:
    """PythonForce computation: energy = CV ``index`` (0-based), forces = minus its gradient."""

    def __init__(self, evaluator: CVEvaluator, index: int):
        self.evaluator = evaluator
        self.index = int(index)

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        values, gradients = self.evaluator(positions)
        return float(values[self.index]), -gradients[self.index]

    def __reduce__(self):
        return _restore_term, (self.evaluator.key, self.evaluator.payload(), self.index)


def load_cvs(cvs: CVSource) -> torch.nn.Module:
    """The CV module from a TorchScript file path, or ``cvs`` itself if it is a module."""
    if isinstance(cvs, torch.nn.Module):
        return cvs
    return torch.jit.load(str(cvs), map_location="cpu")


def cv_forces(cvs: CVSource) -> list[openmm.PythonForce]:
    """One ``PythonForce`` per CV, slowest first, acting on the model's atoms.

    Parameters
    ----------
    cvs : path or module
        Exported CV file (``nct-md export``) or CV module.

    Returns
    -------
    list of openmm.PythonForce
        Force ``j`` has energy CV ``j + 1`` (the model's unit, ps, which OpenMM labels kJ/mol)
        and is applied to the particles ``atom_indices`` of the model (indices into the system
        the model was trained on).
    """
    evaluator = CVEvaluator(load_cvs(cvs))
    forces = []
    for index in range(evaluator.n_cvs):
        force = openmm.PythonForce(CVTerm(evaluator, index))
        force.setParticles(evaluator.atom_indices)
        force.setName(f"nct-cv{index + 1}")
        forces.append(force)
    return forces


def add_cv_force(system: openmm.System, cvs: CVSource, energy: str) -> openmm.CustomCVForce:
    """Add a ``CustomCVForce`` whose energy ``energy`` (kJ/mol) uses the CVs ``cv1, cv2, ...``.

    E.g. ``energy="0.5*k*(cv1-s0)^2"`` (then add the global parameters ``k`` and ``s0`` to the
    returned force before creating the Context) for umbrella sampling along CV1. Read the CV
    values with ``force.getCollectiveVariableValues(context)``.
    """
    force = openmm.CustomCVForce(energy)
    for index, variable in enumerate(cv_forces(cvs)):
        force.addCollectiveVariable(f"cv{index + 1}", variable)
    system.addForce(force)
    return force


def bias_variables(cvs: CVSource, min_values: list[float], max_values: list[float],
                   widths: list[float], grid_widths: list[int] | None = None
                   ) -> list[app.BiasVariable]:
    """``openmm.app.BiasVariable`` objects for the first ``len(widths)`` CVs (1 to 3).

    Parameters
    ----------
    cvs : path or module
    min_values, max_values : list of float, ps
        Grid range of each biased CV (outside it the bias force is zero).
    widths : list of float, ps
        Gaussian widths (standard deviations).
    grid_widths : list of int, optional
        Grid points per CV (OpenMM's default: 5 (max - min) / width).
    """
    forces = cv_forces(cvs)
    n = len(widths)
    if not 1 <= n <= min(3, len(forces)):
        raise ValueError(f"bias 1 to {min(3, len(forces))} CVs, got {n} widths")
    grids = grid_widths or [None] * n
    return [app.BiasVariable(forces[i], float(min_values[i]), float(max_values[i]),
                             float(widths[i]), False, grids[i]) for i in range(n)]


class CVComponent(torch.nn.Module):
    """All-particle positions ``(n_particles, 3)`` nm -> CV ``index`` (scalar), for TorchForce."""

    def __init__(self, cvs: torch.nn.Module, index: int):
        super().__init__()
        self.cvs = cvs
        self.register_buffer("atoms", torch.tensor([int(i) for i in cvs.atom_indices]))
        self.index = int(index)

    def forward(self, positions: Tensor) -> Tensor:
        return self.cvs(positions[self.atoms].reshape(1, -1))[0, self.index]


def torch_forces(cvs: CVSource) -> list[openmm.Force]:
    """One openmm-torch ``TorchForce`` per CV (same meaning as :func:`cv_forces`).

    Raises ImportError where openmm-torch is not installed.
    """
    from openmmtorch import TorchForce

    module = load_cvs(cvs)
    return [TorchForce(torch.jit.script(CVComponent(module, i))) for i in range(module.n_cvs)]
