"""Names of the MD set-up choices: force fields, solvents, constraints, ensembles, positions.

Plain data (no OpenMM, no torch), defined once here: the command line lists them in its
``--help`` without importing OpenMM, and :mod:`nct_md.md.system`, :mod:`nct_md.md.simulate`,
the metadynamics export and the OpenMM energies of :mod:`nct_md.generate` check names against
them.
"""

from __future__ import annotations

#: force-field name -> (protein XML, matching OBC implicit-solvent XML), files OpenMM ships
FORCEFIELDS = {
    "amber99sbildn": ("amber99sbildn.xml", "amber99_obc.xml"),
    "amber99sb": ("amber99sb.xml", "amber99_obc.xml"),
    "amber96": ("amber96.xml", "amber96_obc.xml"),
    "amber03": ("amber03.xml", "amber03_obc.xml"),
    "amber10": ("amber10.xml", "amber10_obc.xml"),
    "amber14": ("amber14-all.xml", "implicit/obc2.xml"),
}
#: non-periodic solvent models, simulated without a cutoff
SOLVENTS = ("obc", "vacuum")
#: explicit water models (name -> model of ``app.Modeller.addSolvent``), periodic box with PME
PERIODIC_SOLVENTS = {"tip3p": "tip3p"}
ALL_SOLVENTS = (*SOLVENTS, *PERIODIC_SOLVENTS)
#: bonds to hydrogen constrained, or nothing
CONSTRAINTS = ("hbonds", "none")
#: production at fixed volume or at 1 bar (explicit water only)
ENSEMBLES = ("nvt", "npt")
#: "whole": molecules kept whole (translated into the box as units); "wrapped": atom by atom
POSITIONS = ("whole", "wrapped")
#: default time step in fs for each constraint choice
DEFAULT_TIMESTEP_FS = {"hbonds": 2.0, "none": 1.0}
