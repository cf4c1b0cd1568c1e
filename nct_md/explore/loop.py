"""The learn -> bias -> relearn loop: :func:`explore`.

Iteration 0 is plain MD from the PDB (or the given start trajectories). Each later iteration
``i`` fits an NCT model to all frames so far with their weights, runs well-tempered
metadynamics on its ``n_biased`` slowest CVs, and appends the biased frames with their
final-bias weights (:mod:`nct_md.explore.runs`). Every iteration writes its folder
(:mod:`nct_md.explore.record`) and one line of ``explore.json``:

``iteration``; ``ns`` (``plain``, ``biased`` this iteration, ``biased_total``, ``total``; ns,
``plain`` None when the start trajectories store no frame times); ``n_frames`` (``new``,
``total``); ``files`` (iteration 0: the plain trajectories, relative to DIR); ``model`` (path,
frequencies of the biased CVs, 1/ps); ``metad`` (its summary); ``ood`` (frames of the new
biased run that this iteration's model flags out of distribution); ``states`` (generic states
and new states, :mod:`nct_md.explore.states`); ``residues`` (per-residue backbone basins and
their first visits, peptides only); ``free_energy`` (reweighted ``dF`` between the positive
and the negative Phi core, kT); ``wall_s``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import mdtraj as md
import numpy as np
from tqdm.auto import tqdm

from nct_md.explore import inputs
from nct_md.explore.record import (
    append_record,
    iteration_dir,
    open_folder,
    relocate_outputs,
    staged_iteration,
)
from nct_md.explore.runs import (
    Run,
    biased_run,
    combined_weights,
    frame_table,
    is_biased,
    plain_run,
    population_weights,
)
from nct_md.explore.states import backbone_basins, cluster, count_states
from nct_md.export.metad import run_metadynamics
from nct_md.md.formats import HDF5
from nct_md.md.io import extension
from nct_md.md.simulate import simulate
from nct_md.train.files import train_files

#: How ``free_energy.delta_f_phi_kt`` of explore.json is defined.
DELTA_F = ("-ln(W(0.3 < Phi < 2.0) / W(-2.8 < Phi < -0.8)) in kT (the Phi cores), W the summed "
           "weights of the frames so far (final-bias metadynamics weights, each run scaled to "
           "its effective sample size; plain MD left out once a run is biased); first residue "
           "with Phi and Psi; None while no frame is in the positive core")


def _completed_runs(out: Path, records: list[dict]) -> list[Run]:
    """The runs of the completed iterations, read back from ``out``."""
    runs = [plain_run(out / name) for name in records[0]["files"]] if records else []
    offset_ps = 0.0
    for record in records[1:]:
        metad_dir = iteration_dir(out, record["iteration"]) / "metad"
        runs.append(biased_run(metad_dir, record["iteration"], offset_ps))
        offset_ps += 1000.0 * record["ns"]["biased"]
    return runs


def _duration_ns(traj: md.Trajectory) -> float | None:
    """Length in ns of a trajectory: frames x frame spacing (None without frame times)."""
    spacing = float(np.median(np.diff(traj.time))) if len(traj) > 1 else float("nan")
    return len(traj) * spacing / 1000.0 if np.isfinite(spacing) and spacing > 0 else None


def _summary(runs: list[Run], trajs: list[md.Trajectory]) -> dict:
    """The ``residues`` and ``free_energy`` entries of a record, over all ``runs``."""
    _, biased_ps = frame_table(runs)
    residues = backbone_basins(trajs, biased_ps, population_weights(runs))
    return {"residues": residues,
            "free_energy": {"delta_f_phi_kt": residues[0]["delta_f_phi_kt"] if residues
                            else None, "definition": DELTA_F}}


def _plain(stage: Path, settings: dict) -> tuple[list[str], float | None]:
    """Iteration 0's trajectories in ``stage`` (names) and their total length in ns."""
    pdb, plain_ns = Path(settings["pdb"]), settings["plain_ns"]
    if settings["start"] is None:
        passed = {k: settings[k] for k in ("forcefield", "solvent", "temperature",
                                           "equilibrate_ps", "platform", "progress", "seed")}
        simulate(pdb, stage / "plain.h5", ns=plain_ns, **passed, **settings["simulation"])
        return ["plain.h5"], plain_ns
    names, lengths = [], []
    for k, path in enumerate(settings["start"]):
        names.append(f"start-{k:02d}.h5")
        traj = inputs.load_start(path, pdb)
        if extension(path) in HDF5:
            shutil.copyfile(path, stage / names[-1])  # keeps velocities and provenance
        else:
            traj.save_hdf5(str(stage / names[-1]))
        lengths.append(_duration_ns(traj))
    return names, None if None in lengths else float(sum(lengths))


def _write_cvs(path: Path, run: Run, offset_ps: float, cvs: np.ndarray, score: np.ndarray,
               flag: np.ndarray) -> None:
    """``cvs.csv`` of a biased run that started ``offset_ps`` into the exploration: time of
    the run (ps), cumulative biased time (ps), CVs, OOD score (nats) and flag (0/1)."""
    columns = ["time_ps", "biased_ps", *[f"cv{j + 1}" for j in range(cvs.shape[1])],
               "ood_score", "ood_flag"]
    table = np.column_stack([run.biased_ps - offset_ps, run.biased_ps, cvs, score,
                             flag.astype(float)])
    np.savetxt(path, table, delimiter=",", header=",".join(columns), comments="", fmt="%.8g")


def _biased_iteration(stage: Path, out: Path, iteration: int, runs: list[Run],
                      records: list[dict], settings: dict) -> dict:
    """Fit, bias and record one iteration in ``stage``; returns its record (no ``ns``)."""
    # weighted (biased) frames carry no unbiased kinetics: the likelihood alone (no warning),
    # unless the settings ask for biased_kinetics
    likelihood_only = is_biased(runs) and not settings["train"].get("biased_kinetics")
    quiet = {"kinetic_weight": 0.0} if likelihood_only else {}
    train = {"seed": settings["seed"] + iteration} | quiet | settings["train"]
    stride = train.get("stride", 1)
    model = train_files([run.path for run in runs], stage / "model.pt",
                        temperature=settings["temperature"], verbose=settings["progress"],
                        weights=combined_weights(runs, stride) if is_biased(runs) else None,
                        **train)
    n_biased = settings["n_biased"]
    result = run_metadynamics(
        model, settings["pdb"], stage / "metad", ns=settings["ns_per_iteration"],
        n_biased=n_biased, temperature=settings["temperature"],
        forcefield=settings["forcefield"], solvent=settings["solvent"],
        seed=settings["seed"] + iteration, platform=settings["platform"],
        progress=settings["progress"], **settings["metad"], **settings["simulation"])
    relocate_outputs(stage / "metad" / "metad.json", stage, iteration_dir(out, iteration))
    offset_ps = 1000.0 * sum(r["ns"]["biased"] for r in records[1:])
    new = biased_run(stage / "metad", iteration, offset_ps)
    all_runs = [*runs, new]
    trajs = [run.load() for run in all_runs]
    new_cvs, ood = model.transform(trajs[-1], n_biased, return_ood=True)
    _write_cvs(stage / "cvs.csv", new, offset_ps, new_cvs, ood.score, ood.flag)
    cvs = np.concatenate([*(model.transform(t, n_biased) for t in trajs[:-1]), new_cvs])
    frame_iteration, biased_ps = frame_table(all_runs)
    flags = np.concatenate([np.zeros(len(cvs) - len(new_cvs), dtype=bool), ood.flag])
    states = count_states(cluster(cvs, settings["n_states"], settings["seed"] + iteration),
                          frame_iteration, biased_ps, population_weights(all_runs), flags)
    keys = ("phi_sign_changes", "phi_positive_fraction", "mean_temperature_k", "ns_per_day",
            "wall_s")
    return {"n_frames": {"new": new.n_frames, "total": len(cvs)},
            "model": {"path": f"{iteration_dir(out, iteration).name}/model.pt",
                      "cv_frequencies_per_ps": [float(w) for w in
                                                model.cv_frequencies(n_biased)]},
            "metad": {k: result[k] for k in keys if k in result},
            "ood": {"n_flagged": int(ood.flag.sum()), "n_frames": len(ood.flag),
                    "threshold": float(ood.threshold), "score": "-ln p(q), nats"},
            "states": states, **_summary(all_runs, trajs)}


def run_iteration(out: Path, iteration: int, records: list[dict], settings: dict) -> None:
    """Run ``iteration`` in a staging folder, rename it into place and append its record."""
    started = time.perf_counter()
    runs = _completed_runs(out, records)
    with staged_iteration(out, iteration) as stage:
        if iteration == 0:
            names, plain_ns = _plain(stage, settings)
            runs = [plain_run(stage / name) for name in names]
            n = sum(run.n_frames for run in runs)
            record = {"ns": {"plain": plain_ns, "biased": 0.0, "biased_total": 0.0,
                             "total": plain_ns},
                      "n_frames": {"new": n, "total": n},
                      "files": [f"{iteration_dir(out, 0).name}/{name}" for name in names],
                      "ood": None, "states": None,
                      **_summary(runs, [run.load() for run in runs])}
        else:
            record = _biased_iteration(stage, out, iteration, runs, records, settings)
            plain_ns = records[0]["ns"]["plain"]
            biased_total = records[-1]["ns"]["biased_total"] + settings["ns_per_iteration"]
            record["ns"] = {"plain": plain_ns, "biased": settings["ns_per_iteration"],
                            "biased_total": biased_total,
                            "total": None if plain_ns is None else plain_ns + biased_total}
    append_record(out, records, {"iteration": iteration, **record,
                                 "wall_s": time.perf_counter() - started})


def explore(pdb: str | Path, out_dir: str | Path, forcefield: str = "amber99sbildn",
            solvent: str = "obc", temperature: float = 300.0,
            start: Sequence[str | Path] | None = None, iterations: int = 3,
            ns_per_iteration: float = 0.5, plain_ns: float = 2.0, n_biased: int = 2,
            seed: int = 0, resume: bool = False, train: dict | None = None,
            metad: dict | None = None, simulation: dict | None = None,
            equilibrate_ps: float = 10.0, n_states: int = 16, platform: str | None = None,
            progress: bool = True) -> list[dict]:
    """Learn slow CVs, bias them, relearn: ``iterations`` rounds after plain MD.

    Parameters
    ----------
    pdb : path
        Structure with all hydrogens that ``forcefield`` parameterises.
    out_dir : path
        Output folder (module docstring of :mod:`nct_md.explore.record`); an existing one is
        refused unless ``resume``.
    forcefield, solvent : str
        As in ``nct-md simulate``; solvent obc or vacuum (metadynamics has no periodic box).
    temperature : float
        K, of the MD and of the training data.
    start : sequence of paths, optional
        Trajectories of the PDB's atoms used as iteration 0 instead of plain MD (HDF5 files
        are copied with their velocities; other formats are read with the PDB's topology).
    iterations : int
        Learn -> bias rounds after iteration 0 (>= 1).
    ns_per_iteration : float
        Biased simulation per round, ns.
    plain_ns : float
        Plain MD of iteration 0 when no ``start`` is given, ns.
    n_biased : int
        Slowest CVs biased (1 to 3).
    seed : int
        Seed of the plain MD; round ``i`` uses ``seed + i`` for training, metadynamics and
        clustering.
    resume : bool
        Continue ``out_dir`` from its last completed iteration (same settings required; a
        missing folder starts fresh).
    train : dict, optional
        Keyword arguments of :func:`nct_md.train.files.train_files` (``select``, ``stride``)
        and :class:`nct_md.estimator.NCT` (``n_couplings``, ``epochs``, ``restarts``, ...).
        The kinetic objective is off once biased (weighted) frames are in the data, unless
        ``biased_kinetics=True``: then it takes the time-lagged pairs of every run, unweighted.
    metad : dict, optional
        ``bias_factor``, ``height`` (kJ/mol), ``pace`` (steps), ``widths`` (ps) of
        :func:`nct_md.export.metad.run_metadynamics`.
    simulation : dict, optional
        ``constraints``, ``timestep_fs``, ``save_every_ps`` (ps) of plain MD and metadynamics.
    equilibrate_ps : float
        Unsaved equilibration of the plain MD, ps.
    n_states : int
        Clusters of the generic state count (:mod:`nct_md.explore.states`).
    platform : str, optional
        OpenMM platform; None picks the fastest.
    progress : bool
        Progress bars (iterations, MD, training) and training summaries.

    Returns
    -------
    list of dict
        The records of every completed iteration (the lines of ``explore.json``).
    """
    pdb, out = Path(pdb), Path(out_dir)
    start = None if start is None else [Path(p) for p in start]
    train, metad, simulation = dict(train or {}), dict(metad or {}), dict(simulation or {})
    inputs.check_inputs(pdb, forcefield, solvent, temperature, iterations, ns_per_iteration,
                        plain_ns, n_biased, n_states, start, train, metad, simulation, platform)
    settings = {"pdb": str(pdb.resolve()), "forcefield": forcefield, "solvent": solvent,
                "temperature": float(temperature),
                "start": None if start is None else [str(p.resolve()) for p in start],
                "plain_ns": None if start is not None else float(plain_ns),
                "ns_per_iteration": float(ns_per_iteration), "n_biased": n_biased,
                "seed": seed, "train": train, "metad": metad, "simulation": simulation,
                "equilibrate_ps": float(equilibrate_ps), "n_states": n_states}
    records, created = open_folder(out, settings, resume)
    settings |= {"platform": platform, "progress": progress}
    try:
        for iteration in tqdm(range(len(records), iterations + 1), desc="explore",
                              unit="iteration", disable=not progress, initial=len(records),
                              total=iterations + 1):
            run_iteration(out, iteration, records, settings)
    except BaseException:
        if created and not records:  # nothing completed: leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    return records
