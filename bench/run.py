"""Run every benchmark in turn (``make bench``) and collect the results.

Benchmarks run one at a time, each in its own process, so their timings do not interfere; each
writes its JSON under ``bench/out/``. The collected figures go to ``bench/results.json`` and a
markdown table ``bench/results.md`` (each figure next to its reference from the same run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS = ("bench.bench_harmonic_chain", "bench.bench_stream", "bench.bench_cvs",
              "bench.bench_training", "bench.bench_generate", "bench.bench_export",
              "bench.bench_protein")


#: (result file, key path, label, reference key path or None, reference label, target)
TABLE = [
    ("training.json", "train_samples_per_s", "ML training, original-size model, batch 200 "
     "(samples/s)", "original.train_samples_per_s", "original implementation", ">= 3x"),
    ("training.json", "train_gflop_per_s", "ML training step (GFLOP/s)",
     "mlp_fwd_bwd_gflop_per_s", "FLOP-matched MLP forward+backward", ">= 35 %"),
    ("training.json", "cv_frames_per_s_with_alignment", "CV extraction with alignment "
     "(frames/s)", "original.forward_frames_per_s", "original positions-only forward", ">= 2x"),
    ("training.json", "cv_gflop_per_s", "CV transform (GFLOP/s)", "mlp_forward_gflop_per_s",
     "FLOP-matched MLP forward", ">= 50 %"),
    ("training.json", "torch_compile.forward_frames_per_s_compiled", "flow forward, "
     "torch.compile (frames/s)", "torch_compile.forward_frames_per_s_eager", "eager", ""),
    ("training.json", "cv_frames_per_s_with_alignment", "CV extraction (frames/s)",
     "tica_frames_per_s_with_alignment", "deeptime TICA transform with alignment", ""),
    ("cvs.json", "peak_rss_mb", "`nct-md cvs`, 1,000,000 frames: peak RSS (MB)", None, "",
     "<= 1,500"),
    ("stream.json", "peak_rss_mb", "streaming 1,000,000 frames: peak RSS (MB)", None, "",
     "<= 1,000"),
    ("generate.json", "bridge.2_workers_frames_per_s", "OpenMM bridge, 2 workers, batch 1,024 "
     "(frames/s)", "bridge.1_workers_frames_per_s", "1 worker (ideal: 2x)", ">= 1.7x"),
    ("generate.json", "alanine.summary.kish_ess_fraction", "alanine dipeptide generator, "
     "10,000 samples: Kish ESS / N", None, "", "reported"),
    ("generate.json", "alanine.summary.ramachandran_kl_nats.within_basins", "Ramachandran KL "
     "within basins vs MD, 10,000 samples (nats)", "alanine.summary.ramachandran_kl_floor_nats."
     "within_basins", "as many exact samples", ""),
    ("generate.json", "alanine.summary_large.ramachandran_kl_nats.within_basins", "Ramachandran "
     "KL within basins vs MD, 1,000,000 samples (nats)", None, "", "<= 0.1"),
    ("export.json", "cost.libtorch.plumed_call_us", "exported CV (shipped model), one frame, "
     "PLUMED's call sequence from C++ / LibTorch (us)", None, "", "<= 200"),
    ("export.json", "cost.libtorch.forward_backward_us", "exported CV (shipped model), one "
     "frame, forward + one backward, C++ (us)", None, "", "<= 200"),
    ("export.json", "cost.plumed_call_us", "exported CV (shipped model), PLUMED's call sequence "
     "from Python (us)", None, "", ""),
    ("export.json", "cost.cv_force_us_per_step", "OpenMM CV force (PythonForce) per MD step (us)",
     "cost.openmm_step_us_plain", "plain MD step", ""),
    ("harmonic_chain.json", "32.seconds_to_1pct", "harmonic chain n = 32: time to 1 % (s)",
     None, "", ""),
    ("protein.json", "train_s_per_epoch", "synthetic protein, 214 CA atoms (636 dof), 98 frames: "
     "ML training (s/epoch)", None, "", ""),
    ("protein.json", "cvs_frames_per_s", "synthetic protein, 214 CA atoms: `nct-md cvs` "
     "(frames/s)", None, "", ""),
]


def _get(data: dict, path: str):
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _format(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def collect() -> None:
    """Write bench/results.json (every result file) and bench/results.md (the table)."""
    results = {p.stem: json.loads(p.read_text()) for p in sorted((HERE / "out").glob("*.json"))}
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    rows = ["| figure | ours | reference | ratio | target |", "| --- | --- | --- | --- | --- |"]
    for file, key, label, ref_key, ref_label, target in TABLE:
        ours = _get(results.get(Path(file).stem, {}), key)
        ref = _get(results.get(Path(file).stem, {}), ref_key) if ref_key else None
        ratio = f"{ours / ref:.2f}" if ours is not None and ref else ""
        cell = _format(ours) if isinstance(ours, int | float) else "not measured"
        ref_cell = f"{_format(ref)} ({ref_label})" if ref is not None else ""
        rows.append(f"| {label} | {cell} | {ref_cell} | {ratio} | {target} |")
    sizes = _get(results.get("export", {}), "cost.libtorch_by_flow_size") or {}
    if sizes:
        rows += ["", "Exported CV cost by flow size (untrained flows, same atoms; C++ / LibTorch, "
                 "one frame, us):", "", "| couplings x depth | PLUMED sequence | forward + one "
                 "backward |", "| --- | --- | --- |"]
        rows += [f"| {key} | {_format(entry['plumed_call_us'])} | "
                 f"{_format(entry['forward_backward_us'])} |" for key, entry in sizes.items()
                 if "plumed_call_us" in entry]
    load = os.getloadavg()[0]
    rows.append(f"\n1-minute load average after the run: {load:.2f} (2 cores).")
    (HERE / "results.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", name]).returncode != 0:
            failed.append(name)
    collect()
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
