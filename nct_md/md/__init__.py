"""Molecular dynamics data: reading, phase space, simulation.

Modules
-------
nct_md.md.io
    Read any mdtraj format (one trajectory per file), atom selections, chunked streaming.
nct_md.md.pbc
    Making selections whole across periodic boundaries (used by every reader).
nct_md.md.chunk
    ``Chunk``: frames of one file as the readers return them (selected atoms, velocities).
nct_md.md.thermo
    kT, temperature checks, atom masses, Maxwell-Boltzmann momenta.
nct_md.md.frame
    ``EckartFrame``: superposition on a reference, rigid-body bases, positions and momenta;
    the one way from Cartesian frames to rigid-body-free coordinates (training and CVs).
nct_md.md.data
    ``PhaseSpaceData``: superposed positions and momenta with rigid-body motion removed.
nct_md.md.phase
    Builders of ``PhaseSpaceData`` from chunks, trajectories and files (also streamed).
nct_md.md.zmatrix
    Z-matrices from a topology's bond graph (for internal-coordinate layers).
nct_md.md.choices
    Names of force fields, solvents, constraints, ensembles (plain data, no OpenMM import).
nct_md.md.system
    OpenMM Systems: force fields, implicit solvent, TIP3P water in a periodic box (PME).
nct_md.md.simulate
    OpenMM Langevin simulations written as mdtraj HDF5 with velocities (``nct-md simulate``).

This package knows nothing about neural networks.
"""
