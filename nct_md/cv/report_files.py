"""``nct-md report`` as one function: read trajectories, score the CVs, write JSON and plots.

:func:`write_report` writes ``report.json`` and the PNG figures of :mod:`nct_md.cv.plots` into a
folder, all at once (staged beside it, so an interrupted run leaves no partial set) and never
over existing files unless asked; :func:`summary` is the table printed on stdout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from nct_md.atomic import check_output_folder, staged_folder
from nct_md.cv import plots
from nct_md.cv.report import build_report
from nct_md.md import io
from nct_md.model import NCTModel

#: Files :func:`write_report` writes (the Ramachandran plot only where Phi/Psi exist).
FILES = ["report.json", "spectrum.png", "fes_cv1_cv2.png", "cv_timeseries.png",
         "ramachandran_by_cv.png"]


def training_files(model: NCTModel, model_path: Path) -> tuple[list[Path], Path | None]:
    """The training trajectories and topology recorded in the model (relative to its file), or
    ``([], None)`` when they are not all found."""
    training = model.info.training
    where = Path(model_path).resolve().parent
    files = [where / f for f in (training.files or [])] if training else []
    top = training.topology_file if training else None
    if files and all(f.is_file() for f in files):
        return files, where / top if top else None
    return [], None


def write_report(model_path: str | os.PathLike, paths: Sequence[str | os.PathLike],
                 out: str | os.PathLike, top: str | os.PathLike | None = None,
                 train: Sequence[str | os.PathLike] | None = None, lag_ps: float = 10.0,
                 dt_ps: float | None = None, overwrite: bool = False,
                 progress: bool = True) -> dict:
    """Score a model's CVs on held-out trajectories ``paths``; write ``out``/report.json + plots.

    ``train`` are the trajectories the VAMP models, TICA and classifiers are fitted on (default:
    those recorded in the model; ``[]`` splits the held-out ones into time blocks instead).
    Returns the report dict.
    """
    out = check_output_folder(out, FILES, overwrite)
    model = NCTModel.load(model_path)
    model.check_separable()
    train_files, train_top = ((list(train), None) if train is not None else
                              training_files(model, Path(model_path)))
    with tqdm(total=4, desc="report", disable=None if progress else True) as bar:
        test = [chunk.traj for chunk in io.load(paths, top, dt_ps=dt_ps)]
        bar.update(1)
        fit = ([chunk.traj for chunk in io.load(train_files, top or train_top, dt_ps=dt_ps)]
               if train_files else None)
        bar.update(1)
        report, held = build_report(model, test, fit, lag_ps)
        bar.update(1)
        with staged_folder(out, overwrite) as stage:
            (stage / "report.json").write_text(json.dumps(report, indent=2))
            cvs = held.cat("cvs")
            plots.spectrum(model.frequencies, stage / "spectrum.png")
            plots.free_energy_surface(cvs[:, 0], cvs[:, 1], model.info.temperature,
                                      stage / "fes_cv1_cv2.png")
            plots.cv_timeseries(held.times, held.cvs, stage / "cv_timeseries.png")
            if held.has_torsions:
                plots.ramachandran_by_cv(held.cat("phi"), held.cat("psi"), cvs,
                                         stage / "ramachandran_by_cv.png")
        bar.update(1)
    return report


def summary(report: dict) -> str:
    """A short table: protocol, slowest frequencies, MI with Phi/Psi, VAMP-2 (linear and
    discretised) of NCT vs TICA, basin accuracy."""
    w = report["frequencies_per_ps"]
    lines = [f"protocol: {report['protocol']}",
             "slowest frequencies (1/ps): " + "  ".join(f"{x:.3g}" for x in w[:4])]
    mi = report["mutual_information"]
    if mi:
        lines.append(f"{'':6}{'MI phi':>9}{'MI psi':>9}   (nats)")
        lines += [f"{name:6}{v['phi']:>9.3f}{v['psi']:>9.3f}" for name, v in mi.items()]
    discrete = report["vamp2_discrete"]
    lines.append(f"{'k':>3}{'VAMP-2 NCT':>12}{'VAMP-2 TICA':>13}{'discr. NCT':>12}"
                 f"{'discr. TICA':>13}   (lag {report['lag_ps']:g} ps)")
    lines += [f"{k:>3}{value:>12.3f}{report['vamp2']['tica'][k]:>13.3f}"
              f"{discrete['nct'][k]:>12.3f}{discrete['tica'][k]:>13.3f}"
              for k, value in report["vamp2"]["nct"].items()]
    lines.append("discr. = VAMP-2 of one-hot k-means states of the k coordinates, constant + k "
                 "singular functions (protocol in report.json: vamp2_discrete)")
    if "phipsi" in report["vamp2"]:
        lines.append(f"VAMP-2 of (cos, sin) Phi/Psi: {report['vamp2']['phipsi']:.3f}")
    if "basin_classification" in report:
        basins = report["basin_classification"]
        lines.append(f"basin balanced accuracy (kNN): NCT CV1-2 {basins['nct_cv1_cv2']:.3f}, "
                     f"TICA-2 {basins['tica_2']:.3f}")
    return "\n".join(lines)
