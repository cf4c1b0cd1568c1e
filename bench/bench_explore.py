"""The exploration loop beside TICA CVs, metadynamics on (Phi, Psi) and plain MD.

Side by side: the NCT explore loop, the same loop with TICA CVs, metadynamics on (Phi, Psi),
and plain MD, from the same starts and seeds (issue 14, deliverable 4 and its acceptance).

Per seed ``S``, every arm starts from the same plain MD (``--plain-ns`` ns from the PDB, seed
``S``; no Phi > 0 frame expected) and runs ``--iterations`` x ``--ns-per-iteration`` ns biased:

- ``nct``: :func:`nct_md.explore.explore` on that start (``--train`` settings, metadynamics
  defaults of :func:`nct_md.export.metad.run_metadynamics`; iteration ``i`` seed ``S + i``);
- ``tica``: the same loop with 2 TICA components of the superposed heavy atoms as CVs
  (:mod:`bench.explore_arms`; the same height, bias factor and pace, the bias every step;
  seed ``S + i``);
- ``ideal``: one well-tempered metadynamics run on (Phi, Psi) of the same biased length
  (height 1.2 kJ/mol, width 0.35 rad, bias factor 6, pace 1 ps; seed ``S + 1``);
- ``plain``: plain MD from the PDB with seed ``S`` of the same total length (plain + biased);
- ``ideal_loop_bias``: a fresh run only, on (Phi, Psi) (width 0.35 rad) with the loop's bias
  settings (the NCT arm's height, bias factor and pace, the bias every step, as the TICA arm):
  what the ideal CVs do under the bias the loops use. Not part of the default ``--arms``.

Measured per arm and seed: the first visit of the positive Phi core (cumulative biased ps; for
plain MD the ps after ``--plain-ns``), committed Phi transitions and their rate per ns in a
fresh-bias run of ``--fresh-ns`` ns (default ``--ns-per-iteration``) on the last iteration's
CVs (ideal: a fresh run; plain: over its whole run), and the reweighted ``dF`` between the Phi
cores from the loop's data (final-bias weights), against a reference from ``--reference-ns`` of
well-tempered metadynamics on (Phi, Psi) (block errors; ``--reference-ns 0`` skips it). Seeds of
fresh runs are ``S + 1000``.

Run ``python -m bench.bench_explore [--seeds 0 1 2] [--plain-ns 2] [--iterations 3]
[--ns-per-iteration 0.75] [--reference-ns 10] [--train KEY=VALUE ...] [--arms ...]``; writes
one JSON (``--out``, default ``bench/out/explore.json``, never overwritten) with every arm,
seed and setting, keeps the runs in ``--work`` (default: beside the JSON) and prints a markdown
table. ``python -m bench.bench_explore --merge OUT A.json B.json`` joins runs of other seeds
(same settings; A's reference) into one record.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import openmm
import torch

from bench import explore_arms as arms
from bench import provenance
from nct_md.atomic import atomic_path
from nct_md.cv.reference import committed_transitions, phi_core, phi_psi
from nct_md.errors import NCTInputError
from nct_md.explore import explore
from nct_md.explore.runs import plain_run
from nct_md.export.metad import run_metadynamics, run_well_tempered
from nct_md.md.langevin import time_step
from nct_md.md.reweight import metad_log_weights
from nct_md.md.simulate import simulate
from nct_md.md.thermo import kt
from nct_md.model import NCTModel

ARMS = ("nct", "tica", "ideal", "plain", "ideal_loop_bias")
#: arms run unless ``--arms`` says otherwise
DEFAULT_ARMS = ARMS[:4]
#: fresh-bias runs use seed ``S + FRESH_SEED``
FRESH_SEED = 1000
PDB = Path(__file__).parents[1] / "data" / "alanine-dipeptide.pdb"
#: the NCT arm's bias settings (run_metadynamics defaults), shared by the TICA arm
NCT_BIAS = {k: p.default for k, p in inspect.signature(run_metadynamics).parameters.items()
            if k in ("bias_factor", "height", "pace")}
#: reference dF: blocks and the filling stage left out (fraction of the run)
REFERENCE_BLOCKS, REFERENCE_SKIP = 5, 0.2


def _md(args: argparse.Namespace) -> dict:
    """The MD settings shared by every run."""
    return {"forcefield": args.forcefield, "solvent": args.solvent,
            "save_every_ps": args.save_every_ps, "platform": args.platform, "progress": False}


def _failure(exc: BaseException) -> str:
    """The last line of an error (a TorchScript error carries its traceback), at most 200
    characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ideal_run(args: argparse.Namespace, out: Path, ns: float, seed: int) -> dict:
    """Well-tempered metadynamics on (Phi, Psi) (:data:`bench.explore_arms.IDEAL`)."""
    step_fs = time_step("hbonds", None)
    return run_well_tempered(arms.torsion_variables(args.pdb), args.pdb, out, args.temperature,
                             ns=ns, bias_factor=arms.IDEAL["bias_factor"],
                             height=arms.IDEAL["height"],
                             pace=round(arms.IDEAL["pace_ps"] * 1000.0 / step_fs),
                             seed=seed, **_md(args))


def nct_arm(args: argparse.Namespace, work: Path, start: Path, seed: int) -> dict:
    """The NCT loop and a fresh-bias run on its last model's CVs."""
    records = explore(args.pdb, work / "loop", forcefield=args.forcefield, solvent=args.solvent,
                      temperature=args.temperature, start=[start], iterations=args.iterations,
                      ns_per_iteration=args.ns_per_iteration, seed=seed, train=args.train,
                      simulation={"save_every_ps": args.save_every_ps},
                      platform=args.platform, progress=False)
    last = records[-1]
    model = NCTModel.load(work / "loop" / last["model"]["path"])
    summary = run_metadynamics(model, args.pdb, work / "fresh", ns=args.fresh_ns,
                               temperature=args.temperature, seed=seed + FRESH_SEED,
                               **_md(args))
    residue = last["residues"][0]
    return {"first_positive_core_biased_ps": residue["phi_positive_core_first_visit_biased_ps"],
            "delta_f_kt": last["free_energy"]["delta_f_phi_kt"],
            "positive_core_weight_fraction": residue["phi_positive_core_weight_fraction"],
            "fresh": arms.fresh_measures(arms.phi_of(work / "fresh"), args.fresh_ns, summary),
            "iterations": [{"iteration": r["iteration"], "ns": r["ns"], "ood": r["ood"],
                            "n_new_states": r["states"] and r["states"]["n_new"],
                            "metad": r.get("metad"), "wall_s": r["wall_s"]} for r in records]}


def tica_arm(args: argparse.Namespace, work: Path, start: Path, seed: int) -> dict:
    """The loop with TICA CVs and a fresh-bias run on the last iteration's TICA CVs."""
    frame = arms.TICAFrame(start, args.temperature)
    lag = max(1, round(args.tica_lag_ps / args.save_every_ps))
    folders, iterations = [], []
    for iteration in range(1, args.iterations + 1):
        runs = [plain_run(start), *arms.biased_runs(folders)]
        module, components = frame.fit([run.load() for run in runs], lag)
        variables, grid = arms.tica_variables(module, components)
        folders.append(work / f"iter-{iteration:02d}")
        summary = run_well_tempered(variables, args.pdb, folders[-1], args.temperature,
                                    ns=args.ns_per_iteration, seed=seed + iteration,
                                    bias_interval=arms.TICA_BIAS_INTERVAL, **NCT_BIAS,
                                    **_md(args))
        torch.jit.save(torch.jit.script(module), str(folders[-1] / "tica_cv.pt"))
        iterations.append({"iteration": iteration, "grid": grid,
                           **{key: summary[key] for key in ("ns_per_day", "wall_s",
                                                            "mean_temperature_k")}})
    fresh = run_well_tempered(arms.tica_variables(module, components)[0], args.pdb,
                              work / "fresh", args.temperature, ns=args.fresh_ns,
                              seed=seed + FRESH_SEED, bias_interval=arms.TICA_BIAS_INTERVAL,
                              **NCT_BIAS, **_md(args))
    return {**arms.loop_measures([plain_run(start), *arms.biased_runs(folders)]),
            "fresh": arms.fresh_measures(arms.phi_of(work / "fresh"), args.fresh_ns, fresh),
            "iterations": iterations, "lag_frames": lag}


def ideal_arm(args: argparse.Namespace, work: Path, start: Path, seed: int) -> dict:
    """(Phi, Psi) metadynamics of the loop's biased length, and a fresh run."""
    biased_ns = args.iterations * args.ns_per_iteration
    run = ideal_run(args, work / "run", biased_ns, seed + 1)
    fresh = ideal_run(args, work / "fresh", args.fresh_ns, seed + FRESH_SEED)
    return {**arms.loop_measures([plain_run(start), *arms.biased_runs([work / "run"])]),
            "run": {"ns": biased_ns, "ns_per_day": run["ns_per_day"], "wall_s": run["wall_s"],
                    "mean_temperature_k": run["mean_temperature_k"]},
            "fresh": arms.fresh_measures(arms.phi_of(work / "fresh"), args.fresh_ns, fresh)}


def ideal_loop_bias_arm(args: argparse.Namespace, work: Path, start: Path, seed: int) -> dict:
    """A fresh run on (Phi, Psi) with the loops' bias settings (module docstring)."""
    fresh = run_well_tempered(arms.torsion_variables(args.pdb), args.pdb, work / "fresh",
                              args.temperature, ns=args.fresh_ns, seed=seed + FRESH_SEED,
                              bias_interval=arms.TICA_BIAS_INTERVAL, **NCT_BIAS, **_md(args))
    return {"first_positive_core_biased_ps": None, "delta_f_kt": None,
            "fresh": arms.fresh_measures(arms.phi_of(work / "fresh"), args.fresh_ns, fresh)}


def plain_arm(args: argparse.Namespace, work: Path, start: Path, seed: int) -> dict:
    """Plain MD from the PDB with the start's seed, of the loop's total length."""
    ns = args.plain_ns + args.iterations * args.ns_per_iteration
    summary = simulate(args.pdb, work / "plain.h5", ns=ns, seed=seed, temperature=args.temperature,
                       equilibrate_ps=args.equilibrate_ps, **_md(args))
    phi = phi_psi(md.load(str(work / "plain.h5")))[0].astype(np.float64)
    after_ps = (np.arange(1, len(phi) + 1) * args.save_every_ps) - 1000.0 * args.plain_ns
    visits = after_ps[phi_core(phi) == 1]
    return {"first_positive_core_biased_ps": float(visits[0]) if len(visits) else None,
            "delta_f_kt": arms.delta_f(phi, np.zeros(len(phi))),
            "positive_core_weight_fraction": float(np.mean(phi_core(phi) == 1)),
            "fresh": arms.fresh_measures(phi, ns, summary),
            "phi_positive_frames": int(np.count_nonzero(phi > 0))}


def reference_arm(args: argparse.Namespace, work: Path) -> dict:
    """Long (Phi, Psi) metadynamics: ``dF`` by final-bias reweighting (blocks) and from the
    final free-energy surface."""
    summary = ideal_run(args, work, args.reference_ns, args.reference_seed)
    phi = arms.phi_of(work)
    return {"ns": args.reference_ns, "seed": args.reference_seed,
            **arms.block_delta_f(phi, metad_log_weights(work), REFERENCE_BLOCKS, REFERENCE_SKIP),
            "fes_delta_f_kt": arms.fes_delta_f(np.load(work / "free_energy.npy"),
                                               kt(args.temperature)),
            "committed_transitions": committed_transitions(phi),
            "ns_per_day": summary["ns_per_day"], "wall_s": summary["wall_s"]}


def _stats(values: list) -> dict:
    """Median, mean and standard error over seeds of the values that are not None."""
    x = np.array([v for v in values if v is not None], dtype=float)
    return {"values": values, "median": float(np.median(x)) if len(x) else None,
            "mean": float(x.mean()) if len(x) else None,
            "sem": float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None}


def summarise(results: dict, reference: dict | None, biased_ns: float) -> dict:
    """Per arm: statistics over seeds; and the acceptance checks that the arms run allow."""
    out = {}
    for arm, seeds in results.items():
        out[arm] = {"first_positive_core_biased_ps": _stats(
                        [s["first_positive_core_biased_ps"] for s in seeds]),
                    "rate_per_ns": _stats([s["fresh"]["rate_per_ns"] for s in seeds]),
                    "delta_f_kt": _stats([s["delta_f_kt"] for s in seeds])}
        if (reference and reference["delta_f_kt"] is not None
                and out[arm]["delta_f_kt"]["mean"] is not None):
            stats = out[arm]["delta_f_kt"]
            stats["minus_reference_kt"] = stats["mean"] - reference["delta_f_kt"]
            stats["error_kt"] = float(np.hypot(stats["sem"] or 0.0,
                                               reference["block_sem_kt"] or 0.0))
    checks = {}
    rate = {arm: out[arm]["rate_per_ns"]["median"] for arm in out}
    if "nct" in out:
        visits = out["nct"]["first_positive_core_biased_ps"]["values"]
        checks["nct_reaches_positive_core_within_500_ps"] = all(
            v is not None and v <= 500.0 for v in visits)
        checks["biased_ns_at_most_5"] = biased_ns <= 5.0
        for other, factor in (("ideal", 0.5), ("tica", 2.0)):
            if other in out and rate[other] and rate["nct"] is not None:
                checks[f"nct_rate_over_{other}"] = rate["nct"] / rate[other]
                checks[f"nct_rate_at_least_{factor}x_{other}"] = rate["nct"] >= factor * rate[other]
        difference = out["nct"]["delta_f_kt"].get("minus_reference_kt")
        if difference is not None:
            checks["nct_delta_f_within_0.5_kt"] = abs(difference) <= 0.5
    failed = [{"arm": arm, "seed": r["seed"], "error": r["error"]}
              for arm, seeds in results.items() for r in seeds if "error" in r]
    return {"arms": out, "acceptance": checks, "failed": failed}


def _cell(stats: dict, digits: int) -> str:
    values = ", ".join("-" if v is None else f"{v:.{digits}f}" for v in stats["values"])
    median = "-" if stats["median"] is None else f"{stats['median']:.{digits}f}"
    return f"{median} ({values})"


def table(summary: dict, reference: dict | None) -> str:
    """Markdown table, arms side by side."""
    names = {"nct": "NCT loop", "tica": "TICA loop", "ideal": "Phi/Psi metad (ideal)",
             "plain": "plain MD", "ideal_loop_bias": "Phi/Psi metad, the loops' bias"}
    lines = ["| arm | first Phi>0-core visit, biased ps: median (per seed) | committed "
             "transitions / ns, fresh bias: median (per seed) | dF, kT: mean +- sem | "
             "dF - reference, kT |", "|---|---|---|---|---|"]
    for arm, stats in summary["arms"].items():
        f = stats["delta_f_kt"]
        df = ("-" if f["mean"] is None else f"{f['mean']:.2f}" if f["sem"] is None
              else f"{f['mean']:.2f} +- {f['sem']:.2f}")
        diff = ("-" if f.get("minus_reference_kt") is None
                else f"{f['minus_reference_kt']:+.2f} +- {f['error_kt']:.2f}")
        lines.append(f"| {names[arm]} | {_cell(stats['first_positive_core_biased_ps'], 0)} | "
                     f"{_cell(stats['rate_per_ns'], 1)} | {df} | {diff} |")
    failed = [f"{names[f['arm']]} seed {f['seed']}: {f['error']}"
              for f in summary.get("failed", [])]
    if failed:
        lines.append("\nFailed (left out of the statistics): " + "; ".join(failed) + ".")
    if reference:
        kt_ = {key: "-" if reference[key] is None else f"{reference[key]:.2f}"
               for key in ("delta_f_kt", "block_mean_kt", "block_sem_kt", "fes_delta_f_kt")}
        lines.append(f"\nReference ((Phi, Psi) well-tempered metadynamics, {reference['ns']} ns): "
                     f"dF = {kt_['delta_f_kt']} kT, blocks {kt_['block_mean_kt']} +- "
                     f"{kt_['block_sem_kt']} kT, from the final surface {kt_['fes_delta_f_kt']} "
                     "kT. Plain MD: transitions per ns over its whole run.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    """Every arm and seed, the reference, the summary and the table; writes ``args.out``."""
    results: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    starts = {}
    for seed in args.seeds:
        start = args.work / f"seed-{seed}" / "start.h5"
        _log(f"seed {seed}: plain start, {args.plain_ns} ns")
        summary = simulate(args.pdb, start, ns=args.plain_ns, seed=seed,
                           temperature=args.temperature, equilibrate_ps=args.equilibrate_ps,
                           **_md(args))
        phi = phi_psi(md.load(str(start)))[0]
        starts[seed] = {"ns": args.plain_ns, "ns_per_day": summary["ns_per_day"],
                        "phi_positive_frames": int(np.count_nonzero(phi > 0)),
                        "positive_core_frames": int(np.count_nonzero(phi_core(phi) == 1))}
        for arm in args.arms:
            _log(f"seed {seed}: {arm}")
            started = time.perf_counter()
            function = {"nct": nct_arm, "tica": tica_arm, "ideal": ideal_arm,
                        "plain": plain_arm, "ideal_loop_bias": ideal_loop_bias_arm}[arm]
            try:
                result = function(args, args.work / f"seed-{seed}" / arm, start, seed)
            except (RuntimeError, openmm.OpenMMException) as exc:  # e.g. a simulation that blew up
                _log(f"seed {seed}: {arm} failed: {_failure(exc)}")
                result = {"error": _failure(exc), "first_positive_core_biased_ps": None,
                          "delta_f_kt": None, "fresh": {"rate_per_ns": None}}
            results[arm].append({"seed": seed, **result, "wall_s": time.perf_counter() - started})
    reference = None
    if args.reference_ns > 0:
        _log(f"reference: {args.reference_ns} ns of (Phi, Psi) metadynamics")
        reference = reference_arm(args, args.work / "reference")
    summary = summarise(results, reference, args.iterations * args.ns_per_iteration)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    commit = provenance.commit()
    out = {"settings": settings | {"commit": commit, "nct_bias": NCT_BIAS, "ideal": arms.IDEAL,
                                   "tica": {"width_std": arms.TICA_WIDTH_STD,
                                            "margin_std": arms.TICA_MARGIN_STD,
                                            "bias_interval": arms.TICA_BIAS_INTERVAL},
                                   "fresh_seed": f"seed + {FRESH_SEED}",
                                   "reference_blocks": REFERENCE_BLOCKS,
                                   "reference_skip_fraction": REFERENCE_SKIP},
           "starts": starts, "seeds": results, "reference": reference, **summary,
           "table": table(summary, reference)}
    provenance.write_record(args.out, out)
    return out


def merge(paths: list[Path], out: Path) -> dict:
    """Join runs of other seeds with the same settings (the first file's reference) into one
    record ``out``: their per-seed results, summary and table recomputed."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    keep = ("seeds", "reference_ns", "out", "work", "commit")
    base = {k: v for k, v in runs[0]["settings"].items() if k not in keep}
    for other, path in zip(runs[1:], paths[1:], strict=True):
        differ = [k for k, v in base.items() if other["settings"].get(k) != v
                  and k != "reference_seed"]
        if differ:
            raise NCTInputError(f"{path} was run with other settings ({', '.join(differ)})")
    results = {arm: [s for r in runs for s in r["seeds"][arm]] for arm in runs[0]["seeds"]}
    reference = runs[0]["reference"]
    settings = runs[0]["settings"]
    summary = summarise(results, reference, settings["iterations"]
                        * settings["ns_per_iteration"])
    record = {"settings": settings | {"seeds": [s["seed"] for s in results["nct"]],
                                      "merged_from": [r["settings"] for r in runs]},
              "starts": {k: v for r in runs for k, v in r["starts"].items()}, "seeds": results,
              "reference": reference, **summary, "table": table(summary, reference)}
    with atomic_path(out, overwrite=False) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    return record


def key_values(items: list[str]) -> dict:
    """``KEY=VALUE`` arguments as a dict, each value read as JSON (``epochs=2``)."""
    return {k: json.loads(v) for k, v in (item.split("=", 1) for item in items)}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--plain-ns", type=float, default=2.0)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--ns-per-iteration", type=float, default=0.75)
    parser.add_argument("--fresh-ns", type=float, help="default: --ns-per-iteration")
    parser.add_argument("--reference-ns", type=float, default=10.0)
    parser.add_argument("--reference-seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(DEFAULT_ARMS))
    parser.add_argument("--train", nargs="+", default=[], metavar="KEY=VALUE",
                        help="NCT settings of the loop, e.g. epochs=2 restarts=1")
    parser.add_argument("--tica-lag-ps", type=float, default=10.0)
    parser.add_argument("--pdb", type=Path, default=PDB)
    parser.add_argument("--forcefield", default="amber99sbildn")
    parser.add_argument("--solvent", default="obc", choices=["obc", "vacuum"])
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--save-every-ps", type=float, default=1.0)
    parser.add_argument("--equilibrate-ps", type=float, default=10.0)
    parser.add_argument("--platform", help="OpenMM platform (default: the fastest)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "out" / "explore.json")
    parser.add_argument("--work", type=Path, help="run folders (default: OUT without .json, "
                        "plus -runs)")
    args = parser.parse_args(argv)
    args.train = key_values(args.train)
    args.fresh_ns = args.fresh_ns or args.ns_per_iteration
    args.work = args.work or args.out.with_name(args.out.stem + "-runs")
    provenance.refuse_existing(args.out, "--out")
    provenance.refuse_existing(args.work, "--work")
    return args


def main(argv: list[str] | None = None) -> dict:
    torch.set_num_threads(1)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--merge"]:  # --merge OUT RUN.json RUN.json ...
        out = merge([Path(p) for p in argv[2:]], Path(argv[1]))
    else:
        out = run(parse(argv))
    print(out["table"])
    return out


if __name__ == "__main__":
    main()
