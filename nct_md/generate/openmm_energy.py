"""OpenMM potential energies as a differentiable torch function, evaluated in worker processes.

:class:`OpenMMEnergy` holds one OpenMM ``Context`` per worker process (or one in-process context
with ``n_workers=0``). Calling it on positions ``q`` of shape ``(B, 3N)`` in nm returns the
reduced energy ``u = U(q) / kT`` of shape ``(B,)`` (dimensionless); its gradient is
``-F(q) / kT`` (1/nm), with ``F`` OpenMM's forces. :meth:`OpenMMEnergy.evaluate` returns the raw
``U`` in kJ/mol and ``F`` in kJ/mol/nm.

Bad frames: frames with NaN or infinite coordinates, or on which OpenMM fails, get NaN energy;
overlapping atoms give huge or infinite energies. Every call records an
:class:`EnergyDiagnostics` (logged as a warning when a frame is bad). With ``clip_above`` set,
reduced energies above the cutoff ``c`` are log-clipped, ``c + ln(1 + u - c)`` (gradient scaled
by ``1 / (1 + u - c)``), and non-finite ones are replaced by ``c + NONFINITE_EXCESS`` with zero
force, so that training survives bad samples; without it values are returned as they are.

Workers are fresh interpreters running :mod:`nct_md.generate._worker` (never a fork of a process
that holds torch threads, and never a re-run of the user's ``__main__``: scripts without an
``if __name__ == "__main__":`` guard, code piped to ``python -``, and notebooks all work). They are
shut down by :meth:`OpenMMEnergy.close`, by the context manager, or at interpreter exit, and they
exit by themselves when the parent dies (their stdin ends), so no worker outlives its parent.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm
import torch

from nct_md.errors import NCTInputError
from nct_md.generate import _worker
from nct_md.md.thermo import check_temperature, kt

Tensor = torch.Tensor
log = logging.getLogger(__name__)

#: excess (in kT, after log-clipping) given to frames whose energy is not finite
NONFINITE_EXCESS = math.log1p(1e30)
_live: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for energy in list(_live):
        energy.close()


@dataclass(frozen=True)
class EnergyDiagnostics:
    """What one evaluation met: counts of frames, non-finite and clipped energies.

    ``max_finite`` is the largest finite reduced energy (kT) before clipping (NaN if none).
    """

    n_frames: int
    n_nonfinite: int
    n_clipped: int
    max_finite: float

    @property
    def finite_fraction(self) -> float:
        return 1.0 - self.n_nonfinite / max(self.n_frames, 1)


def system_from_pdb(pdb: str | os.PathLike, forcefield: str = "amber99sbildn",
                    solvent: str = "obc", constraints: str = "none") -> openmm.System:
    """The System ``nct-md simulate`` builds for ``pdb`` (no cutoff; default unconstrained)."""
    from nct_md.md.simulate import read_structure
    from nct_md.md.system import build_system, check_choices

    check_choices(forcefield, solvent, constraints, periodic=False)
    return build_system(read_structure(pdb, "PDB"), forcefield, solvent, constraints)


def system_from_topology(topology, forcefield: str = "amber99sbildn",
                         solvent: str = "obc") -> openmm.System:
    """The unconstrained System of an mdtraj topology (e.g. a model's), as simulate builds."""
    from types import SimpleNamespace

    from nct_md.md.system import build_system, check_choices

    check_choices(forcefield, solvent, "none", periodic=False)
    return build_system(SimpleNamespace(topology=topology.to_openmm()), forcefield, solvent,
                         "none")


def system_from_xml(path: str | os.PathLike) -> openmm.System:
    """Read a System serialized with ``openmm.XmlSerializer``."""
    path = Path(path)
    if not path.is_file():
        raise NCTInputError(f"System XML file '{path}' not found; check the path")
    try:
        system = openmm.XmlSerializer.deserialize(path.read_text())
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
        raise NCTInputError(f"'{path}' is not a serialized OpenMM System ({exc})") from None
    if not isinstance(system, openmm.System):
        raise NCTInputError(f"'{path}' holds a {type(system).__name__}, not an OpenMM System")
    return system


class _ReducedEnergy(torch.autograd.Function):
    """``u(q)`` with the saved gradient ``du/dq``; the energy object is a constant argument."""

    @staticmethod
    def forward(ctx, q: Tensor, energy: OpenMMEnergy) -> Tensor:
        u, grad = energy.reduced_numpy(q.detach().cpu().double().numpy())
        ctx.save_for_backward(torch.as_tensor(grad, dtype=q.dtype, device=q.device))
        return torch.as_tensor(u, dtype=q.dtype, device=q.device)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        (grad,) = ctx.saved_tensors
        return grad_output[:, None] * grad, None


class OpenMMEnergy:
    """Reduced potential energy ``U(q) / kT`` of an OpenMM System, for batches of frames.

    Parameters
    ----------
    system : openmm.System
        Non-periodic system (positions are passed without box vectors).
    temperature : float
        K; ``kT = 0.0083144626 * temperature`` kJ/mol.
    n_workers : int
        Worker processes, one Context each; 0 evaluates in this process.
    platform : str
        OpenMM platform; ``Reference`` is the fastest for small molecules.
    platform_properties : dict, optional
        Default ``{"Threads": "1"}`` on the CPU platform.
    clip_above : float, optional
        Log-clip reduced energies above this value (kT) and replace non-finite ones (see the
        module docstring). None returns values unchanged (NaN or inf included).
    """

    def __init__(self, system: openmm.System, temperature: float, n_workers: int = 1,
                 platform: str = "Reference", platform_properties: dict | None = None,
                 clip_above: float | None = None):
        check_temperature(temperature)
        if n_workers < 0:
            raise NCTInputError(f"n_workers must be >= 0, got {n_workers}")
        if system.usesPeriodicBoundaryConditions():
            raise NCTInputError("the System is periodic; OpenMMEnergy evaluates isolated "
                                "molecules (no box vectors are passed)")
        if clip_above is not None and not np.isfinite(clip_above):
            raise NCTInputError(f"clip_above must be finite, got {clip_above}")
        self.temperature = float(temperature)
        self.kT = kt(temperature)
        self.n_atoms = system.getNumParticles()
        self.n_constraints = system.getNumConstraints()
        self.masses = np.array([system.getParticleMass(i)._value for i in range(self.n_atoms)])
        self.clip_above = clip_above
        self.platform = platform
        self.last_diagnostics: EnergyDiagnostics | None = None
        self.n_evaluated = 0
        self.n_nonfinite = 0
        properties = dict(platform_properties or ({"Threads": "1"} if platform == "CPU" else {}))
        xml = openmm.XmlSerializer.serialize(system)
        self._context = None
        self._workers: list[_worker.WorkerProcess] = []
        if n_workers == 0:
            try:
                self._context = _worker.make_context(xml, platform, properties)
            except Exception as exc:  # noqa: BLE001
                raise NCTInputError(f"OpenMM cannot create a Context on '{platform}': "
                                    f"{exc}") from None
        else:
            self._start_workers(n_workers, xml, platform, properties)
        _live.add(self)

    # -- construction helpers ----------------------------------------------------------------
    @classmethod
    def from_pdb(cls, pdb: str | os.PathLike, temperature: float,
                 forcefield: str = "amber99sbildn", solvent: str = "obc",
                 constraints: str = "none", **kwargs) -> OpenMMEnergy:
        """Energy of the System :func:`system_from_pdb` builds (default unconstrained)."""
        return cls(system_from_pdb(pdb, forcefield, solvent, constraints), temperature, **kwargs)

    @classmethod
    def from_xml(cls, path: str | os.PathLike, temperature: float, **kwargs) -> OpenMMEnergy:
        """Energy of a System serialized with ``openmm.XmlSerializer``."""
        return cls(system_from_xml(path), temperature, **kwargs)

    def _start_workers(self, n: int, xml: str, platform: str, properties: dict) -> None:
        """Start ``n`` workers (in parallel) and wait until each holds a Context."""
        self._workers = [_worker.WorkerProcess() for _ in range(n)]
        try:
            for worker in self._workers:
                worker.send((xml, platform, properties))
            replies = [worker.receive() for worker in self._workers]
        except RuntimeError:
            self.close()
            raise
        errors = [detail for status, detail in replies if status != "ready"]
        if errors:
            self.close()
            raise NCTInputError(f"OpenMM worker could not create a Context on '{platform}': "
                                f"{errors[0]}")

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def n_workers(self) -> int:
        return len(self._workers)

    def close(self) -> None:
        """Stop the workers (idempotent); the object cannot evaluate afterwards."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join()
        self._context = None
        _live.discard(self)

    def __enter__(self) -> OpenMMEnergy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_workers", None):
            self.close()

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw energies and forces of frames.

        Parameters
        ----------
        xyz : ndarray ``(B, N, 3)`` or ``(B, 3N)``, nm

        Returns
        -------
        energies : ndarray ``(B,)`` float64, kJ/mol (NaN for frames that could not be evaluated)
        forces : ndarray ``(B, N, 3)`` float64, kJ/mol/nm
        """
        xyz = np.ascontiguousarray(xyz, dtype=np.float64)
        if xyz.ndim == 2:
            xyz = xyz.reshape(len(xyz), -1, 3)
        if xyz.ndim != 3 or xyz.shape[1:] != (self.n_atoms, 3):
            raise NCTInputError(f"positions must be (B, {self.n_atoms}, 3) or "
                                f"(B, {3 * self.n_atoms}) nm, got {xyz.shape}")
        if self._context is not None:
            return _worker.evaluate(self._context, xyz)
        if not self._workers:
            raise RuntimeError("this OpenMMEnergy is closed")
        chunks = [c for c in np.array_split(xyz, self.n_workers) if len(c)]
        busy = self._workers[:len(chunks)]
        try:
            for worker, chunk in zip(busy, chunks, strict=True):
                worker.send(chunk)
            results = [worker.receive() for worker in busy]
        except BaseException:  # a dead worker, or Ctrl-C: replies would now come out of step
            self.close()
            raise
        return (np.concatenate([r[0] for r in results]),
                np.concatenate([r[1] for r in results]))

    def reduced_numpy(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Regularised ``u = U / kT`` ``(B,)`` and ``du/dq`` ``(B, 3N)`` (1/nm) of ``q`` (nm)."""
        energies, forces = self.evaluate(q)
        u = energies / self.kT
        grad = -forces.reshape(len(u), -1) / self.kT
        bad = ~(np.isfinite(u) & np.isfinite(grad).all(axis=1))
        finite_u = u[~bad]
        n_clipped = 0
        if self.clip_above is not None:
            over = ~bad & (u > self.clip_above)
            n_clipped = int(over.sum())
            excess = u[over] - self.clip_above
            u[over] = self.clip_above + np.log1p(excess)
            grad[over] /= (1.0 + excess)[:, None]
            u[bad] = self.clip_above + NONFINITE_EXCESS
            grad[bad] = 0.0
        diag = EnergyDiagnostics(len(u), int(bad.sum()), n_clipped,
                                 float(finite_u.max()) if len(finite_u) else math.nan)
        self.last_diagnostics = diag
        self.n_evaluated += diag.n_frames
        self.n_nonfinite += diag.n_nonfinite
        if diag.n_nonfinite:
            log.warning("%d of %d frames have non-finite energy or forces (overlapping atoms or "
                        "NaN coordinates), frames %s%s", diag.n_nonfinite, diag.n_frames,
                        np.flatnonzero(bad)[:10].tolist(),
                        "; replaced by the clip penalty" if self.clip_above is not None else "")
        return u, grad

    def __call__(self, q: Tensor) -> Tensor:
        """Reduced energy ``U(q) / kT`` ``(B,)`` of positions ``q`` ``(B, 3N)`` nm; autograd
        gives ``-F / kT``."""
        return _ReducedEnergy.apply(q, self)
