"""Worker process of :class:`~nct_md.generate.openmm_energy.OpenMMEnergy` (numpy + OpenMM only).

Kept free of torch so that spawning a worker costs one OpenMM import. Protocol over a
``multiprocessing`` pipe: the parent sends a float64 array of positions ``(b, N, 3)`` in nm and
receives ``(energies (b,) kJ/mol, forces (b, N, 3) kJ/mol/nm)``; ``None`` (or a closed pipe)
ends the worker.
"""

from __future__ import annotations

import numpy as np
import openmm


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


def serve(conn, system_xml: str, platform: str, properties: dict[str, str]) -> None:
    """Worker main loop: build one Context, then answer evaluation requests until told to stop."""
    try:
        context = make_context(system_xml, platform, properties)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", context.getPlatform().getName()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # parent gone
            return
        if request is None:
            return
        conn.send(evaluate(context, request))
