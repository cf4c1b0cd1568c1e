"""Kinetic temperature and potential energy of the impulse integrator against plain Langevin.

Metadynamics with ``bias_interval > 1`` runs ``openmm.MTSLangevinIntegrator``
(:func:`nct_md.md.langevin.mts_langevin_integrator`); plain MD and ``bias_interval=1`` run
``LangevinMiddleIntegrator``. This runs both on alanine dipeptide (amber99sbildn + OBC, H-bonds
constrained, 2 fs steps, 300 K, Reference platform) with a zero force as the slow group, so the
dynamics differ only by the integrator: equal mean potential energies mean equal sampling of
configurations, and a difference in the mean kinetic temperature is then the estimate's, not
the system's.

Run ``python -m bench.mts_temperature [--ps 1500] [--interval 5] [--out
bench/out/mts_temperature.json]``; writes one JSON (never overwritten) and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import openmm
from openmm import unit

from bench import provenance
from nct_md.md.langevin import langevin_integrator, mts_langevin_integrator
from nct_md.md.simulate import read_structure
from nct_md.md.system import build_system
from nct_md.md.thermo import degrees_of_freedom, kinetic_temperature

PDB = Path(__file__).parents[1] / "data" / "alanine-dipeptide.pdb"
#: the zero force's group (the "slow" group of the impulse integrator)
SLOW_GROUP = 1
#: equilibration before sampling, ps; one sample per ps
EQUILIBRATE_PS, SAMPLE_PS = 10.0, 1.0
STEP_FS, TEMPERATURE, SEED = 2.0, 300.0, 1


def sample(integrator_name: str, ps: float, interval: int) -> dict:
    """Mean and block standard error (5 blocks) of the kinetic temperature (K) and potential
    energy (kJ/mol) over ``ps`` ps of one integrator."""
    structure = read_structure(PDB, "PDB")
    system = build_system(structure, "amber99sbildn", "obc", "hbonds")
    zero = openmm.CustomExternalForce("0*x")
    for i in range(system.getNumParticles()):
        zero.addParticle(i, [])
    zero.setForceGroup(SLOW_GROUP)
    system.addForce(zero)
    if integrator_name == "LangevinMiddleIntegrator":
        integrator, steps = langevin_integrator(TEMPERATURE, STEP_FS, SEED), 1
    else:
        integrator = mts_langevin_integrator(TEMPERATURE, STEP_FS, SEED, SLOW_GROUP, {0}, interval)
        steps = interval
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(structure.positions)
    openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(TEMPERATURE * unit.kelvin, SEED)
    per_sample = round(1000.0 * SAMPLE_PS / STEP_FS / steps)
    integrator.step(round(EQUILIBRATE_PS / SAMPLE_PS) * per_sample)
    n_dof = degrees_of_freedom(system)
    rows = []
    for _ in range(round(ps / SAMPLE_PS)):
        integrator.step(per_sample)
        state = context.getState(getEnergy=True)
        rows.append((kinetic_temperature(state.getKineticEnergy().value_in_unit(
            unit.kilojoule_per_mole), n_dof),
            state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)))
    table = np.asarray(rows)
    blocks = np.array([b.mean(0) for b in np.array_split(table, 5)])
    sem = blocks.std(0, ddof=1) / np.sqrt(len(blocks))
    return {"integrator": integrator_name, "interval": steps, "ps": ps,
            "temperature_k": float(table[:, 0].mean()), "temperature_sem_k": float(sem[0]),
            "potential_kjmol": float(table[:, 1].mean()), "potential_sem_kjmol": float(sem[1])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ps", type=float, default=1500.0)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "out" / "mts_temperature.json")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    provenance.refuse_existing(args.out, "--out")
    runs = [sample("LangevinMiddleIntegrator", args.ps, 1),
            sample("MTSLangevinIntegrator", args.ps, args.interval)]
    commit = provenance.commit()
    out = {"settings": {"pdb": str(PDB), "forcefield": "amber99sbildn", "solvent": "obc",
                        "constraints": "hbonds", "step_fs": STEP_FS, "temperature": TEMPERATURE,
                        "seed": SEED, "ps": args.ps, "commit": commit},
           "runs": runs,
           "temperature_difference_k": runs[1]["temperature_k"] - runs[0]["temperature_k"],
           "potential_difference_kjmol": runs[1]["potential_kjmol"] - runs[0]["potential_kjmol"]}
    provenance.write_record(args.out, out)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
