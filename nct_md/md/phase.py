"""Phase-space data from MD frames: the builders from trajectories and files.

from_trajectories(trajs, ...), load_phase_space(paths, ...), iter_phase_space(paths, ...)
    Build :class:`~nct_md.md.data.PhaseSpaceData` from chunks or trajectories held in memory,
    from files, or chunk by chunk for files larger than memory. Positions and momenta go
    through one :class:`~nct_md.md.frame.EckartFrame` (superposition on the reference, rigid-body
    directions removed; see :mod:`nct_md.md.frame` for the conventions).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from nct_md.errors import NCTInputError
from nct_md.md import io
from nct_md.md.chunk import Chunk
from nct_md.md.data import UNITS, PhaseSpaceData
from nct_md.md.frame import EckartFrame, center, choose_reference
from nct_md.md.thermo import atom_masses, check_temperature
from nct_md.model_info import DataInfo


def _n_constrained(topology: md.Topology, constraints: str | None) -> int | None:
    """Number of bonds to hydrogen inside the topology when ``constraints`` is 'hbonds'."""
    if constraints is None:
        return None
    if constraints.lower() != "hbonds":
        return 0
    hydrogen = md.element.hydrogen
    return sum(1 for a, b in topology.bonds if hydrogen in (a.element, b.element))


def _reference_xyz(reference: md.Trajectory | np.ndarray | str | Path, atoms: np.ndarray,
                   n_total: int) -> np.ndarray:
    """Reference coordinates ``(N, 3)`` of the selected atoms from a frame, array or PDB path."""
    if isinstance(reference, str | Path):
        reference = md.load_frame(str(reference), 0)
    xyz = reference.xyz[0] if isinstance(reference, md.Trajectory) else np.asarray(reference)
    if xyz.ndim == 3:
        xyz = xyz[0]
    if xyz.shape == (n_total, 3) and n_total != len(atoms):
        xyz = xyz[atoms]
    if xyz.shape != (len(atoms), 3):
        raise NCTInputError(
            f"reference has {xyz.shape[0]} atoms, expected {len(atoms)} (the selection) or "
            f"{n_total} (the topology); pass a reference frame of the same molecule"
        )
    if not np.isfinite(xyz).all():
        raise NCTInputError("reference structure has NaN or infinite coordinates; fix it")
    return xyz


def _as_chunks(trajs: Chunk | md.Trajectory | Sequence[Chunk | md.Trajectory]) -> list[Chunk]:
    """Chunks as given; a plain trajectory becomes one of all its atoms without velocities."""
    items = [trajs] if isinstance(trajs, Chunk | md.Trajectory) else list(trajs)
    return [item if isinstance(item, Chunk) else
            Chunk(item, None, np.arange(item.n_atoms, dtype=np.int64), "all", k)
            for k, item in enumerate(items)]


def _selection(chunks: Sequence[Chunk], select: str | Sequence[int]
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """(indices into the chunks' atoms, indices into the files' atoms, selection label)."""
    first = chunks[0].traj
    for chunk in chunks[1:]:
        if chunk.traj.n_atoms != first.n_atoms:
            raise NCTInputError(
                f"trajectories have different numbers of atoms ({first.n_atoms} and "
                f"{chunk.traj.n_atoms}); use one topology and selection for all files"
            )
    atoms = io.resolve_selection(first.topology, select)
    file_atoms = np.asarray(chunks[0].atom_indices)[atoms]
    label = select if isinstance(select, str) else "indices"
    previous = chunks[0].selection
    if previous != "all":
        label = previous if label == "all" else f"({previous}) and ({label})"
    return atoms, file_atoms, label


def _data_info(label: str, constraints: str | None, topology: md.Topology, n_dof: int,
               n_rigid: int, momenta: str, reference_source: str) -> DataInfo:
    return DataInfo(
        selection=label,
        constraints=constraints,
        n_constrained_in_selection=_n_constrained(topology, constraints),
        momenta=momenta,
        n_dof=n_dof,
        rigid_body_dims=n_rigid,
        frame="mass-weighted Kabsch superposition on the reference (Eckart frame)",
        reference=reference_source,
        units=dict(UNITS),
    )


def from_trajectories(trajs: Chunk | md.Trajectory | Sequence[Chunk | md.Trajectory],
                      select: str | Sequence[int] = "all", temperature: float = 300.0,
                      reference: md.Trajectory | np.ndarray | str | Path | None = None,
                      velocities: str | Sequence[np.ndarray] | None = "auto",
                      constraints: str | None = None,
                      generator: torch.Generator | None = None,
                      weights: np.ndarray | None = None) -> PhaseSpaceData:
    """Build :class:`PhaseSpaceData` from trajectories held in memory.

    Parameters
    ----------
    trajs : Chunk, mdtraj.Trajectory or sequence of them
        One per trajectory (e.g. the chunks of :func:`nct_md.md.io.load`); never concatenated.
    select : str or sequence of int
        Atom selection applied to the trajectories' topology (see
        :func:`nct_md.md.io.resolve_selection`), on top of the chunks' own selection.
    temperature : float
        Temperature of the data in K (for Maxwell-Boltzmann momenta and the model's kT).
    reference : mdtraj.Trajectory, ndarray ``(N, 3)`` nm, PDB path or None
        Structure to superpose on; None picks the frame closest to the mean structure
        (:func:`choose_reference`).
    velocities : "auto", sequence of ndarray or None
        "auto" uses the chunks' velocities when every trajectory has them and no ``weights``
        are given (biased frames get Maxwell-Boltzmann momenta: a bias acts on positions only);
        a sequence gives ``(n_frames, n_atoms, 3)`` nm/ps arrays per trajectory; None ignores
        velocities and draws Maxwell-Boltzmann momenta.
    constraints : str, optional
        Constraints of the simulation ("hbonds", "none"), recorded in ``info``.
    generator : torch.Generator, optional
        For Maxwell-Boltzmann draws.
    weights : ndarray ``(n_frames,)``, optional
        Per-frame weights of biased sampling, all trajectories concatenated in order
        (:attr:`PhaseSpaceData.weights`: checked, normalised to mean 1).
    """
    chunks = _as_chunks(trajs)
    if not chunks:
        raise NCTInputError("no trajectories given; pass at least one")
    check_temperature(temperature)
    atoms, file_atoms, label = _selection(chunks, select)
    trajs = [chunk.traj for chunk in chunks]
    topology = trajs[0].topology.subset(atoms)
    masses = atom_masses(topology)
    if velocities == "auto":
        found = [chunk.velocities for chunk in chunks]
        velocities = None if weights is not None or any(v is None for v in found) else found
    elif velocities is not None and len(velocities) != len(trajs):
        raise NCTInputError(f"got {len(velocities)} velocity arrays for {len(trajs)} trajectories")
    for k, traj in enumerate(trajs):
        if len(traj) == 0:
            raise NCTInputError(f"trajectory {k} has no frames; drop it or check the file")
        if not np.isfinite(traj.xyz).all():
            raise NCTInputError(f"trajectory {k} has NaN or infinite coordinates; remove them")
    if reference is None:
        ref_xyz = choose_reference(trajs[0].xyz[:, atoms], masses)
        source = "frame closest to the mean structure of trajectory 0"
    else:
        ref_xyz = _reference_xyz(reference, atoms, trajs[0].n_atoms)
        source = "given"
    frame = EckartFrame(center(ref_xyz, masses)[0], masses)
    qs, ps = [], []
    for k, traj in enumerate(trajs):
        q, rotations = frame.positions(traj.xyz[:, atoms])
        qs.append(torch.from_numpy(q.astype(np.float32)))
        if velocities is not None:
            v = np.asarray(velocities[k])
            if v.ndim == 3 and v.shape[1] == traj.n_atoms:
                v = v[:, atoms]
            if v.shape != (len(traj), len(atoms), 3) or not np.isfinite(v).all():
                raise NCTInputError(
                    f"velocities of trajectory {k} have shape {v.shape} or non-finite values; "
                    f"expected finite ({len(traj)}, {len(atoms)}, 3) in nm/ps"
                )
            ps.append(torch.from_numpy(frame.momenta(v, rotations).astype(np.float32)))
    lengths = [len(t) for t in trajs]
    q_all = torch.cat(qs)
    data = PhaseSpaceData(
        q=q_all, p=torch.cat(ps) if ps else torch.zeros_like(q_all), masses=masses,
        times=np.concatenate([np.asarray(t.time, dtype=np.float64) for t in trajs]),
        boundaries=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        atom_indices=file_atoms, atom_names=[f"{a.residue}-{a.name}" for a in topology.atoms],
        topology=topology, reference=frame.reference, temperature=float(temperature),
        has_velocities=velocities is not None,
        info=_data_info(label, constraints, topology, frame.n_dof, frame.rigid.shape[1],
                        "velocities" if velocities is not None else "maxwell-boltzmann", source),
        weights=weights,
    )
    if velocities is None:
        data.resample_momenta(generator)
    return data


def _provenance(paths: Sequence[str | Path], temperature: float | None
                ) -> tuple[float, str | None]:
    """Temperature and constraints from ``nct-md simulate`` files (explicit temperature wins)."""
    infos = [io.read_provenance(p) for p in paths]
    if temperature is None:
        found = {info.get("temperature") for info in infos}
        if len(found) != 1 or None in found:
            raise NCTInputError(
                "the data's temperature is unknown (files not written by nct-md simulate, or "
                "different temperatures); pass temperature= / --temperature in K"
            )
        temperature = float(found.pop())
    constraints = {info.get("constraints") for info in infos}
    return float(temperature), constraints.pop() if len(constraints) == 1 else None


def load_phase_space(paths: str | Path | Sequence[str | Path],
                     top: str | Path | md.Topology | None = None,
                     select: str | Sequence[int] = "all", temperature: float | None = None,
                     stride: int = 1, reference: md.Trajectory | np.ndarray | str | None = None,
                     velocities: bool = True, dt_ps: float | None = None,
                     generator: torch.Generator | None = None,
                     weights: np.ndarray | None = None) -> PhaseSpaceData:
    """Read files and build :class:`~nct_md.md.data.PhaseSpaceData` (``io.load`` +
    :func:`from_trajectories`).

    ``temperature`` and the constraints default to what ``nct-md simulate`` stored in the files;
    ``velocities=False`` ignores stored velocities; ``weights`` (one per frame after
    ``stride``) mark biased frames. Other parameters as in :func:`io.load` and
    :func:`from_trajectories`.
    """
    paths = io.as_paths(paths)
    temperature, constraints = _provenance(paths, temperature)
    check_temperature(temperature)
    chunks = io.load(paths, top, select=select, stride=stride, dt_ps=dt_ps)
    return from_trajectories(chunks, "all", temperature, reference,
                             "auto" if velocities else None, constraints, generator, weights)


def iter_phase_space(paths: str | Path | Sequence[str | Path],
                     top: str | Path | md.Topology | None = None,
                     select: str | Sequence[int] = "all", temperature: float | None = None,
                     reference: md.Trajectory | np.ndarray | str | None = None,
                     chunk: int = 10_000, stride: int = 1, velocities: bool = True,
                     dt_ps: float | None = None, generator: torch.Generator | None = None
                     ) -> Iterator[tuple[int, PhaseSpaceData]]:
    """Stream :class:`~nct_md.md.data.PhaseSpaceData` chunk by chunk (memory bounded by
    ``chunk``).

    Every chunk uses the same reference (given, or chosen from the first chunk), so chunks can
    be combined. Yields ``(traj_index, chunk_data)``; each chunk lies inside one trajectory
    (``chunk_data.boundaries == [0, len(chunk_data)]``) and its ``times`` continue the file's.
    """
    paths = io.as_paths(paths)
    temperature, constraints = _provenance(paths, temperature)
    check_temperature(temperature)
    frame = topology = masses = None
    for part in io.iterload(paths, top, select, chunk=chunk, stride=stride, dt_ps=dt_ps):
        traj = part.traj
        if frame is None:
            topology = traj.topology
            masses = atom_masses(topology)
            ref_xyz = (choose_reference(traj.xyz, masses) if reference is None
                       else _reference_xyz(reference, part.atom_indices,
                                           io.load_topology(top, paths).n_atoms))
            frame = EckartFrame(center(ref_xyz, masses)[0], masses)
        q, rotations = frame.positions(traj.xyz)
        use_v = velocities and part.velocities is not None
        data = PhaseSpaceData(
            q=torch.from_numpy(q.astype(np.float32)),
            p=(torch.from_numpy(frame.momenta(part.velocities, rotations).astype(np.float32))
               if use_v else torch.zeros(q.shape, dtype=torch.float32)),
            masses=masses, times=part.times, boundaries=np.array([0, len(traj)], dtype=np.int64),
            atom_indices=part.atom_indices,
            atom_names=[f"{a.residue}-{a.name}" for a in topology.atoms], topology=topology,
            reference=frame.reference, temperature=temperature, has_velocities=use_v,
            info=_data_info(part.selection, constraints, topology, frame.n_dof,
                            frame.rigid.shape[1], "velocities" if use_v else "maxwell-boltzmann",
                            "given" if reference is not None else "from the first chunk"),
        )
        if not use_v:
            data.resample_momenta(generator)
        yield part.traj_index, data
