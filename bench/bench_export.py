"""Exported NCT CVs: accuracy, cost per MD step, and what a metadynamics bias buys.

Measures, for a trained model (default the heavy-atom alanine-dipeptide model):

1. accuracy on 1,000 frames of the shipped data (both Phi basins): exported vs in-package
   values, gradients as PLUMED computes them (float32 file, one backward per output) and by the
   module's ``jacobian`` (hand-written reverse sweep) against central finite differences of the
   float64 in-package model,
   and the change of the CVs under random rigid rotations and translations;
2. cost: microseconds per CV evaluation (PLUMED's call sequence from Python and from C++, i.e.
   LibTorch as PLUMED links it, also for untrained flows of other sizes; the OpenMM evaluator),
   beside the matched Deep-TICA-shaped reference CV (:mod:`bench.reference_cv`) timed
   interleaved with it in the same C++ process, with PLUMED's plain and frozen loading; per
   MD step of a CustomCVForce of the PythonForce CVs, and per step of the whole
   ``openmm.app.Metadynamics`` run; ns/day with and without the bias (Reference platform,
   amber99sbildn + OBC, HBonds, 2 fs, 300 K);
3. speed of biased MD: ns/day of unbiased MD and of the metadynamics on CV1 + CV2 with the bias
   evaluated every step (``bias_interval`` 1) and every ``bias_interval`` steps (multiple time
   steps, :mod:`nct_md.export.metad`; default the package's), timed interleaved in rounds of
   short runs (medians and quartiles), and their ratios to the unbiased speed;
4. sampling: Phi sign changes and committed transitions (frames every 1 ps) in an unbiased and
   a biased run (the chosen interval) of the same length, same seed and start.

Usage: ``python -m bench.bench_export [--model M] [--ps 1000] [--out bench/out]``; writes
``OUT/export.json``. ``--ps 20 --speed-ps 4 --rounds 1 --only-md`` is a smoke run of parts 3
and 4 (seconds; its figures are no record).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import openmm
import torch
from openmm import app, unit
from scipy.spatial.transform import Rotation

from bench import libtorch_call
from bench.reference_cv import save_reference_cv
from nct_md.cv.reference import committed_transitions
from nct_md.export import (
    add_cv_force,
    cv_module,
    phi_sign_changes,
    run_metadynamics,
    save_torchscript,
)
from nct_md.export.openmm_force import CVEvaluator
from nct_md.model import NCTModel, build_flow

ROOT = Path(__file__).resolve().parent.parent
DATA = sorted((ROOT / "data" / "alanine-dipeptide-300K").glob("*.h5"))
PDB = ROOT / "data" / "alanine-dipeptide.pdb"
FD_STEP = 1e-6  # nm


def frames(model: NCTModel, n: int = 1000) -> np.ndarray:
    """``n`` frames spread over the six shipped trajectories, model atoms, ``(n, N, 3)`` nm."""
    traj = md.join([md.load(str(f), stride=24) for f in DATA])[:n]
    return traj.xyz[:, model.select_atoms(traj.topology)]


def in_package(model: NCTModel, xyz: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.cvs(model.preprocessing.superpose(xyz), 2).double().numpy()


def fd_gradients(model64: NCTModel, xyz: np.ndarray) -> np.ndarray:
    """Central differences of the float64 in-package CVs, ``(B, 2, 3N)``."""
    n, n_atoms, _ = xyz.shape
    steps = np.eye(3 * n_atoms).reshape(3 * n_atoms, 1, n_atoms, 3) * np.array([1, -1])[
        :, None, None] * FD_STEP
    values = in_package(model64, (xyz.astype(np.float64)[:, None, None] + steps[None]).reshape(
        -1, n_atoms, 3)).reshape(n, 3 * n_atoms, 2, 2)
    return ((values[:, :, 0] - values[:, :, 1]) / (2 * FD_STEP)).transpose(0, 2, 1)


def plumed_call(module, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PLUMED's PYTORCH_MODEL sequence: float32 (1, n_in) with grad, one backward per output."""
    input_s = torch.tensor(row.astype(np.float32).tolist()).view(1, row.size)
    input_s.requires_grad_(True)
    output = module.forward(input_s)
    grads = [torch.autograd.grad([output[:, j:j + 1]], [input_s],
                                 grad_outputs=[torch.ones(1).expand(1, 1)],
                                 retain_graph=True)[0].numpy()[0]
             for j in range(output.shape[1])]
    return output.detach().numpy()[0], np.asarray(grads)


def relative(grad: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.linalg.norm(grad - ref, axis=-1) / np.linalg.norm(ref, axis=-1)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniformly random rotation matrices ``(n, 3, 3)``."""
    return Rotation.random(n, random_state=rng).as_matrix()


def accuracy(model: NCTModel, workdir: Path) -> dict:
    model64 = copy.deepcopy(model).double()
    xyz = frames(model)
    n = len(xyz)
    save_torchscript(model, workdir / "cvs.pt")
    plumed = torch.jit.load(str(workdir / "cvs.pt"))
    ref64 = in_package(model64, xyz)
    out32 = plumed(torch.from_numpy(xyz.reshape(n, -1))).numpy()
    out64 = torch.jit.script(cv_module(model64, 2, torch.float64))(
        torch.from_numpy(xyz.astype(np.float64).reshape(n, -1))).detach().numpy()
    fd = fd_gradients(model64, xyz)
    calls = [plumed_call(plumed, row) for row in xyz.reshape(n, -1)]
    plumed_values = np.asarray([c[0] for c in calls])
    plumed_grads = np.asarray([c[1] for c in calls])
    with torch.no_grad():
        _, jacobian = plumed.jacobian(torch.from_numpy(xyz.reshape(n, -1)))
    rng = np.random.default_rng(0)
    moved = np.einsum("fnj,fij->fni", xyz, random_rotations(n, rng))
    moved = moved + rng.uniform(-5, 5, size=(n, 1, 3))
    out_moved = plumed(torch.from_numpy(moved.astype(np.float32).reshape(n, -1))).numpy()
    err_plumed = relative(plumed_grads, fd)
    return {
        "n_frames": n,
        "cv_std": ref64.std(axis=0).tolist(),
        "values_max_abs_error": {
            "export_float32_vs_package_float64": float(np.abs(out32 - ref64).max()),
            "export_float32_vs_package_float32": float(np.abs(out32 - in_package(model, xyz))
                                                       .max()),
            "package_float32_vs_package_float64": float(np.abs(in_package(model, xyz) - ref64)
                                                        .max()),
            "plumed_call_vs_package_float64": float(np.abs(plumed_values - ref64).max()),
            "export_float64_vs_package_float64": float(np.abs(out64 - ref64).max()),
        },
        "gradient_relative_error_vs_finite_differences": {
            "plumed_call_float32_max": float(err_plumed.max()),
            "plumed_call_float32_median": float(np.median(err_plumed)),
            "jacobian_float32_max": float(relative(jacobian.numpy(), fd).max()),
        },
        "rigid_motion_max_abs_change": float(np.abs(out_moved - out32).max()),
    }


def time_per_call(fn, inputs: list, repeats: int = 5) -> float:
    """Best over ``repeats`` of the mean time (us) of ``fn`` over ``inputs``."""
    for x in inputs[:20]:
        fn(x)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for x in inputs:
            fn(x)
        best = min(best, (time.perf_counter() - start) / len(inputs))
    return best * 1e6


def step_time(system: openmm.System, pdb: app.PDBFile, steps: int = 2000) -> float:
    """Best of three: microseconds per 2 fs Langevin step on the Reference platform."""
    integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.002)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(context)
    integrator.step(100)
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        integrator.step(steps)
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e6


def libtorch_cost(exe: Path | None, cv_file: Path, xyz: np.ndarray) -> dict:
    """PLUMED's call sequence from C++ (bench/plumed_call.cpp) on frames ``(F, N, 3)``, and the
    largest difference of its values and derivatives from the same call made from Python."""
    if exe is None:
        return {"error": "no C++ compiler: LibTorch timings not measured"}
    result = libtorch_call.run(exe, cv_file, xyz.reshape(len(xyz), -1))
    module = torch.jit.load(str(cv_file))
    calls = [plumed_call(module, row) for row in xyz.reshape(len(xyz), -1)]
    return {"plumed_call_us": result["us_per_call"],
            "forward_backward_us": result["us_forward_backward"],
            "values_max_abs_diff_vs_python": float(np.abs(
                result["values"] - np.asarray([c[0] for c in calls])).max()),
            "derivatives_max_abs_diff_vs_python": float(np.abs(
                result["derivatives"] - np.asarray([c[1] for c in calls])).max())}


def size_sweep(model: NCTModel, exe: Path | None, workdir: Path, xyz: np.ndarray) -> dict:
    """LibTorch cost of exports of untrained flows of other sizes on the same atoms.

    One frame costs what its number of small tensor operations costs, so this is the table to
    choose a flow size by when the CV runs inside MD.
    """
    sizes = {}
    for couplings, depth in ((0, 1), (2, 1), (4, 1), (4, 2), (8, 1), (8, 2)):
        arch = dict(model.architecture, n_couplings=couplings, depth=depth)
        flow = build_flow(arch)
        torch.manual_seed(0)
        for parameter in flow.parameters():
            parameter.data.normal_(0, 0.05)
        other = NCTModel(model.preprocessing, flow, model.latent, arch, model.info)
        path = workdir / f"cvs-{couplings}x{depth}.pt"
        save_torchscript(other, path)
        cost = libtorch_cost(exe, path, xyz[:20])
        sizes[f"{couplings}x{depth}"] = {"couplings": couplings, "depth": depth,
                                        "hidden": int(arch["hidden"]), **cost}
    return sizes


def _spread(times: list[float]) -> dict:
    """Median and quartiles (us) of per-round times."""
    q25, median, q75 = np.percentile(times, [25, 50, 75])
    return {"median": float(median), "quartiles": [float(q25), float(q75)]}


def matched_reference(model: NCTModel, exe: Path | None, workdir: Path, xyz: np.ndarray,
                      repeats: int = 200, rounds: int = 21) -> dict:
    """The exported CV (``workdir/cvs.pt``) and the matched Deep-TICA-shaped reference CV,
    timed interleaved in one C++ harness process with PLUMED's call sequence, on frames
    ``(F, N, 3)`` nm.

    For each way PLUMED loads a file (``plain``: ``torch::jit::load`` alone; ``frozen``: then
    eval, freeze and optimize_for_inference, as current PLUMED does): per CV the median and
    quartiles over ``rounds`` rounds of ``repeats`` calls (``plumed_call_us``: PLUMED's
    sequence; ``forward_backward_us``: one backward of the summed CVs) or the error that
    stopped it, and ``ratio`` = exported / reference of the PLUMED-sequence medians.
    """
    if exe is None:
        return {"error": "no C++ compiler: LibTorch timings not measured"}
    files = {"exported": workdir / "cvs.pt",
             "reference": save_reference_cv(model, workdir / "reference-cv.pt", n_cvs=2)}
    report = {"reference_cv": "same atoms and superposition, 3N -> 64 -> 64 -> 2 tanh MLP, float32",
              "repeats": repeats, "rounds": rounds}
    for load, freeze in (("plain", False), ("frozen", True)):
        results = libtorch_call.run_interleaved(exe, list(files.values()),
                                                xyz.reshape(len(xyz), -1), repeats, rounds,
                                                freeze)
        entry = {}
        for name, result in zip(files, results, strict=True):
            entry[name] = ({"error": result["error"]} if "error" in result else
                           {"plumed_call_us": _spread(result["us_per_call"]),
                            "forward_backward_us": _spread(result["us_forward_backward"])})
        if all("error" not in e for e in entry.values()):
            entry["ratio"] = (entry["exported"]["plumed_call_us"]["median"]
                              / entry["reference"]["plumed_call_us"]["median"])
        report[load] = entry
    return report


def cost(model: NCTModel, workdir: Path, out: Path) -> dict:
    """CV evaluation alone, and OpenMM steps with and without a CustomCVForce of the CVs."""
    xyz = frames(model, 200).astype(np.float64)
    exe = libtorch_call.build(out)
    plumed = torch.jit.load(str(workdir / "cvs.pt"))
    evaluator = CVEvaluator(torch.jit.load(str(workdir / "cvs.pt")))
    rows = list(xyz.reshape(len(xyz), -1))
    pdb = app.PDBFile(str(PDB))
    forcefield = app.ForceField("amber99sbildn.xml", "amber99_obc.xml")
    systems = [forcefield.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                       constraints=app.HBonds) for _ in range(2)]
    add_cv_force(systems[1], workdir / "cvs.pt", "0.1*cv1 + 0.1*cv2")
    plain, with_cvs = (step_time(system, pdb) for system in systems)
    return {"plumed_call_us": time_per_call(lambda r: plumed_call(plumed, r), rows),
            "libtorch": libtorch_cost(exe, workdir / "cvs.pt", xyz),
            "libtorch_by_flow_size": size_sweep(model, exe, workdir, xyz),
            "matched_reference": matched_reference(model, exe, workdir, xyz),
            "openmm_evaluator_us": time_per_call(evaluator, list(xyz)),
            "openmm_step_us_plain": plain, "openmm_step_us_with_cv_force": with_cvs,
            "cv_force_us_per_step": with_cvs - plain}


def unbiased_run(ps: float, seed: int) -> dict:
    """Plain Langevin run from the minimised PDB: Phi every 1 ps, wall time."""
    pdb = app.PDBFile(str(PDB))
    system = app.ForceField("amber99sbildn.xml", "amber99_obc.xml").createSystem(
        pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                                 2 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    simulation = app.Simulation(pdb.topology, system, integrator,
                                openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(pdb.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    xyz = []
    start = time.perf_counter()
    for _ in range(round(ps)):
        simulation.step(500)
        xyz.append(simulation.context.getState(getPositions=True).getPositions(asNumpy=True)
                   .value_in_unit(unit.nanometer))
    wall = time.perf_counter() - start
    phi = md.compute_phi(md.Trajectory(np.asarray(xyz), md.Topology.from_openmm(pdb.topology)))[1]
    return {"ps": ps, "wall_s": wall, "ns_per_day": ps / 1000 * 86400 / wall,
            "us_per_step": wall / (500 * round(ps)) * 1e6,
            "phi_sign_changes": phi_sign_changes(phi[:, 0]),
            "phi_committed_transitions": committed_transitions(phi[:, 0]),
            "phi_positive_fraction": float(np.mean(phi[:, 0] > 0))}


def biased_run(model: NCTModel, ps: float, seed: int, out: Path, settings: dict) -> dict:
    """Metadynamics of ``ps`` ps in the new folder ``out`` (2 fs steps): its speed and Phi."""
    result = run_metadynamics(model, PDB, out, ns=ps / 1000, seed=seed, progress=False,
                              **settings)
    steps = ps * 500
    return {"ps": ps, "wall_s": result["wall_s"], "ns_per_day": result["ns_per_day"],
            "us_per_step": result["wall_s"] / steps * 1e6,
            "phi_sign_changes": result["phi_sign_changes"],
            "phi_committed_transitions": result["phi_committed_transitions"],
            "phi_positive_fraction": result["phi_positive_fraction"],
            **settings, "bias_interval": result["bias_interval"]}


def speed(model: NCTModel, ps: float, rounds: int, seed: int, workdir: Path,
          settings: dict) -> dict:
    """ns/day of unbiased MD and of metadynamics with the bias every step and every
    ``settings["bias_interval"]`` steps (None: the package default), ``rounds`` rounds of runs
    of ``ps`` ps, the three kinds alternating within each round: per kind the median and
    quartiles (``ns_per_day``) and the interval; ``biased_percent_of_unbiased``: 100 x biased /
    unbiased medians per biased kind."""
    kinds = {"unbiased": None, "biased_interval_1": settings | {"bias_interval": 1},
             "biased_default_interval": settings}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    intervals = {}
    for r in range(rounds):
        for kind, options in kinds.items():
            if options is None:
                times[kind].append(unbiased_run(ps, seed + r)["ns_per_day"])
                continue
            run = biased_run(model, ps, seed + r, workdir / f"speed-{kind}-{r}", options)
            times[kind].append(run["ns_per_day"])
            intervals[kind] = run["bias_interval"]
    report = {"ps_per_run": ps, "rounds": rounds}
    for kind, values in times.items():
        q25, median, q75 = np.percentile(values, [25, 50, 75])
        report[kind] = {"ns_per_day": float(median), "quartiles": [float(q25), float(q75)]}
        if kind in intervals:
            report[kind]["bias_interval"] = intervals[kind]
    report["biased_percent_of_unbiased"] = {
        kind: 100.0 * report[kind]["ns_per_day"] / report["unbiased"]["ns_per_day"]
        for kind in intervals}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "data" / "alanine-dipeptide-heavy.pt")
    parser.add_argument("--ps", type=float, default=1000.0,
                        help="length of the biased and the unbiased run (ps)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n-biased", type=int, default=2)
    parser.add_argument("--height", type=float, default=2.0, help="kJ/mol")
    parser.add_argument("--bias-factor", type=float, default=10.0)
    parser.add_argument("--pace", type=int, default=250, help="steps between Gaussians")
    parser.add_argument("--bias-interval", type=int, default=None,
                        help="MD steps between bias evaluations (default: the package's)")
    parser.add_argument("--speed-ps", type=float, default=40.0,
                        help="length of each timed run of the speed comparison (ps)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of the interleaved speed comparison")
    parser.add_argument("--only-md", action="store_true",
                        help="skip accuracy and cost; speed and sampling only (smoke runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = NCTModel.load(args.model)
    settings = {"n_biased": args.n_biased, "height": args.height,
                "bias_factor": args.bias_factor, "pace": args.pace,
                "bias_interval": args.bias_interval}
    report: dict = {"model": str(args.model)}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.only_md:
            report |= {"accuracy": accuracy(model, workdir),
                       "cost": cost(model, workdir, args.out)}
            print(json.dumps(report, indent=2), flush=True)
        timing = speed(model, args.speed_ps, args.rounds, args.seed, workdir, settings)
        unbiased = unbiased_run(args.ps, args.seed)
        biased = biased_run(model, args.ps, args.seed, workdir / "metad", settings)
    if "cost" in report:
        report["cost"]["metadynamics_overhead_us_per_step"] = (biased["us_per_step"]
                                                               - unbiased["us_per_step"])
    report["sampling"] = {"speed": timing, "unbiased": unbiased, "biased": biased,
                          "platform": "Reference", "timestep_fs": 2.0, "temperature_K": 300.0}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report.get("cost", {}) | report["sampling"], indent=2))


if __name__ == "__main__":
    main()
