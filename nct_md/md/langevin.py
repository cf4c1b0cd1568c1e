"""The Langevin run set-up shared by ``nct-md simulate`` and metadynamics (``nct-md metad``).

Public API
----------
FRICTION_PER_PS
    Friction of the ``LangevinMiddleIntegrator``, 1/ps.
langevin_integrator(temperature, step_fs, seed)
    The integrator both drivers run.
mts_langevin_integrator(temperature, step_fs, seed, slow_group, fast_groups, interval)
    Its multiple-time-step form: one force group as an impulse every ``interval`` steps.
available_platforms(), check_platform(name), platform_properties(name)
    OpenMM platforms: installed names, the check of a requested one, and its Context properties
    (one thread on CPU).
choose_platform(system, positions, temperature)
    Time a short run on every available OpenMM platform and return the fastest.
time_step(constraints, timestep_fs), frame_steps(save_every_ps, step)
    The checks of run settings, with the command-line option names in their messages.
"""

from __future__ import annotations

import time

import numpy as np
import openmm
from openmm import unit

from nct_md.errors import NCTInputError
from nct_md.md.choices import DEFAULT_TIMESTEP_FS

FRICTION_PER_PS = 1.0
#: the largest time step accepted, fs
MAX_TIMESTEP_FS = 5.0
#: platforms tried by the automatic choice, and the largest system Reference is timed on
_CANDIDATES = ("Reference", "CPU", "CUDA", "OpenCL", "HIP")
_REFERENCE_MAX_ATOMS = 5000


def langevin_integrator(temperature: float, step_fs: float,
                        seed: int) -> openmm.LangevinMiddleIntegrator:
    """``LangevinMiddleIntegrator`` at ``temperature`` K, friction 1/ps, step ``step_fs`` fs,
    its random noise seeded with ``seed``."""
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin,
                                                 FRICTION_PER_PS / unit.picosecond,
                                                 step_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    return integrator


def mts_langevin_integrator(temperature: float, step_fs: float, seed: int, slow_group: int,
                            fast_groups: set[int], interval: int) -> openmm.CustomIntegrator:
    """BAOAB-RESPA Langevin dynamics (``openmm.MTSLangevinIntegrator``) at ``temperature`` K,
    friction 1/ps, seeded with ``seed``: the forces of ``fast_groups`` every ``step_fs`` fs, those
    of ``slow_group`` as an impulse (half kicks of ``interval * step_fs`` fs around the inner
    steps) once per ``interval`` steps. One step of the returned integrator advances
    ``interval * step_fs`` fs; forces in groups that are in neither argument are ignored."""
    groups = [(slow_group, 1), *((group, interval) for group in sorted(fast_groups))]
    integrator = openmm.MTSLangevinIntegrator(temperature * unit.kelvin,
                                              FRICTION_PER_PS / unit.picosecond,
                                              interval * step_fs * unit.femtosecond, groups)
    integrator.setRandomNumberSeed(seed)
    return integrator


def available_platforms() -> list[str]:
    """Names of the OpenMM platforms this installation provides."""
    return [openmm.Platform.getPlatform(i).getName()
            for i in range(openmm.Platform.getNumPlatforms())]


def check_platform(name: str | None) -> None:
    """Refuse a platform name this installation lacks (None: chosen later, always accepted)."""
    if name is not None and name not in available_platforms():
        raise NCTInputError(f"OpenMM platform '{name}' is not available; use one of "
                            f"{', '.join(available_platforms())}")


def platform_properties(name: str) -> dict:
    """Context properties of platform ``name``: one thread on CPU (faster for small molecules)."""
    return {"Threads": "1"} if name == "CPU" else {}


def choose_platform(system: openmm.System, positions: np.ndarray, temperature: float,
                    trial_s: float = 0.3) -> tuple[str, dict[str, float]]:
    """Fastest platform for this system, measured by timing a short run on each.

    Parameters
    ----------
    system : openmm.System
    positions : ndarray, shape ``(N, 3)``, nm
    temperature : float, K
    trial_s : float
        Seconds of stepping timed per platform (after a warm-up).

    Returns
    -------
    (str, dict)
        The fastest platform's name and the measured steps per second of every platform that
        ran. The CPU platform is timed with one thread (:func:`platform_properties`).
    """
    speeds = {}
    for name in _CANDIDATES:
        if name not in available_platforms():
            continue
        if name == "Reference" and system.getNumParticles() > _REFERENCE_MAX_ATOMS:
            continue
        # a tiny step keeps an unminimised structure stable; the cost per step is the same
        integrator = openmm.LangevinMiddleIntegrator(temperature, FRICTION_PER_PS, 1e-4)
        try:
            context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(name),
                                     platform_properties(name))
            context.setPositions(positions)
            integrator.step(10)
            steps, start = 0, time.perf_counter()
            while time.perf_counter() - start < trial_s:
                integrator.step(20)
                steps += 20
            context.getState(getEnergy=True)
            speeds[name] = steps / (time.perf_counter() - start)
        except openmm.OpenMMException:
            continue
        finally:
            del integrator
    if not speeds:
        raise NCTInputError("no OpenMM platform could run this system; check the OpenMM install")
    return max(speeds, key=speeds.get), speeds


def time_step(constraints: str, timestep_fs: float | None) -> float:
    """The time step in fs: ``timestep_fs``, checked to be in (0, 5], or the default of the
    constraints (2 fs with hbonds, 1 fs without; a name of ``choices.CONSTRAINTS``)."""
    step = DEFAULT_TIMESTEP_FS[constraints] if timestep_fs is None else float(timestep_fs)
    if not np.isfinite(step) or step <= 0 or step > MAX_TIMESTEP_FS:
        raise NCTInputError(f"--timestep-fs must be in (0, {MAX_TIMESTEP_FS:g}] fs, "
                            f"got {timestep_fs}")
    return step


def frame_steps(save_every_ps: float, step_fs: float) -> int:
    """Integration steps between saved frames; refuses a spacing that is no whole number of
    steps (``save_every_ps`` ps, ``step_fs`` fs)."""
    steps = save_every_ps * 1000.0 / step_fs
    if abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
        raise NCTInputError(f"--save-every-ps {save_every_ps} is not a whole number of "
                            f"{step_fs} fs steps; choose a multiple of the time step")
    return round(steps)
