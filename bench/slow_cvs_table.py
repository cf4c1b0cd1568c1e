"""The README's slow-CV table, rendered from ``bench/slow_cvs_results.jsonl``.

One row per (set, method): the held-out scores of :mod:`bench.bench_slow_cvs` as the minimum
over seeds (the acceptance reads minima) with the median in brackets, and the median training
wall time; and (:func:`lag_table`) the discretised VAMP-2 at every scoring lag of the rows that
have one. The last record of each (set, method, seed) counts. ``python -m bench.slow_cvs_table``
prints the markdown of both; a test checks that the README holds exactly this text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("slow_cvs_results.jsonl")
METHODS = {"nct": "NCT, `nct-md train` defaults", "tica": "TICA (deeptime)",
           "deep_tica": "Deep-TICA (mlcolvar)", "vampnet": "VAMPnet (deeptime)"}
SETS = {"ala2": "alanine dipeptide, shipped (velocities)",
        "ala2-positions": "alanine dipeptide, shipped, positions only",
        "ala2-amber14-vacuum": "alanine dipeptide, amber14 vacuum, positions only",
        "ala3-amber14-obc2": "capped tri-alanine, amber14 + OBC2, positions only"}


def latest(path: Path = RESULTS) -> dict[tuple[str, str], list[dict]]:
    """``(set, method) -> rows``, the last row of each seed."""
    rows: dict[tuple[str, str, int], dict] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows[row["set"], row["method"], row["seed"]] = row
    out: dict[tuple[str, str], list[dict]] = {}
    for (name, method, _), row in sorted(rows.items()):
        out.setdefault((name, method), []).append(row)
    return out


def _cell(values: list[float], digits: int = 3) -> str:
    """``min (median)`` of ``values``; a single value alone."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{min(values):.{digits}f} ({np.median(values):.{digits}f})"


def table(path: Path = RESULTS) -> str:
    """The markdown table of every (set, method) in ``path``."""
    lines = ["| data (held-out trajectories) | method | seeds | basin accuracy | MI(CV, Phi) "
             "nats | MI(CV, Psi) nats | discretised VAMP-2 | training (s) |",
             "|---|---|---|---|---|---|---|---|"]
    groups = latest(path)
    for name in SETS:
        for method in METHODS:
            rows = groups.get((name, method))
            if not rows:
                continue
            has_basins = "basin_accuracy" in rows[0]
            cells = [SETS[name], METHODS[method], ",".join(str(r["seed"]) for r in rows),
                     _cell([r["basin_accuracy"] for r in rows]) if has_basins else "-",
                     _cell([max(r["mi_phi"]) for r in rows], 2) if has_basins else "-",
                     _cell([max(r["mi_psi"]) for r in rows], 2) if has_basins else "-",
                     _cell([r["vamp2_discrete"] for r in rows]),
                     f"{np.median([r['train_s'] for r in rows]):.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lag_table(path: Path = RESULTS) -> str:
    """The markdown table of discretised VAMP-2 by scoring lag (minimum over seeds, median in
    brackets, 4 decimals), with TICA of the backbone torsions where it was scored."""
    groups = latest(path)
    lags = next((list(rows[0]["vamp2_discrete_by_lag"]) for rows in groups.values()
                 if "vamp2_discrete_by_lag" in rows[0]), [])
    lines = ["| data (held-out trajectories) | method | seeds | "
             + " | ".join(f"{lag} ps" for lag in lags) + " |", "|---|---|---|" + "---|" * len(lags)]
    for name in SETS:
        for method in METHODS:
            rows = [r for r in groups.get((name, method), []) if "vamp2_discrete_by_lag" in r]
            variants = [(METHODS[method], "vamp2_discrete_by_lag")]
            if rows and "torsion_tica_vamp2_discrete_by_lag" in rows[0]:
                variants.append(("TICA of backbone sin/cos", "torsion_tica_vamp2_discrete_by_lag"))
            for label, key in variants if rows else []:
                cells = [SETS[name], label, ",".join(str(r["seed"]) for r in rows)]
                cells += [_cell([r[key][lag] for r in rows], 4) for lag in lags]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
    print()
    print(lag_table())
