"""Worker processes of :class:`~nct_md.generate.openmm_energy.OpenMMEnergy` (numpy + OpenMM only).

A worker is a fresh interpreter, ``python -m nct_md.generate._worker``, started with
:mod:`subprocess`: it never imports the parent's ``__main__`` (unlike ``multiprocessing``'s spawn,
which re-runs a script that has no ``if __name__ == "__main__":`` guard, and fails on code read
from stdin or typed in a notebook), and it imports no torch. Parent and worker exchange pickles
over the worker's stdin and stdout (a private pipe pair):

1. the parent sends ``(system_xml, platform, properties)``; the worker answers
   ``("ready", platform name)`` or ``("error", one line)``;
2. then each float64 array of positions ``(b, N, 3)`` in nm is answered by
   ``(energies (b,) kJ/mol, forces (b, N, 3) kJ/mol/nm)``;
3. the end of stdin ends the worker: the parent closes the pipe to stop it, and the pipe ends
   also when the parent exits or is killed, so workers never outlive it.

Workers ignore SIGINT: Ctrl-C interrupts the parent, which then closes them.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np
import openmm

#: the folder that holds the ``nct_md`` package: the workers' working directory, so that
#: ``-m nct_md.generate._worker`` finds this very copy of the package
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def make_context(system_xml: str, platform: str, properties: dict[str, str]) -> openmm.Context:
    """A Context of the serialized System on ``platform`` (the integrator is never stepped)."""
    system = openmm.XmlSerializer.deserialize(system_xml)
    return openmm.Context(system, openmm.VerletIntegrator(0.001),
                          openmm.Platform.getPlatformByName(platform), properties)


def evaluate(context: openmm.Context, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energies ``(b,)`` kJ/mol and forces ``(b, N, 3)`` kJ/mol/nm of frames ``(b, N, 3)`` nm.

    Frames with non-finite coordinates, or on which OpenMM raises, get NaN energy and forces.
    Quantities are read through ``._value`` (OpenMM's own kJ/mol and kJ/mol/nm) because
    ``value_in_unit`` costs tens of microseconds per call.
    """
    n_frames, n_atoms = positions.shape[:2]
    energies = np.full(n_frames, np.nan)
    forces = np.full((n_frames, n_atoms, 3), np.nan)
    for k in range(n_frames):
        frame = positions[k]
        if not np.isfinite(frame).all():
            continue
        try:
            context.setPositions(frame)
            state = context.getState(getEnergy=True, getForces=True)
        except openmm.OpenMMException:
            continue
        energies[k] = state.getPotentialEnergy()._value
        forces[k] = state.getForces(asNumpy=True)._value
    return energies, forces


def _send(stream: IO[bytes], message: Any) -> None:
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """Worker loop: build one Context from the first request, then answer positions until
    ``requests`` ends."""
    try:
        context = make_context(*pickle.load(requests))
    except EOFError:  # parent gone before sending the System
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        _send(replies, ("error", f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
        return
    _send(replies, ("ready", context.getPlatform().getName()))
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:  # closed by the parent, or the parent died
            return
        try:
            _send(replies, evaluate(context, request))
        except BrokenPipeError:  # parent died while we computed
            return


def main() -> None:
    """Entry point of ``python -m nct_md.generate._worker``: serve on stdin/stdout.

    The channel keeps a private copy of descriptor 1, which then points to stderr, so that
    anything printed in the worker (by OpenMM or a plugin) cannot corrupt it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)


class WorkerProcess:
    """Parent side of one worker: starts it, sends the System, and trades arrays with it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nct_md.generate._worker"], cwd=_PACKAGE_ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def _died(self) -> RuntimeError:
        """The one-line error for a worker whose pipes broke (it exited or crashed)."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = "none, still running"
        return RuntimeError(f"OpenMM worker process {self.process.pid} stopped answering (exit "
                            f"code {code}); its own error, if any, is on stderr above")

    def send(self, message: Any) -> None:
        """Send one request: ``(system_xml, platform, properties)``, then positions."""
        try:
            _send(self.process.stdin, message)
        except (BrokenPipeError, ValueError):  # dead worker, or closed pipe
            raise self._died() from None

    def receive(self) -> Any:
        """The next reply; RuntimeError (one line) if the worker has died."""
        try:
            return pickle.load(self.process.stdout)
        except (EOFError, pickle.UnpicklingError, ValueError):
            raise self._died() from None

    def stop(self) -> None:
        """Close the pipes: the worker exits at the end of its stdin (idempotent)."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except BrokenPipeError:  # unflushed data to a dead worker
                pass

    def join(self, timeout: float = 5.0) -> None:
        """Wait ``timeout`` s for the stopped worker to exit, then kill it."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


if __name__ == "__main__":
    main()
