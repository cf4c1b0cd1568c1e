"""Z-matrices from a topology's bond graph, for internal-coordinate layers.

zmatrix(topology)
    Rows ``(i, j, k, l)`` of atom indices in placement order: atom ``i`` at a bond from ``j``,
    an angle i-j-k and a torsion i-j-k-l. :class:`nct_md.flows.InternalCoordinates` takes these
    rows as a plain int array.
"""

from __future__ import annotations

from collections import deque

import mdtraj as md
import numpy as np


def zmatrix(topology: md.Topology) -> np.ndarray:
    """A Z-matrix ``(N, 4)`` of atom indices ``(i, j, k, l)`` from the bond graph.

    Rows are in placement order, breadth first from the heavy atom at the graph's centre,
    heavy atoms before hydrogens. Row 0 holds the root (``j, k, l = -1``), row 1 its first
    neighbour (``k, l = -1``), row 2 needs no torsion (``l = -1``). ``j`` is the atom's bonded
    parent and ``k`` the parent's parent (or an earlier neighbour of a root parent); ``l`` is an
    earlier sibling when there is one, so that e.g. the second and third methyl hydrogens have
    torsions near +-120 degrees about the C-X bond and only the first carries the rotation.
    """
    n = topology.n_atoms
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in topology.bonds:
        neighbours[a.index].append(b.index)
        neighbours[b.index].append(a.index)
    heavy = np.array([a.element is None or a.element.symbol != "H" for a in topology.atoms])
    for i in range(n):
        neighbours[i].sort(key=lambda k: (not heavy[k], k))

    def bfs(root: int) -> tuple[list[int], list[int]]:
        order, parent, seen = [root], [-1] * n, {root}
        queue = deque([root])
        while queue:
            a = queue.popleft()
            for b in neighbours[a]:
                if b not in seen:
                    seen.add(b)
                    parent[b] = a
                    order.append(b)
                    queue.append(b)
        return order, parent

    if n < 4:
        raise ValueError("internal coordinates need at least 4 atoms")
    candidates = [i for i in range(n) if heavy[i]] or list(range(n))
    depth = {}
    for i in candidates:
        order, parent = bfs(i)
        if len(order) != n:
            raise ValueError("the bond graph is not connected: internal coordinates need one "
                             "molecule with bonds (a topology from a PDB with CONECT or "
                             "standard residues)")
        levels = [0] * n
        for a in order[1:]:
            levels[a] = levels[parent[a]] + 1
        depth[i] = max(levels)
    root = min(candidates, key=lambda i: (depth[i], i))
    order, parent = bfs(root)
    placed: list[int] = []
    rows = []
    for i in order:
        j = parent[i]
        k = t = -1
        if j >= 0:
            k = parent[j] if parent[j] >= 0 else next(
                (a for a in placed if a in neighbours[j] and a != i), -1)
        if len(placed) >= 3:
            siblings = [a for a in placed if parent[a] == j and a not in (i, k)]
            if siblings:
                t = siblings[0]
            else:
                t = next(a for a in placed if a not in (i, j, k)
                         and (a in neighbours[k] or a in neighbours[j]))
        rows.append((i, j, k, t))
        placed.append(i)
    return np.asarray(rows, dtype=np.int64)
