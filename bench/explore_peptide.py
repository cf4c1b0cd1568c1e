"""The exploration loop on a peptide whose slow process nobody named (issue 14, the larger
peptide), beside plain MD from the same start.

The start is the first ``--start-ns`` of a plain MD trajectory of the peptide (positions only:
the loop draws Maxwell-Boltzmann momenta), refused if any residue has a frame with Phi > 0
in it. ``nct-md explore`` (:func:`nct_md.explore.explore`, its defaults unless given) runs
``--iterations`` rounds of ``--ns-per-iteration`` ns of metadynamics from there. Plain MD of
the same length is the same trajectory continued: its frames after the start window, up to
the loop's biased length, from the same start and seed (the trajectory must be long enough).

Reported per residue: the first visit of the positive Phi core (0.3 < Phi < 2.0 rad;
cumulative biased ps in the loop, ps after the start window in plain MD) and of each
Ramachandran basin, and committed Phi transitions of plain MD; per iteration: the frames the
round's model flags out of distribution and the new generic states (no torsion used).

Run ``python -m bench.explore_peptide --trajectory TRAJ.h5 --pdb PDB [--forcefield amber14]
[--solvent obc] [--start-ns 2] [--iterations 3] [--ns-per-iteration 0.5] [--seed 0]
[--train KEY=VALUE ...] [--out bench/out/explore_peptide.json]``; the loop's folder is OUT
without .json, plus -runs.
The held-out tri-alanine set of :mod:`bench.datasets` (amber14 + OBC2) is the intended input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from bench import provenance
from bench.bench_explore import key_values
from nct_md.cv.reference import committed_transitions, phi_core, phi_psi_pairs
from nct_md.errors import NCTInputError
from nct_md.explore import explore


def residue_phi(traj: md.Trajectory) -> tuple[list[str], np.ndarray]:
    """Names and Phi ``(n_frames, n_residues)`` (rad) of the residues with Phi and Psi, in the
    order :func:`nct_md.explore.states.backbone_basins` reports them."""
    phis = [phi for phi, _ in phi_psi_pairs(traj.topology)]
    names = [str(traj.topology.atom(int(a[2])).residue) for a in phis]
    return names, md.compute_dihedrals(traj, np.asarray(phis)).astype(np.float64)


def plain_measures(phi: np.ndarray, names: list[str], save_every_ps: float) -> list[dict]:
    """Per residue of a plain MD continuation: first positive-core visit (ps after its start)
    and committed Phi transitions."""
    out = []
    for name, column in zip(names, phi.T, strict=True):
        hits = np.flatnonzero(phi_core(column) == 1)
        out.append({"residue": name, "committed_transitions": committed_transitions(column),
                    "phi_positive_core_first_visit_ps":
                        float((hits[0] + 1) * save_every_ps) if len(hits) else None})
    return out


def run(args: argparse.Namespace) -> dict:
    """Start window, loop, plain continuation; writes ``args.out``."""
    traj = md.load(str(args.trajectory))
    save_every_ps = float(np.median(np.diff(traj.time)))
    n_start = round(1000.0 * args.start_ns / save_every_ps)
    n_plain = round(1000.0 * args.iterations * args.ns_per_iteration / save_every_ps)
    if len(traj) < n_start + n_plain:
        raise NCTInputError(f"{args.trajectory} holds {len(traj)} frames; the start and its "
                            f"plain continuation need {n_start + n_plain}")
    names, phi = residue_phi(traj)
    if np.any(phi[:n_start] > 0):
        raise NCTInputError(f"the first {args.start_ns} ns of {args.trajectory} already visit "
                            "Phi > 0; choose another trajectory or a shorter --start-ns")
    args.work.mkdir(parents=True)
    start = args.work / "start.h5"
    traj[:n_start].save_hdf5(str(start))
    records = explore(args.pdb, args.work / "loop", forcefield=args.forcefield,
                      solvent=args.solvent, temperature=args.temperature, start=[start],
                      iterations=args.iterations, ns_per_iteration=args.ns_per_iteration,
                      seed=args.seed, train=args.train,
                      simulation={"save_every_ps": save_every_ps},
                      progress=False)
    loop = [{"iteration": r["iteration"], "ns": r["ns"], "ood": r["ood"],
             "n_new_states": r["states"] and r["states"]["n_new"],
             "n_visited_states": r["states"] and r["states"]["n_visited"],
             "residues": {res["residue"]: {
                 "phi_positive_core_first_visit_biased_ps":
                     res["phi_positive_core_first_visit_biased_ps"],
                 "basin_first_visit_biased_ps": res["basin_first_visit_biased_ps"]}
                 for res in r["residues"]},
             "metad": r.get("metad"), "wall_s": r["wall_s"]} for r in records]
    plain = plain_measures(phi[n_start:n_start + n_plain], names, save_every_ps)
    commit = provenance.commit()
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    out = {"settings": settings | {"commit": commit, "save_every_ps": save_every_ps},
           "loop": loop, "plain": {"ns": n_plain * save_every_ps / 1000.0, "residues": plain}}
    out["table"] = table(out, names)
    provenance.write_record(args.out, out)
    return out


def table(result: dict, names: list[str]) -> str:
    """Markdown: per iteration, each residue's first positive-core visit and the OOD and new
    state counts; a last row for plain MD."""
    def ps(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    lines = [f"| run | biased ns | {' | '.join(f'{n}: first Phi>0 core, ps' for n in names)} | "
             "frames flagged OOD | new states |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for it in result["loop"]:
        firsts = [ps(it["residues"][n]["phi_positive_core_first_visit_biased_ps"])
                  for n in names]
        ood = "-" if it["ood"] is None else f"{it['ood']['n_flagged']} / {it['ood']['n_frames']}"
        new = "-" if it["n_new_states"] is None else str(it["n_new_states"])
        lines.append(f"| loop, iteration {it['iteration']} | {it['ns']['biased_total']:g} | "
                     f"{' | '.join(firsts)} | {ood} | {new} |")
    plain = result["plain"]
    firsts = [f"{ps(r['phi_positive_core_first_visit_ps'])} ({r['committed_transitions']} "
              "transitions)" for r in plain["residues"]]
    lines.append(f"| plain MD, same start, {plain['ns']:g} ns more | 0 | {' | '.join(firsts)} "
                 "| - | - |")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectory", type=Path, required=True)
    parser.add_argument("--pdb", type=Path, required=True)
    parser.add_argument("--forcefield", default="amber14")
    parser.add_argument("--solvent", default="obc", choices=["obc", "vacuum"])
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--start-ns", type=float, default=2.0)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--ns-per-iteration", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", nargs="+", default=[], metavar="KEY=VALUE",
                        help="NCT settings of the loop, e.g. epochs=2 restarts=1")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "out" / "explore_peptide.json")
    args = parser.parse_args(argv)
    args.train = key_values(args.train)
    args.work = args.out.with_name(args.out.stem + "-runs")
    provenance.refuse_existing(args.out, "--out")
    provenance.refuse_existing(args.work, "--out (its run folder is OUT-runs)")
    return args


def main(argv: list[str] | None = None) -> dict:
    torch.set_num_threads(1)
    out = run(parse(sys.argv[1:] if argv is None else argv))
    print(out["table"])
    return out


if __name__ == "__main__":
    main()
