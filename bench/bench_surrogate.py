"""Surrogate CV export: held-out fidelity, and cost beside the matched and the exact CV.

For a model (default the shipped heavy-atom alanine-dipeptide model) this distils the surrogate
(:mod:`nct_md.export.surrogate`) on the six shipped 300 K trajectories (every third held out),
reports its held-out per-CV R^2 and gradient cosines, and times three files in one C++ harness
process, interleaved, with PLUMED's call sequence (``bench/plumed_call.cpp``), loaded plain and
frozen as PLUMED does: the surrogate, the matched Deep-TICA-shaped reference CV
(:mod:`bench.reference_cv`) and the exact exported CV.

With ``--metad-ns T`` (default 2 ns) it then runs well-tempered metadynamics on CV1 + CV2 of the
exact CV and of the surrogate (:func:`nct_md.export.metad.run_well_tempered`, the package's
default bias settings and grid, amber99sbildn + OBC, 300 K, Reference platform) for each of
``--metad-seeds``, the two CVs alternating with an unbiased run of the same length per seed:
per run its ns/day, committed Phi transitions and the Phi > 0 / Phi < 0 free-energy difference
(kT) from final-bias reweighting (:func:`nct_md.md.reweight.metad_log_weights`) of the frames
after the first ``METAD_SKIP`` of the run.

Targets: surrogate cost <= 1.5x the matched CV; R^2 >= 0.999 per CV; median gradient cosine
>= 0.99 per CV; metadynamics dF of the surrogate within 0.5 kT of the exact CV's (medians over
seeds); surrogate metadynamics >= 50 % of unbiased ns/day.

Usage: ``python -m bench.bench_surrogate [--model M] [--quick] [--metad-ns T] [--metad-seeds S...]
[--out bench/out]``; writes
``OUT/surrogate.json`` (``--quick``: a smoke run, few frames and epochs; its numbers are no
record).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from bench import libtorch_call
from bench.bench_export import unbiased_run
from bench.explore_arms import phi_of
from bench.reference_cv import save_reference_cv
from nct_md.cv.reference import phi_core_delta_f
from nct_md.export import load_torchscript, save_torchscript
from nct_md.export.metad import default_bias, run_well_tempered
from nct_md.export.openmm_force import bias_variables
from nct_md.export.surrogate import DistilSettings, save_surrogate, split_trajectories
from nct_md.export.torchscript import cv_module
from nct_md.md.reweight import metad_log_weights
from nct_md.model import NCTModel

ROOT = Path(__file__).resolve().parent.parent
DATA = sorted((ROOT / "data" / "alanine-dipeptide-300K").glob("*.h5"))
PDB = ROOT / "data" / "alanine-dipeptide.pdb"
TARGETS = {"cost_ratio_max": 1.5, "r2_min": 0.999, "gradient_cosine_median_min": 0.99,
           "metad_delta_f_difference_kt_max": 0.5, "metad_percent_of_unbiased_min": 50.0}
#: share of each metadynamics run left out of the reweighted free-energy difference
METAD_SKIP = 0.2


def _spread(times: list[float]) -> dict:
    """Median and quartiles (us) of per-round times."""
    q25, median, q75 = np.percentile(times, [25, 50, 75])
    return {"median": float(median), "quartiles": [float(q25), float(q75)]}


def timings(files: dict[str, Path], frames: np.ndarray, out: Path, repeats: int,
            rounds: int) -> dict:
    """The files timed interleaved in the C++ harness on frames ``(F, 3N)`` nm, plain and frozen:
    per file ``plumed_call_us`` and ``forward_backward_us`` (median, quartiles), and the ratios
    of the PLUMED-sequence medians to the reference's."""
    exe = libtorch_call.build(out)
    if exe is None:
        return {"error": "no C++ compiler: LibTorch timings not measured"}
    report: dict = {"repeats": repeats, "rounds": rounds}
    for load, freeze in (("plain", False), ("frozen", True)):
        results = libtorch_call.run_interleaved(exe, list(files.values()), frames, repeats,
                                                rounds, freeze)
        entry = {name: ({"error": r["error"]} if "error" in r else
                        {"plumed_call_us": _spread(r["us_per_call"]),
                         "forward_backward_us": _spread(r["us_forward_backward"])})
                 for name, r in zip(files, results, strict=True)}
        if all("error" not in e for e in entry.values()):
            median = {name: entry[name]["plumed_call_us"]["median"] for name in files}
            entry["surrogate_over_reference"] = median["surrogate"] / median["reference"]
            entry["exact_over_reference"] = median["exact"] / median["reference"]
        if "error" not in results[0]:  # the C++ values against the Python call's
            module = torch.jit.load(str(files["surrogate"]))
            with torch.no_grad():
                python = module(torch.as_tensor(frames, dtype=torch.float32)).double().numpy()
            entry["surrogate_values_max_abs_diff_cpp_vs_python"] = float(
                np.abs(results[0]["values"] - python).max())
        report[load] = entry
    return report


def metad_runs(model: NCTModel, surrogate: Path, ns: float, seeds: list[int],
               workdir: Path) -> dict:
    """Metadynamics on the exact CV and on the surrogate, and unbiased MD, ``ns`` each per seed
    (module docstring): per kind the runs, the median dF (kT) and ns/day; the difference of the
    medians and each biased kind's ns/day as a percentage of the unbiased median."""
    lows, highs, widths = default_bias(model, 2)
    sources = {"exact": cv_module(model, n_cvs=2), "surrogate": surrogate}
    runs: dict[str, list[dict]] = {"unbiased": [], **{name: [] for name in sources}}
    for seed in seeds:
        runs["unbiased"].append(unbiased_run(ns * 1000, seed))
        for name, source in sources.items():
            folder = workdir / f"metad-{name}-{seed}"
            result = run_well_tempered(bias_variables(source, lows, highs, widths), PDB, folder,
                                       float(model.info.temperature), ns=ns, seed=seed,
                                       progress=False)
            log_w = metad_log_weights(folder)
            phi = phi_of(folder)
            start = int(len(phi) * METAD_SKIP)
            runs[name].append({
                "seed": seed, "ns_per_day": result["ns_per_day"],
                "bias_interval": result["bias_interval"],
                "phi_committed_transitions": result["phi_committed_transitions"],
                "delta_f_kt": phi_core_delta_f(phi[start:], np.exp(log_w[start:]))})
    report: dict = {"ns": ns, "seeds": seeds, "skip_fraction": METAD_SKIP, "runs": runs}
    unbiased = float(np.median([r["ns_per_day"] for r in runs["unbiased"]]))
    for name in sources:
        values = [r["delta_f_kt"] for r in runs[name] if r["delta_f_kt"] is not None]
        report[name] = {"delta_f_kt_median": float(np.median(values)) if values else None,
                        "ns_per_day": float(np.median([r["ns_per_day"] for r in runs[name]])),
                        "percent_of_unbiased": 100.0 * float(np.median(
                            [r["ns_per_day"] for r in runs[name]])) / unbiased}
    report["unbiased"] = {"ns_per_day": unbiased}
    medians = [report[name]["delta_f_kt_median"] for name in sources]
    report["delta_f_difference_kt"] = (None if None in medians
                                       else abs(medians[0] - medians[1]))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "data" / "alanine-dipeptide-heavy.pt")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: every 8th frame, 100 epochs, short timings")
    parser.add_argument("--epochs", type=int, default=None, help="distillation epochs "
                        "(default: DistilSettings' default, 100 with --quick)")
    parser.add_argument("--metad-ns", type=float, default=2.0,
                        help="length of each metadynamics comparison run, ns (0: skip)")
    parser.add_argument("--metad-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = NCTModel.load(args.model)
    stride = 8 if args.quick else 1
    settings = DistilSettings(epochs=args.epochs or (100 if args.quick else
                                                     DistilSettings.epochs))
    trajectories = []
    for path in DATA:
        traj = md.load(str(path), stride=stride)
        trajectories.append(traj.xyz[:, model.select_atoms(traj.topology)])
    held = split_trajectories(len(trajectories))[1]
    timing_frames = np.concatenate([trajectories[i] for i in held])
    timing_frames = timing_frames[:: max(1, len(timing_frames) // (20 if args.quick else 200))]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        info = save_surrogate(model, workdir / "surrogate.pt", trajectories,
                              [p.name for p in DATA], n_cvs=2, settings=settings)
        distil_s = time.perf_counter() - start
        save_torchscript(model, workdir / "exact.pt", n_cvs=2)
        files = {"surrogate": workdir / "surrogate.pt",
                 "reference": save_reference_cv(model, workdir / "reference.pt", n_cvs=2),
                 "exact": workdir / "exact.pt"}
        load_torchscript(files["surrogate"])  # the file reads back as a CV export
        cost = timings(files, timing_frames.reshape(len(timing_frames), -1), args.out,
                       repeats=20 if args.quick else 200, rounds=3 if args.quick else 21)
        metad = (metad_runs(model, files["surrogate"], args.metad_ns, args.metad_seeds, workdir)
                 if args.metad_ns > 0 else None)
    fidelity = info["surrogate"]["held_out"]
    checks = {"r2_min": min(fidelity["r2"]),
              "gradient_cosine_median_min": min(fidelity["gradient_cosine_median"])}
    if metad is not None:
        checks["metad_percent_of_unbiased_min"] = metad["surrogate"]["percent_of_unbiased"]
        if metad["delta_f_difference_kt"] is not None:
            checks["metad_delta_f_difference_kt_max"] = metad["delta_f_difference_kt"]
    if "surrogate_over_reference" in cost.get("frozen", {}):
        checks["cost_ratio_max"] = max(cost[load]["surrogate_over_reference"]
                                       for load in ("plain", "frozen"))
    report = {
        "model": str(args.model), "quick": args.quick, "stride": stride,
        "surrogate": {key: info["surrogate"][key] for key in
                      ("architecture", "train_trajectories", "held_out_trajectories",
                       "n_train_frames")} | {"settings": asdict(settings), "distil_s": distil_s},
        "fidelity": fidelity,
        "cost": cost,
        "metad": metad,
        "targets": {name: {"value": checks.get(name), "target": target,
                           "pass": None if name not in checks else (
                               checks[name] <= target if name.endswith("max")
                               else checks[name] >= target)}
                    for name, target in TARGETS.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "surrogate.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("fidelity", "targets")}, indent=2))


if __name__ == "__main__":
    main()
