"""Reading MD trajectories: every format mdtraj reads, one trajectory per file, streamed in chunks.

Public API
----------
load(paths, top, select, stride)
    Whole files in memory, one :class:`~nct_md.md.chunk.Chunk` per file (never concatenated).
iterload(paths, top, select, chunk, stride)
    The same frames, streamed as :class:`~nct_md.md.chunk.Chunk` records for files larger than
    memory.
resolve_selection(topology, select)
    Atom indices for an mdtraj selection string or one of the shortcuts ``all``, ``heavy``,
    ``backbone``.
read_provenance(path)
    The settings ``nct-md simulate`` stored in an HDF5 trajectory (empty dict otherwise).

Chunks
------
The atoms are selected once, here. Every :class:`~nct_md.md.chunk.Chunk` holds the
``mdtraj.Trajectory`` of the selected atoms (``traj``), their ``velocities`` (an
``(n_frames, n_selected_atoms, 3)`` float32 array in nm/ps when the file stores velocities, as
mdtraj HDF5 written by ``nct-md simulate`` does, otherwise ``None``), ``atom_indices`` (the
selected atoms' indices in the file's topology), ``selection`` (the selection string) and
``traj_index`` (the file's position in the list read).

Periodic boxes
--------------
Every chunk of the selected atoms is made whole across periodic boundaries (bonds from the
topology, the file's unit cell) before it is returned, and frames whose molecule is still broken
are refused (:mod:`nct_md.md.pbc`); atoms wrapped into the box one by one, as GROMACS, AMBER and
NAMD often write them, therefore give the same frames as whole molecules.

Times are in ps as stored in the file (HDF5, XTC, TRR, NetCDF, GRO); DCD times come from the
header's time step, first step and save interval. Formats that store no time (XYZ, mdcrd, PDB)
get ``time = NaN``, never frame numbers; pass ``dt_ps`` to set ``time = frame_number * dt_ps``
(it overrides stored times too).

Streaming (bounded memory) is native for HDF5, DCD, XTC, TRR, NetCDF, XYZ and mdcrd; the other
formats (PDB, GRO, ...) are read whole and then cut into chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import mdtraj as md
import numpy as np
import tables
from mdtraj.formats.registry import FormatRegistry

from nct_md.errors import NCTInputError
from nct_md.md.chunk import Chunk
from nct_md.md.formats import (
    HDF5,
    TOPOLOGY_EXTS,
    dcd_header,
    n_atoms_in_file,
    read_chunks,
)
from nct_md.md.pbc import Wholeness

PathLike = str | Path

#: Selection shortcuts, as mdtraj selection strings (``heavy`` also drops virtual sites);
#: ``heavy`` and ``solute`` also drop the solvent (see :func:`solvent_atoms`).
SHORTCUTS = {
    "all": "all",
    "heavy": "not element H and mass > 0.5",
    "solute": "all",
    "backbone": "backbone",
}
_WITHOUT_SOLVENT = {"heavy", "solute"}
#: Elements of single-atom residues counted as ions of the solvent.
_ION_ELEMENTS = {"Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Zn", "F", "Cl", "Br", "I"}

#: formats whose frames carry no time
_NO_TIMES = {".xyz", ".xyz.gz", ".mdcrd", ".crd", ".pdb", ".pdb.gz"}
#: what mdtraj's and PyTables' readers raise on truncated or corrupt files
_READ_ERRORS = (OSError, ValueError, RuntimeError, EOFError, KeyError, IndexError, AttributeError)
#: Name of the HDF5 root attribute that holds ``nct-md simulate`` settings as JSON.
PROVENANCE_ATTR = "nct_md_simulation"


def extension(path: PathLike) -> str:
    """Return the lower-case mdtraj extension of ``path`` (``.pdb.gz`` counts as one)."""
    name = Path(path).name.lower()
    suffixes = sorted(FormatRegistry.loaders, key=len, reverse=True)
    for suffix in suffixes:
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


def _check_file(path: PathLike, kinds: set[str] | None = None, what: str = "trajectory") -> str:
    """Raise NCTInputError unless ``path`` exists and has a readable extension; return it."""
    path = Path(path)
    if not path.is_file():
        raise NCTInputError(f"{what} file '{path}' not found; check the path")
    ext = extension(path)
    allowed = kinds if kinds is not None else set(FormatRegistry.loaders)
    if ext not in allowed:
        raise NCTInputError(
            f"unknown {what} extension '{ext or path.name}' for '{path}'; "
            f"use one of {', '.join(sorted(allowed))}"
        )
    return ext


def _one_line(exc: BaseException) -> str:
    """The first line of an exception message (C readers return long multi-line traces)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_topology(top: PathLike | md.Topology | md.Trajectory | None,
                  paths: Sequence[PathLike] = ()) -> md.Topology:
    """Return an mdtraj topology from ``top``, or from the first trajectory if ``top`` is None.

    Parameters
    ----------
    top : path, mdtraj.Topology, mdtraj.Trajectory or None
        Topology file (PDB, prmtop, psf, gro, HDF5, mol2, mmCIF, ...). ``None`` works when the
        first trajectory file carries its own topology (HDF5, PDB, GRO).
    paths : sequence of paths
        The trajectory files, used only when ``top`` is None.
    """
    if isinstance(top, md.Trajectory):
        return top.topology
    if isinstance(top, md.Topology):
        return top
    if top is None:
        if not paths or extension(paths[0]) not in TOPOLOGY_EXTS:
            raise NCTInputError(
                f"'{paths[0] if paths else '?'}' carries no topology; pass a topology file "
                "(PDB, prmtop, psf, gro, HDF5) with --top / top="
            )
        top = paths[0]
    ext = _check_file(top, TOPOLOGY_EXTS, what="topology")
    try:
        if ext in HDF5:  # without reading a frame, so that frame-less files get a clear error
            with md.formats.HDF5TrajectoryFile(str(top)) as handle:
                topology = handle.topology
            if topology is None:
                raise NCTInputError(f"'{top}' holds no topology; pass a topology file with --top")
            return topology
        return md.load_topology(str(top))
    except NCTInputError:
        raise
    except _READ_ERRORS as exc:
        raise NCTInputError(
            f"cannot read topology '{top}': {_one_line(exc)}; check that it is a valid file"
        ) from exc


def solvent_atoms(topology: md.Topology) -> np.ndarray:
    """Indices of water molecules and monatomic ions (``(n,)`` int64, sorted)."""
    return np.array([atom.index for residue in topology.residues
                     if residue.is_water or (residue.n_atoms == 1 and residue.atom(0).element
                                             is not None and residue.atom(0).element.symbol
                                             in _ION_ELEMENTS)
                     for atom in residue.atoms], dtype=np.int64)


def resolve_selection(topology: md.Topology, select: str | Sequence[int] | np.ndarray = "all",
                      min_atoms: int = 3) -> np.ndarray:
    """Atom indices picked by a selection.

    Parameters
    ----------
    topology : mdtraj.Topology
    select : str or sequence of int
        An mdtraj selection string (e.g. ``"resname ALA and not element H"``), one of the
        shortcuts ``all``, ``heavy`` (no hydrogens, virtual sites, water or monatomic ions),
        ``solute`` (everything but water and monatomic ions), ``backbone`` (mdtraj's protein
        backbone: N, CA, C, O), or explicit atom indices.
    min_atoms : int
        Fewest atoms accepted; 3 is the fewest with internal degrees of freedom left after
        removing rigid-body motion.

    Returns
    -------
    numpy.ndarray
        Sorted unique int64 atom indices, shape ``(n_selected,)``.
    """
    if isinstance(select, str):
        shortcut = select.strip().lower()
        expression = SHORTCUTS.get(shortcut, select)
        try:
            indices = topology.select(expression)
        except (ValueError, KeyError, TypeError, SyntaxError) as exc:
            raise NCTInputError(
                f"invalid atom selection '{select}': {_one_line(exc)}; use mdtraj's selection "
                "language or one of all, heavy, solute, backbone"
            ) from exc
        if shortcut in _WITHOUT_SOLVENT:
            indices = np.setdiff1d(indices, solvent_atoms(topology))
    else:
        indices = np.asarray(select, dtype=np.int64).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= topology.n_atoms):
            raise NCTInputError(
                f"atom indices must lie in [0, {topology.n_atoms}); got {indices.min()}.."
                f"{indices.max()}; check the selection against the topology"
            )
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    if indices.size == 0:
        raise NCTInputError(
            f"atom selection '{select}' matches no atom of the topology ({topology.n_atoms} atoms);"
            " check atom and residue names, e.g. select='heavy'"
        )
    if indices.size < min_atoms:
        raise NCTInputError(
            f"atom selection '{select}' leaves {indices.size} atom(s); at least {min_atoms} are "
            "needed for internal motion after rigid-body removal, select more atoms"
        )
    return indices


def _iter_file(path: PathLike, index: int, topology: md.Topology, atoms: np.ndarray,
               selection: str, chunk: int, stride: int, dt_ps: float | None, whole: Wholeness
               ) -> Iterator[Chunk]:
    """Validated chunks of file number ``index``, made whole."""
    path = Path(path)
    ext = _check_file(path)
    read_atoms = None if atoms.size == topology.n_atoms else atoms
    n_frames = 0
    announced, dcd_clock = dcd_header(path) if ext == ".dcd" else (0, None)
    clock = ((0.0, float(dt_ps)) if dt_ps is not None else
             (dcd_clock or (np.nan, np.nan)) if ext == ".dcd" else
             (np.nan, np.nan) if ext in _NO_TIMES else None)
    try:
        n_file = n_atoms_in_file(path, ext)
        if n_file is not None and n_file != topology.n_atoms:
            raise NCTInputError(
                f"'{path}' has {n_file} atoms but the topology has {topology.n_atoms}; "
                "use the topology the trajectory was written with"
            )
        for traj, velocities in read_chunks(path, ext, topology, read_atoms, chunk, stride):
            bad = ~np.isfinite(traj.xyz).all(axis=(1, 2))
            if velocities is not None:
                bad |= ~np.isfinite(velocities).all(axis=(1, 2))
            if bad.any():
                frame = (n_frames + int(np.argmax(bad))) * stride
                raise NCTInputError(
                    f"'{path}' frame {frame} has NaN or infinite coordinates or velocities; "
                    "remove the broken frames (the simulation probably blew up)"
                )
            whole.apply(traj, str(path), n_frames, stride)
            if clock is not None:
                traj.time = clock[0] + (n_frames + np.arange(len(traj))) * stride * clock[1]
            n_frames += len(traj)
            yield Chunk(traj, None if velocities is None else velocities.astype(np.float32),
                        atoms, selection, index)
    except NCTInputError:
        raise
    except _READ_ERRORS as exc:
        if "same atoms" in str(exc) or "xyz must be shape" in str(exc):
            raise NCTInputError(
                f"'{path}' does not match the topology ({topology.n_atoms} atoms); "
                "use the topology the trajectory was written with"
            ) from exc
        raise NCTInputError(
            f"cannot read '{path}' ({_one_line(exc)}); the file is truncated, corrupt or not "
            f"a {ext} file"
        ) from exc
    if n_frames == 0:
        raise NCTInputError(f"'{path}' has no frames; check that the simulation wrote output")
    if announced and n_frames != -(-announced // stride):
        raise NCTInputError(
            f"'{path}' is truncated: its header announces {announced} frames but "
            f"{n_frames * stride if stride == 1 else f'{n_frames} (stride {stride})'} were "
            "found; copy the file again or cut it to whole frames"
        )


def as_paths(paths: PathLike | Sequence[PathLike]) -> list[PathLike]:
    """One path or a sequence of paths, as a non-empty list."""
    listed = [paths] if isinstance(paths, str | Path) else list(paths)
    if not listed:
        raise NCTInputError("no trajectory files given; pass at least one file")
    return listed


def _check_reading(stride: int, chunk: int, dt_ps: float | None) -> None:
    """Raise NCTInputError for a non-positive stride, chunk or frame spacing."""
    if int(stride) != stride or stride < 1:
        raise NCTInputError(f"stride must be a positive integer, got {stride}")
    if int(chunk) != chunk or chunk < 1:
        raise NCTInputError(f"chunk must be a positive integer, got {chunk}")
    if dt_ps is not None and not (np.isfinite(dt_ps) and dt_ps > 0):
        raise NCTInputError(f"dt_ps must be a positive number of ps, got {dt_ps}")


def iterload(paths: PathLike | Sequence[PathLike],
             top: PathLike | md.Topology | md.Trajectory | None = None,
             select: str | Sequence[int] = "all", chunk: int = 10_000, stride: int = 1,
             dt_ps: float | None = None) -> Iterator[Chunk]:
    """Stream trajectories chunk by chunk, without ever holding a whole file in memory.

    Parameters
    ----------
    paths : path or sequence of paths
        Trajectory files in any mdtraj format; each file is one trajectory.
    top : path, mdtraj.Topology, mdtraj.Trajectory or None
        Topology for all files (None: taken from the first file if it carries one).
    select : str or sequence of int
        Atom selection (see :func:`resolve_selection`).
    chunk : int
        Frames per chunk (after striding).
    stride : int
        Keep every ``stride``-th frame of each file.
    dt_ps : float, optional
        Frame spacing in ps of the files; overrides the stored times.

    Yields
    ------
    Chunk
        The next chunk of file ``chunk.traj_index`` of ``paths``: selected atoms only, with
        their velocities (see the module docstring).
    """
    paths = as_paths(paths)
    _check_reading(stride, chunk, dt_ps)
    for path in paths:
        _check_file(path)
    topology = load_topology(top, paths)
    atoms = resolve_selection(topology, select)
    selection = select if isinstance(select, str) else "indices"
    whole = Wholeness.of(topology, atoms)
    for index, path in enumerate(paths):
        yield from _iter_file(path, index, topology, atoms, selection, int(chunk), int(stride),
                              dt_ps, whole)


def load(paths: PathLike | Sequence[PathLike],
         top: PathLike | md.Topology | md.Trajectory | None = None,
         select: str | Sequence[int] = "all", stride: int = 1,
         dt_ps: float | None = None) -> list[Chunk]:
    """Load trajectories, one :class:`~nct_md.md.chunk.Chunk` per file (never concatenated).

    Parameters are those of :func:`iterload` (without ``chunk``).

    Returns
    -------
    list of Chunk
        One per file: the selected atoms' trajectory (positions in nm, ``time`` in ps), their
        velocities (``(n_frames, n_atoms, 3)`` float32 nm/ps, or None when the file has none),
        ``atom_indices``, ``selection`` and ``traj_index``.
    """
    paths = as_paths(paths)
    chunks: list[list[Chunk]] = [[] for _ in paths]
    for part in iterload(paths, top, select, chunk=100_000, stride=stride, dt_ps=dt_ps):
        chunks[part.traj_index].append(part)
    loaded = []
    for parts in chunks:
        first = parts[0]
        traj = (first.traj if len(parts) == 1 else
                md.join([part.traj for part in parts], check_topology=False))
        velocities = [part.velocities for part in parts]
        loaded.append(Chunk(traj, None if any(v is None for v in velocities)
                            else np.concatenate(velocities), first.atom_indices,
                            first.selection, first.traj_index))
    return loaded


def read_provenance(path: PathLike) -> dict:
    """Settings stored by ``nct-md simulate`` in an HDF5 trajectory.

    Returns
    -------
    dict
        Keys such as ``temperature`` (K), ``constraints``, ``forcefield``, ``solvent``,
        ``timestep_fs``; empty for files not written by ``nct-md simulate``.
    """
    path = Path(path)
    if extension(path) not in HDF5 or not path.is_file():
        return {}
    try:
        with tables.open_file(str(path), "r") as handle:
            attrs = handle.root._v_attrs
            if PROVENANCE_ATTR not in attrs._v_attrnames:
                return {}
            raw = attrs[PROVENANCE_ATTR]
    except _READ_ERRORS:  # unreadable: the trajectory reader says so in its own words
        return {}
    return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
