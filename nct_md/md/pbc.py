"""Periodic boundaries: make the selected atoms whole before anything else sees them.

MD engines (GROMACS, AMBER, NAMD, OpenMM) often write each atom wrapped into the unit cell, so a
molecule can be split across the box. Superposing such a frame gives meaningless coordinates.
The readers of :mod:`nct_md.md.io` therefore pass every chunk through :class:`Wholeness`:

1. From the full topology's bond graph, a spanning tree over the *selected* atoms is built once:
   each selected atom hangs from its nearest selected ancestor in a breadth-first search of its
   molecule (for a ``name CA`` selection, CA(i) hangs from CA(i-1) three bonds away). Selected
   atoms of different molecules are tied root to root, so a complex stays together.
2. When a chunk stores a unit cell, atoms are placed along the tree at the minimum image of their
   parent (mdtraj's ``make_molecules_whole`` with these edges; triclinic cells included).
3. Every frame is checked: a tree edge longer than :data:`NM_PER_BOND` per bond on its path means
   a broken molecule (no box stored, or a box too small), and the frame is refused.

Requirement: each tree edge is shorter than half the box, which holds for any box larger than
the molecule's bonds (a few tenths of a nm), whatever the molecule's size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import mdtraj as md
import numpy as np

from nct_md.errors import NCTInputError

#: Longest distance in nm per bond along a tree edge before a frame counts as broken (the
#: longest covalent bonds, S-S, are 0.21 nm).
NM_PER_BOND = 0.25


@dataclass(frozen=True)
class Wholeness:
    """The spanning tree of a selection and what it needs to make frames whole.

    Attributes
    ----------
    edges : ndarray of int32, shape ``(m, 2)``
        ``(parent, child)`` pairs in selection indices (0..n_selected-1), parents placed first.
    max_length : ndarray of float, shape ``(m,)``, nm
        Longest acceptable length of each edge; ``inf`` for ties between molecules.
    """

    edges: np.ndarray
    max_length: np.ndarray

    @classmethod
    def of(cls, topology: md.Topology, atoms: np.ndarray) -> Wholeness:
        """Build the tree for ``atoms`` (indices into ``topology``, sorted) from its bonds."""
        selected = {int(a): k for k, a in enumerate(atoms)}
        neighbours: dict[int, list[int]] = {}
        for a, b in topology.bonds:
            neighbours.setdefault(a.index, []).append(b.index)
            neighbours.setdefault(b.index, []).append(a.index)
        edges, limits, seen, roots = [], [], set(), []
        for start in selected:
            if start in seen:
                continue
            if roots:  # a new molecule: tie its first selected atom to the previous one's
                edges.append((selected[roots[-1]], selected[start]))
                limits.append(np.inf)
            roots.append(start)
            seen.add(start)
            # queue items: (atom, nearest selected ancestor, bonds from it)
            queue = deque([(start, start, 0)])
            while queue:
                atom, anchor, hops = queue.popleft()
                for nxt in neighbours.get(atom, ()):
                    if nxt in seen:
                        continue
                    seen.add(nxt)
                    if nxt in selected:
                        edges.append((selected[anchor], selected[nxt]))
                        limits.append(NM_PER_BOND * (hops + 1))
                        queue.append((nxt, nxt, 0))
                    else:
                        queue.append((nxt, anchor, hops + 1))
        return cls(np.asarray(edges, dtype=np.int32).reshape(-1, 2),
                   np.asarray(limits, dtype=np.float64))

    def apply(self, traj: md.Trajectory, source: str, first_frame: int, stride: int) -> None:
        """Make ``traj`` (selected atoms only) whole in place and refuse broken frames.

        Parameters
        ----------
        traj : mdtraj.Trajectory
            A chunk of the selected atoms; its unit cell (if any) is used.
        source : str
            The file name, for the error message.
        first_frame, stride : int
            Frame number of ``traj[0]`` in the file and the stride, for the error message.
        """
        if not len(self.edges):
            return
        if traj.unitcell_vectors is not None and np.all(traj.unitcell_lengths > 0):
            traj.make_molecules_whole(inplace=True, sorted_bonds=self.edges)
        parent, child = self.edges[:, 0], self.edges[:, 1]
        lengths = np.linalg.norm(traj.xyz[:, child] - traj.xyz[:, parent], axis=-1)
        broken = lengths > self.max_length
        if broken.any():
            frame, edge = np.unravel_index(int(np.argmax(broken)), broken.shape)
            atom_a = traj.topology.atom(int(parent[edge]))
            atom_b = traj.topology.atom(int(child[edge]))
            fix = ("its box is smaller than the molecule's bonds; check the unit cell"
                   if traj.unitcell_vectors is not None else
                   "the file stores no unit cell to repair it; write molecules whole (e.g. "
                   "gmx trjconv -pbc mol) or use a format that stores the box (XTC, DCD, HDF5)")
            raise NCTInputError(
                f"'{source}' frame {(first_frame + int(frame)) * stride}: {atom_a} and {atom_b} "
                f"are {lengths[frame, edge]:.2f} nm apart, so the molecule is broken across a "
                f"periodic boundary, and {fix}"
            )
