"""Molecular dynamics data: reading, phase space, simulation.

Modules
-------
nct_md.md.io
    Read any mdtraj format (one trajectory per file), atom selections, chunked streaming.
nct_md.md.pbc
    Making selections whole across periodic boundaries (used by every reader).
nct_md.md.phase
    ``PhaseSpaceData``: superposed positions and momenta with rigid-body motion removed.
nct_md.md.system
    OpenMM Systems: force fields, implicit solvent, TIP3P water in a periodic box (PME).
nct_md.md.simulate
    OpenMM Langevin simulations written as mdtraj HDF5 with velocities (``nct-md simulate``).

This package knows nothing about neural networks.
"""
