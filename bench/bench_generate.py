"""Benchmark: the OpenMM bridge, exact free energies, and alanine-dipeptide generation at 300 K.

Writes ``bench/out/generate.json`` (and the sample summary under ``bench/out/generate/``).
Run with ``OMP_NUM_THREADS=1 python -m bench.bench_generate``. Steps:

1. bridge throughput on a batch of 1,024 frames with 1 and 2 workers (best of 3 timings);
2. variational free energy of the harmonic chain (n = 8) and the 2-D double well vs exact;
3. an all-atom generator (22 atoms, d = 60; internal coordinates, then 8 rational-quadratic
   spline couplings of width 128 and a linear point transform): configuration likelihood on the
   18,000 unconstrained 300 K frames, 10,000 samples compared with the 24,000-frame MD
   reference set, then fine-tuning with the mixed configuration loss (variational +
   1.0 x likelihood, learning rate 3e-4) against OpenMM, then ``nct-md sample`` of 10,000
   frames, compared again, and 1,000,000 samples (``draw_samples``, not written) for the
   Ramachandran KL at large N.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from nct_md.cli import main
from nct_md.estimator import NCT
from nct_md.flows import point_flow
from nct_md.generate import diagnostics
from nct_md.generate.boltzmann import fine_tune_model, train_generator
from nct_md.generate.openmm_energy import OpenMMEnergy
from nct_md.generate.sample import draw_samples
from nct_md.latent import HarmonicLatent
from nct_md.md.phase import load_phase_space
from nct_md.systems.double_well import DoubleWell, DoubleWellHamiltonian
from nct_md.systems.harmonic_chain import ChainHamiltonian, NCTPair, exact_free_energy

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PDB = ROOT / "data" / "alanine-dipeptide.pdb"
UNCONSTRAINED = sorted((ROOT / "data" / "alanine-dipeptide-300K-unconstrained").glob("*.h5"))
REFERENCE = sorted((ROOT / "data" / "alanine-dipeptide-300K").glob("*.h5"))


def bridge() -> dict:
    """Frames per second of energy + forces for 1 and 2 workers on a batch of 1,024."""
    data = load_phase_space(UNCONSTRAINED)
    xyz = data.q.double().numpy().reshape(len(data), -1, 3)[:1024]
    xyz = np.concatenate([xyz, xyz])[:1024]
    out = {}
    for n in (1, 2):
        with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=n) as energy:
            energy.evaluate(xyz)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                energy.evaluate(xyz)
                times.append(time.perf_counter() - start)
        out[f"{n}_workers_frames_per_s"] = 1024 / min(times)
    out["speedup_2_vs_1"] = out["2_workers_frames_per_s"] / out["1_workers_frames_per_s"]
    out["load_average_1min"] = os.getloadavg()[0]
    return out


def exact_systems() -> dict:
    """Variational and reweighted free energies (kT) of the chain and the double well."""
    torch.manual_seed(0)
    chain = NCTPair(point_flow(8, n_couplings=0), HarmonicLatent(8)).double()
    res = train_generator(chain, ChainHamiltonian(8), 2000, lr=0.05, betas=(0.9, 0.9),
                          grad_clip=None, recenter_every=200, n_eval=50000)
    well = DoubleWell()
    generator = torch.Generator().manual_seed(0)
    model = NCTPair(point_flow(2, n_couplings=4, hidden=16, generator=generator),
                    HarmonicLatent(2)).double()
    res2 = train_generator(model, DoubleWellHamiltonian(well), 600, lr=1e-2, n_eval=50000)
    return {
        "harmonic_chain_n8": {"exact": exact_free_energy(8), **vars(res.free_energy)},
        "double_well": {"exact": well.exact_free_energy(), **vars(res2.free_energy)},
    }


def alanine(ml_epochs: int, fine_tune_steps: int, n_samples: int, n_large: int) -> dict:
    """Train the all-atom generator, sample, fine-tune it, sample again and summarise."""
    data = load_phase_space(UNCONSTRAINED)
    start = time.perf_counter()
    model = NCT(n_couplings=8, hidden=128, epochs=ml_epochs, patience=3, progress=False,
                internal_coordinates=True, objective="configuration",
                coupling="spline").fit(data).fetch_model()
    ml_s = time.perf_counter() - start
    reference = md.load([str(path) for path in REFERENCE])
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=2) as exact:
        samples = draw_samples(model, exact, n_samples, seed=1)
    after_ml = diagnostics.summarize(model.to_trajectory(samples.q), samples.energies,
                                     samples.log_weights, reference)
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=2, clip_above=1e5) as energy:
        start = time.perf_counter()
        result = fine_tune_model(model, energy, fine_tune_steps, data=data, batch_size=256,
                                 kl_weight=1.0, ml_weight=1.0, lr=3e-4, n_eval=2048,
                                 log_every=100, objective="configuration")
        tune_s = time.perf_counter() - start
    model_path = OUT / "generate" / "ala-all-atom.pt"
    model.save(model_path, overwrite=True)
    start = time.perf_counter()
    assert main(["sample", str(model_path), "--n", str(n_samples), "--workers", "2",
                 "--out", str(OUT / "generate" / "samples.h5"), "--overwrite",
                 "--reference", *map(str, REFERENCE)]) == 0
    sample_s = time.perf_counter() - start
    summary = json.loads((OUT / "generate" / "samples_summary" / "summary.json").read_text())
    with OpenMMEnergy.from_pdb(PDB, 300.0, n_workers=2) as exact:
        start = time.perf_counter()
        many = draw_samples(model, exact, n_large, batch_size=4096, seed=2)
        large_s = time.perf_counter() - start
    summary_large = diagnostics.summarize(model.to_trajectory(many.q), many.energies,
                                          many.log_weights, reference)
    return {"ml_seconds": ml_s, "fine_tune_seconds": tune_s, "sample_seconds": sample_s,
            "ml_validation_nll": model.info.training.validation_nll,
            "ml_best_epoch": model.info.training.best_epoch,
            "summary_after_ml": after_ml,
            "fine_tune_free_energy": vars(result.free_energy),
            "fine_tune_last": result.history[-1], "summary": summary,
            "large_sample_seconds": large_s, "summary_large": summary_large}


def run(parts: list[str]) -> dict:
    """Run the named parts (default all) and merge them into ``generate.json``."""
    logging.basicConfig(level=logging.INFO)
    steps = {"bridge": bridge, "exact": exact_systems,
             "alanine": lambda: alanine(ml_epochs=60, fine_tune_steps=2000, n_samples=10_000,
                                        n_large=1_000_000)}
    path = OUT / "generate.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    for name in parts or list(steps):
        report[name] = steps[name]()
    report["load_average_1min_end"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
