"""Build ``alanine-dipeptide.pdb`` (ACE-ALA-NME, 22 atoms, amber names) from internal coordinates.

Standard bond lengths (nm), angles and torsions place every atom (natural extension reference
frame); the structure is then energy-minimised in vacuum with amber99sbildn. Run from the
repository root: ``python data/build_alanine_dipeptide.py``.
"""

from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

# (name, residue, element, bonded-to, angle-to, torsion-to, bond nm, angle deg, torsion deg)
ZMATRIX = [
    ("HH31", "ACE", "H", None, None, None, 0, 0, 0),
    ("CH3", "ACE", "C", "HH31", None, None, 0.109, 0, 0),
    ("C", "ACE", "C", "CH3", "HH31", None, 0.152, 109.5, 0),
    ("O", "ACE", "O", "C", "CH3", "HH31", 0.123, 120.5, 0.0),
    ("HH32", "ACE", "H", "CH3", "C", "O", 0.109, 109.5, 120.0),
    ("HH33", "ACE", "H", "CH3", "C", "O", 0.109, 109.5, -120.0),
    ("N", "ALA", "N", "C", "CH3", "O", 0.1335, 116.6, 180.0),
    ("H", "ALA", "H", "N", "C", "O", 0.101, 119.8, 180.0),
    ("CA", "ALA", "C", "N", "C", "CH3", 0.1449, 121.9, 180.0),
    ("C", "ALA", "C", "CA", "N", "C", 0.1522, 110.4, -80.0),  # phi
    ("CB", "ALA", "C", "CA", "N", "C", 0.153, 110.5, 40.0),
    ("HA", "ALA", "H", "CA", "N", "C", 0.109, 109.5, 160.0),
    ("HB1", "ALA", "H", "CB", "CA", "N", 0.109, 109.5, 60.0),
    ("HB2", "ALA", "H", "CB", "CA", "N", 0.109, 109.5, 180.0),
    ("HB3", "ALA", "H", "CB", "CA", "N", 0.109, 109.5, -60.0),
    ("N", "NME", "N", "C", "CA", "N", 0.1335, 116.6, 70.0),  # psi
    ("O", "ALA", "O", "C", "CA", "N", 0.123, 120.5, -110.0),
    ("H", "NME", "H", "N", "C", "O", 0.101, 119.8, 180.0),
    ("CH3", "NME", "C", "N", "C", "CA", 0.1449, 121.9, 180.0),
    ("HH31", "NME", "H", "CH3", "N", "C", 0.109, 109.5, 0.0),
    ("HH32", "NME", "H", "CH3", "N", "C", 0.109, 109.5, 120.0),
    ("HH33", "NME", "H", "CH3", "N", "C", 0.109, 109.5, -120.0),
]
ORDER = {  # amber residue-template order
    "ACE": ["HH31", "CH3", "HH32", "HH33", "C", "O"],
    "ALA": ["N", "H", "CA", "HA", "CB", "HB1", "HB2", "HB3", "C", "O"],
    "NME": ["N", "H", "CH3", "HH31", "HH32", "HH33"],
}


def place(a, b, c, bond, angle, torsion):
    """Position bonded to ``a`` with angle (new, a, b) and torsion (new, a, b, c), in nm."""
    angle, torsion = np.radians(angle), np.radians(torsion)
    bc = (b - c) / np.linalg.norm(b - c)
    ab = (a - b) / np.linalg.norm(a - b)
    n = np.cross(bc, ab)
    n /= np.linalg.norm(n)
    local = bond * np.array(
        [-np.cos(angle), np.sin(angle) * np.cos(torsion), np.sin(angle) * np.sin(torsion)]
    )
    return a + np.column_stack([ab, np.cross(n, ab), n]) @ local


def build() -> dict:
    """Return {(residue, name): xyz nm} for all 22 atoms."""
    pos = {}

    def key(name, near):
        # an atom name in the residue of ``near`` or in the neighbouring one
        for res in (near, "ALA", "ACE", "NME"):
            if (res, name) in pos:
                return (res, name)
        raise KeyError(name)

    for name, res, _element, a, b, c, bond, angle, torsion in ZMATRIX:
        if a is None:
            xyz = np.zeros(3)
        elif b is None:
            xyz = np.array([bond, 0.0, 0.0])
        elif c is None:  # third atom: ``b`` sits at the origin, ``a`` on the +x axis
            t = np.radians(angle)
            xyz = pos[key(a, res)] + bond * np.array([-np.cos(t), np.sin(t), 0.0])
        else:
            xyz = place(pos[key(a, res)], pos[key(b, res)], pos[key(c, res)], bond, angle, torsion)
        pos[(res, name)] = xyz
    return pos


def main() -> None:
    """Build, minimise and write ``data/alanine-dipeptide.pdb``."""
    out = Path(__file__).with_name("alanine-dipeptide.pdb")
    pos = build()
    elements = {(r, n): e for n, r, e, *_ in ZMATRIX}
    top = app.Topology()
    chain = top.addChain()
    xyz = []
    previous = {}
    for res_name, names in ORDER.items():
        residue = top.addResidue(res_name, chain)
        for name in names:
            atom = top.addAtom(name, app.Element.getBySymbol(elements[(res_name, name)]), residue)
            previous[(res_name, name)] = atom
            xyz.append(pos[(res_name, name)])
    bonds = [
        ("ACE", "HH31", "ACE", "CH3"), ("ACE", "HH32", "ACE", "CH3"), ("ACE", "HH33", "ACE", "CH3"),
        ("ACE", "CH3", "ACE", "C"), ("ACE", "C", "ACE", "O"), ("ACE", "C", "ALA", "N"),
        ("ALA", "N", "ALA", "H"), ("ALA", "N", "ALA", "CA"), ("ALA", "CA", "ALA", "HA"),
        ("ALA", "CA", "ALA", "CB"), ("ALA", "CB", "ALA", "HB1"), ("ALA", "CB", "ALA", "HB2"),
        ("ALA", "CB", "ALA", "HB3"), ("ALA", "CA", "ALA", "C"), ("ALA", "C", "ALA", "O"),
        ("ALA", "C", "NME", "N"), ("NME", "N", "NME", "H"), ("NME", "N", "NME", "CH3"),
        ("NME", "CH3", "NME", "HH31"), ("NME", "CH3", "NME", "HH32"), ("NME", "CH3", "NME", "HH33"),
    ]
    for r1, n1, r2, n2 in bonds:
        top.addBond(previous[(r1, n1)], previous[(r2, n2)])
    forcefield = app.ForceField("amber99sbildn.xml")
    system = forcefield.createSystem(top, nonbondedMethod=app.NoCutoff, constraints=None)
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(np.array(xyz) * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context, 1e-3)
    positions = context.getState(getPositions=True).getPositions()
    with open(out, "w") as handle:
        app.PDBFile.writeFile(top, positions, handle)


if __name__ == "__main__":
    main()
