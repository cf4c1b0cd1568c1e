"""``nct-md demo`` as one function: train -> CVs -> report on the shipped alanine-dipeptide data.

:func:`run_demo` trains a heavy-atom model on four of the six 300 K trajectories of the shipped
data (:func:`nct_md.systems.alanine_dipeptide.data_dir`), writes the CVs of the two held-out ones
(one started in C7eq, one in C7ax) and reports them against TICA and Phi/Psi: ``model.pt``,
``cvs.csv`` and ``report/`` in the output folder (replaced when present).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nct_md.cv.extract import extract_cvs
from nct_md.cv.report_files import summary, write_report
from nct_md.errors import NCTInputError
from nct_md.systems import alanine_dipeptide
from nct_md.train.files import train_files

PathLike = str | os.PathLike
#: held-out trajectories of the 300 K set
HELD_OUT = ("phi-neg-c7eq-2.h5", "phi-pos-c7ax-2.h5")
N_CVS = 2
LAG_PS = 10.0


def split_trajectories(data_dir: PathLike) -> tuple[list[Path], list[Path]]:
    """``(training, held_out)`` trajectories of the 300 K set under ``data_dir``."""
    folder = Path(data_dir) / alanine_dipeptide.TRAJECTORIES_300K
    files = sorted(folder.glob("*.h5"))
    held = [f for f in files if f.name in HELD_OUT]
    train = [f for f in files if f.name not in HELD_OUT]
    if len(held) != len(HELD_OUT) or len(train) < 2:
        raise NCTInputError(f"the alanine-dipeptide trajectories are missing under {folder}; "
                            "data_dir must be the repository's data/ folder")
    return train, held


def run_demo(data_dir: PathLike | None = None, out_dir: PathLike = "demo-output",
             epochs: int | None = None, verbose: bool = True) -> dict:
    """Train, write CVs and report on the shipped data; returns what was written.

    Parameters
    ----------
    data_dir : path, optional
        The shipped data folder (the repository's ``data/``); default
        :func:`nct_md.systems.alanine_dipeptide.data_dir`.
    out_dir : path
        Output folder, created if needed; its ``model.pt``, ``cvs.csv`` and ``report/`` files
        are replaced.
    epochs : int, optional
        Training epochs of each restart; default that of ``nct-md train``, whose other
        defaults the demo uses too (:data:`nct_md.defaults.TRAINING`).
    verbose : bool
        Print each step and its summaries, and show progress bars.

    Returns
    -------
    dict
        ``model`` (path), ``cvs`` (paths written), ``report`` (the report dict).
    """
    train, held = split_trajectories(data_dir if data_dir is not None
                                     else alanine_dipeptide.data_dir())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = out_dir / "model.pt"
    start = time.perf_counter()
    say = print if verbose else (lambda *args: None)
    say(f"[1/3] nct-md train ({len(train)} trajectories, heavy atoms, default settings)")
    train_files(train, model, overwrite=True, verbose=verbose,
                **({} if epochs is None else {"epochs": epochs}))
    say(f"[2/3] nct-md cvs (held out: {', '.join(HELD_OUT)})")
    cvs, _ = extract_cvs(model, held, out_dir / "cvs.csv", n_cvs=N_CVS, overwrite=True,
                         progress=verbose)
    say(f"wrote {N_CVS} CVs to {', '.join(map(str, cvs))}")
    say("[3/3] nct-md report")
    report = write_report(model, held, out_dir / "report", lag_ps=LAG_PS, overwrite=True,
                          progress=verbose)
    say(summary(report))
    say(f"wrote {out_dir / 'report' / 'report.json'} and plots")
    say(f"demo finished in {time.perf_counter() - start:.0f} s; outputs in {out_dir}/")
    return {"model": model, "cvs": cvs, "report": report}
