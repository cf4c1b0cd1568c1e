"""Recipes for the held-out data sets of the slow-CV benchmarks (too large to ship in ``data/``).

Two sets, both positions only at analysis time (the HDF5 files carry velocities; the benchmarks
ignore them), both with a force field other than the shipped data's amber99sbildn + OBC:

``ala2-amber14-vacuum``
    Alanine dipeptide, amber14, vacuum, 300 K, HBonds constraints, 2 fs, 1 ps per frame; two
    trajectories started in each Phi basin (C7eq and C5 for Phi < 0, C7ax twice for Phi > 0).
``ala3-amber14-obc2``
    Capped tri-alanine ACE-(ALA)3-NME (42 atoms), amber14 with the OBC2 implicit solvent
    (``implicit/obc2.xml``), 300 K, HBonds constraints, 2 fs, 1 ps per frame; two trajectories
    started extended (beta) and two started helical (alpha-R).

The capped peptide is built from a five-alanine chain (PeptideBuilder places heavy atoms from
backbone torsions): the first residue's CA, C, O become the acetyl cap's CH3, C, O and the last
residue's N, CA become the N-methyl cap's N, CH3, so the caps sit exactly where a peptide bond
puts them; OpenMM ``Modeller.addHydrogens`` adds the hydrogens and the structure is
energy-minimised. Run ``python -m bench.datasets OUT_DIR [--ns NS]`` (wall time: a few minutes
for the dipeptide on the Reference platform, about 3 hours on one CPU thread for the peptide at
the default length); every trajectory is written by ``nct-md simulate``, which records its
settings in the file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
#: (name, start PDB, seed) of the alanine-dipeptide set
ALA2_RUNS = (("phi-neg-c7eq", DATA / "alanine-dipeptide.pdb", 21),
             ("phi-neg-c5", DATA / "starts" / "c5.pdb", 22),
             ("phi-pos-c7ax-1", DATA / "starts" / "c7ax.pdb", 23),
             ("phi-pos-c7ax-2", DATA / "starts" / "c7ax.pdb", 24))
#: backbone (phi, psi) in degrees of the peptide's starting structures
ALA3_STARTS = {"beta": (-120.0, 130.0), "alphar": (-60.0, -45.0)}
ALA3_SEEDS = {"beta": (31, 32), "alphar": (33, 34)}


def build_capped_alanine(path: Path, n_ala: int, phi_psi: tuple[float, float]) -> None:
    """Write ACE-(ALA)n-NME with all hydrogens, amber14-minimised in vacuum, to ``path``."""
    import PeptideBuilder
    from Bio.PDB import PDBIO
    from openmm import app, openmm, unit

    phi, psi = phi_psi
    chain = PeptideBuilder.make_structure("A" * (n_ala + 2), [phi] * (n_ala + 1),
                                          [psi] * (n_ala + 1))
    residues = list(chain.get_residues())
    caps = {0: ("ACE", {"CA": "CH3", "C": "C", "O": "O"}),
            n_ala + 1: ("NME", {"N": "N", "CA": "CH3"})}
    for index, (name, keep) in caps.items():
        residue = residues[index]
        for atom in list(residue):
            if atom.get_id() not in keep:
                residue.detach_child(atom.get_id())
        for atom in list(residue):
            new = keep[atom.get_id()]
            residue.detach_child(atom.get_id())
            atom.id = atom.name = atom.fullname = new
            residue.add(atom)
        residue.resname = name
    heavy = path.with_suffix(".heavy.pdb")
    writer = PDBIO()
    writer.set_structure(chain)
    writer.save(str(heavy))
    pdb = app.PDBFile(str(heavy))
    forcefield = app.ForceField("amber14-all.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addHydrogens(forcefield)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0)
    positions = context.getState(getPositions=True).getPositions(asNumpy=True)
    with open(path, "w") as handle:
        app.PDBFile.writeFile(modeller.topology, positions.value_in_unit(unit.angstrom) * 0.1
                              * unit.nanometer, handle)
    heavy.unlink()


def _simulate(pdb: Path, out: Path, seed: int, ns: float, *args: str) -> None:
    if out.exists():
        print(f"kept {out}")
        return
    command = [sys.executable, "-m", "nct_md", "simulate", "--pdb", str(pdb), "--out",
               str(out), "--forcefield", "amber14", "--temperature", "300", "--ns", str(ns),
               "--save-every-ps", "1", "--seed", str(seed), "--quiet", *args]
    subprocess.run(command, check=True)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--ns", type=float, default=10.0, help="ns per peptide trajectory")
    parser.add_argument("--ns-ala2", type=float, default=5.0, help="ns per dipeptide trajectory")
    args = parser.parse_args()
    ala2 = args.out / "ala2-amber14-vacuum"
    ala3 = args.out / "ala3-amber14-obc2"
    ala2.mkdir(parents=True, exist_ok=True)
    ala3.mkdir(parents=True, exist_ok=True)
    for name, start, seed in ALA2_RUNS:
        _simulate(start, ala2 / f"{name}.h5", seed, args.ns_ala2, "--solvent", "vacuum",
                  "--platform", "Reference")
    for name, phi_psi in ALA3_STARTS.items():
        pdb = ala3 / f"start-{name}.pdb"
        if not pdb.exists():
            build_capped_alanine(pdb, 3, phi_psi)
        for i, seed in enumerate(ALA3_SEEDS[name], 1):
            _simulate(pdb, ala3 / f"{name}-{i}.h5", seed, args.ns, "--solvent", "obc",
                      "--platform", "CPU")


if __name__ == "__main__":
    main()
