"""``nct-md report``: score a model's CVs on held-out trajectories; report.json and plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="score CVs against TICA and Phi/Psi on held-out trajectories",
        description="Write DIR/report.json (frequencies, MI with Phi/Psi, VAMP-2 of NCT vs "
                    "TICA vs Phi/Psi, basin classification) and PNG plots. VAMP models, TICA "
                    "and classifiers are fitted on the model's training trajectories (or "
                    "--train) and scored on TRAJ.")
    parser.add_argument("model", type=Path, help="model file from `nct-md train`")
    parser.add_argument("traj", nargs="+", type=Path, help="held-out trajectory files")
    parser.add_argument("--top", type=Path, default=None, help="topology file")
    parser.add_argument("--train", nargs="*", type=Path, default=None,
                        help="training trajectories (default: those recorded in the model)")
    parser.add_argument("--lag-ps", type=float, default=10.0, help="lag time in ps (default 10)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.set_defaults(func=run)


def _training_files(model, model_path: Path, given: list[Path] | None
                    ) -> tuple[list[Path], Path | None]:
    """Training trajectories: given, or recorded in the model (relative to the model file)."""
    if given is not None:
        return given, None
    info = model.metadata.get("training", {})
    where = model_path.resolve().parent
    files = [where / f for f in info.get("files", [])]
    top = info.get("topology_file")
    if files and all(f.is_file() for f in files):
        return files, where / top if top else None
    return [], None


def run(args: argparse.Namespace) -> None:
    from nct_md.atomic import atomic_path
    from nct_md.cv import plots
    from nct_md.cv.report import build_report
    from nct_md.md import io
    from nct_md.model import NCTModel

    model = NCTModel.load(args.model)
    model.check_separable()
    test = io.load(args.traj, args.top)
    train_files, train_top = _training_files(model, args.model, args.train)
    train = io.load(train_files, args.top or train_top) if train_files else None
    report, held = build_report(model, test, train, args.lag_ps)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    cvs = held.cat("cvs")
    plots.spectrum(model.frequencies, args.out / "spectrum.png")
    plots.free_energy_surface(cvs[:, 0], cvs[:, 1], model.metadata["temperature"],
                              args.out / "fes_cv1_cv2.png")
    plots.cv_timeseries(held.times, held.cvs, args.out / "cv_timeseries.png")
    if held.has_torsions:
        plots.ramachandran_by_cv(held.cat("phi"), held.cat("psi"), cvs,
                                 args.out / "ramachandran_by_cv.png")
    print_summary(report)
    print(f"wrote {args.out / 'report.json'} and plots")


def print_summary(report: dict) -> None:
    """A short table: slowest frequencies, MI with Phi/Psi, VAMP-2 (linear and discretised) of
    NCT vs TICA, basin accuracy."""
    w = report["frequencies_per_ps"]
    print("slowest frequencies (1/ps): " + "  ".join(f"{x:.3g}" for x in w[:4]))
    mi = report["mutual_information"]
    if mi:
        print(f"{'':6}{'MI phi':>9}{'MI psi':>9}   (nats)")
        for name, values in mi.items():
            print(f"{name:6}{values['phi']:>9.3f}{values['psi']:>9.3f}")
    discrete = report["vamp2_discrete"]
    print(f"{'k':>3}{'VAMP-2 NCT':>12}{'VAMP-2 TICA':>13}{'discr. NCT':>12}{'discr. TICA':>13}"
          f"   (lag {report['lag_ps']:g} ps)")
    for k, value in report["vamp2"]["nct"].items():
        print(f"{k:>3}{value:>12.3f}{report['vamp2']['tica'][k]:>13.3f}"
              f"{discrete['nct'][k]:>12.3f}{discrete['tica'][k]:>13.3f}")
    print("discr. = VAMP-2 of one-hot k-means states of the k coordinates, constant + k "
          "singular functions (protocol in report.json: vamp2_discrete)")
    if "phipsi" in report["vamp2"]:
        print(f"VAMP-2 of (cos, sin) Phi/Psi: {report['vamp2']['phipsi']:.3f}")
    if "basin_classification" in report:
        basins = report["basin_classification"]
        print(f"basin balanced accuracy (kNN): NCT CV1-2 {basins['nct_cv1_cv2']:.3f}, "
              f"TICA-2 {basins['tica_2']:.3f}")
