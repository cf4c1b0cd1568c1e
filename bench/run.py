"""Run every benchmark in turn (``make bench``), record the run, and check its targets.

Benchmarks run one at a time, each in its own process, so their timings do not interfere; each
writes its JSON under ``bench/out/``, which must be empty when the run starts (outputs of other
runs are never merged). ``bench/results.json`` collects every output with the run's record
(commit, machine, load average before and after, package versions); :func:`render` turns it
into the markdown table written to ``bench/results.md`` and pasted into the README (each figure
next to its reference from the same run), and :func:`check` compares each figure with its
target.

Usage: ``python -m bench.run`` (the whole run; exits non-zero when a benchmark fails or a target
is missed), ``python -m bench.run --check`` (the targets of the recorded ``bench/results.json``)
or ``python -m bench.run --table`` (its rendered table).
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results.json"

BENCHMARKS = ("bench.bench_harmonic_chain", "bench.bench_stream", "bench.bench_cvs",
              "bench.bench_training", "bench.bench_ddp", "bench.bench_generate",
              "bench.bench_export", "bench.bench_surrogate", "bench.bench_protein")


#: (result file, key path, label, reference key path or None, reference label, target)
TABLE = [
    ("training.json", "train_samples_per_s", "ML training, original-size model, batch 200 "
     "(samples/s)", "original.train_samples_per_s", "original implementation", ">= 3x"),
    ("training.json", "train_gflop_per_s", "ML training step (GFLOP/s)",
     "mlp_fwd_bwd_gflop_per_s", "FLOP-matched MLP forward+backward", ">= 50 %"),
    ("training.json", "cv_frames_per_s_with_alignment", "CV extraction with alignment "
     "(frames/s)", "original.forward_frames_per_s", "original positions-only forward, same "
     "alignment", ">= 2x"),
    ("training.json", "cv_gflop_per_s", "CV transform (GFLOP/s)", "mlp_forward_gflop_per_s",
     "FLOP-matched MLP forward", ">= 50 %"),
    ("training.json", "torch_compile.forward_frames_per_s_compiled", "flow forward, "
     "torch.compile (frames/s)", "torch_compile.forward_frames_per_s_eager", "eager", ""),
    ("training.json", "cv_frames_per_s_with_alignment", "CV extraction (frames/s)",
     "tica_frames_per_s_with_alignment", "deeptime TICA transform with alignment", ""),
    ("ddp.json", "processes.2.samples_per_s", "DDP training, 2 processes (gloo, one thread "
     "each), global batch 200 (samples/s)", "processes.1.samples_per_s", "1 process (ideal: 2x)",
     ">= 1.7x"),
    ("cvs.json", "peak_rss_mb", "`nct-md cvs`, 10,000,000 frames: peak RSS (MB)", None, "",
     "<= 1,000"),
    ("cvs.json", "frames_per_s", "`nct-md cvs`, 10,000,000 frames (frames/s)", None, "", ""),
    ("stream.json", "peak_rss_mb", "streaming 1,000,000 frames: peak RSS (MB)", None, "",
     "<= 1,000"),
    ("stream.json", "frames_per_s", "streaming 1,000,000 frames (frames/s)", None, "", ""),
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
     "PLUMED's call sequence from C++ / LibTorch (us)", None, "", ""),
    ("export.json", "cost.libtorch.forward_backward_us", "exported CV (shipped model), one "
     "frame, forward + one backward, C++ (us)", None, "", ""),
    ("export.json", "cost.matched_reference.frozen.exported.plumed_call_us.median",
     "exported CV / matched Deep-TICA CV, PLUMED's call sequence, C++ (us)",
     "cost.matched_reference.frozen.reference.plumed_call_us.median", "matched Deep-TICA CV "
     "(same atoms and superposition, 3N -> 64 -> 64 -> 2, tanh), timed interleaved", "<= 3x"),
    ("export.json", "cost.plumed_call_us", "exported CV (shipped model), PLUMED's call sequence "
     "from Python (us)", None, "", ""),
    ("export.json", "cost.cv_force_us_per_step", "OpenMM CV force (PythonForce) per MD step (us)",
     "cost.openmm_step_us_plain", "plain MD step", ""),
    ("export.json", "accuracy.values_max_abs_error.plumed_call_vs_package_float64",
     "exported CV, PLUMED's call sequence: values, max error vs the float64 model (ps)", None, "",
     "<= 0.00001"),
    ("export.json", "accuracy.gradient_relative_error_vs_finite_differences."
     "plumed_call_float32_max", "exported CV, PLUMED's call sequence: gradients, max relative "
     "error vs finite differences of the float64 model", None, "", "<= 0.0001"),
    ("export.json", "sampling.speed.biased_default_interval.ns_per_day", "OpenMM metadynamics "
     "on CV1 + CV2, exact CV, bias every 5 steps, alanine dipeptide in OBC (ns/day)",
     "sampling.speed.unbiased.ns_per_day", "unbiased MD, timed interleaved", ">= 25 %"),
    ("export.json", "sampling.speed.biased_interval_1.ns_per_day", "OpenMM metadynamics on "
     "CV1 + CV2, exact CV, bias every step (ns/day)", "sampling.speed.unbiased.ns_per_day",
     "unbiased MD, timed interleaved", ""),
    ("surrogate.json", "cost.frozen.surrogate.plumed_call_us.median", "surrogate CV / matched "
     "Deep-TICA CV, PLUMED's call sequence, frozen load, C++ (us)",
     "cost.frozen.reference.plumed_call_us.median", "matched Deep-TICA CV, timed interleaved",
     "<= 1.5x"),
    ("surrogate.json", "targets.r2_min.value", "surrogate CV: held-out R^2 (worst CV)", None, "",
     ">= 0.999"),
    ("surrogate.json", "targets.gradient_cosine_median_min.value", "surrogate CV: held-out "
     "median gradient cosine (worst CV)", None, "", ">= 0.99"),
    ("surrogate.json", "metad.delta_f_difference_kt", "metadynamics Phi > 0 / Phi < 0 dF, "
     "surrogate vs exact CV: difference of the medians over seeds (kT)", None, "", "<= 0.5"),
    ("surrogate.json", "metad.surrogate.ns_per_day", "OpenMM metadynamics on CV1 + CV2, "
     "surrogate CV, bias every 5 steps (ns/day)", "metad.unbiased.ns_per_day", "unbiased MD, "
     "same seeds and length", ">= 50 %"),
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


def _number(value) -> float | None:
    """``value`` if it is a real number (not a bool), else None."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _format(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


class Row(NamedTuple):
    """One line of :data:`TABLE` read from the results: our figure and its reference (or None)."""

    label: str
    ours: float | None
    reference: float | None
    reference_label: str
    target: str


def rows(results: dict) -> list[Row]:
    """Every :data:`TABLE` line with its figures looked up in ``results`` (results.json)."""
    out = []
    for file, key, label, ref_key, ref_label, target in TABLE:
        data = results.get(Path(file).stem, {})
        out.append(Row(label, _number(_get(data, key)),
                       _number(_get(data, ref_key)) if ref_key else None, ref_label, target))
    return out


class Target(NamedTuple):
    """A parsed target: ``compare(figure, limit)`` where the figure is ours / reference
    (``kind`` "ratio"), 100 * ours / reference ("percent") or ours ("absolute"); "reported" asks
    only that the figure exists (``compare`` and ``limit`` None)."""

    kind: str
    compare: Callable[[float, float], bool] | None
    limit: float | None


def parse_target(text: str) -> Target | None:
    """``">= 3x"``, ``">= 35 %"``, ``"<= 1,500"``, ``"reported"``; None for ``""`` (no target)."""
    text = text.strip()
    if not text:
        return None
    if text == "reported":
        return Target("reported", None, None)
    match = re.fullmatch(r"(>=|<=)\s*(\d[\d,]*(?:\.\d+)?)\s*(x|%)?", text)
    if match is None:
        raise ValueError(f"unknown target {text!r}")
    sign, number, unit = match.groups()
    return Target({"x": "ratio", "%": "percent", None: "absolute"}[unit],
                  {">=": operator.ge, "<=": operator.le}[sign], float(number.replace(",", "")))


def verdict(row: Row) -> str | None:
    """"PASS", "FAIL" or "MISSING" (a figure, or the reference a ratio needs, was not measured);
    None when the row has no target."""
    target = parse_target(row.target)
    if target is None:
        return None
    if row.ours is None:
        return "MISSING"
    if target.kind == "reported":
        return "PASS"
    figure = row.ours
    if target.kind != "absolute":
        if not row.reference:
            return "MISSING"
        figure = row.ours / row.reference * (100.0 if target.kind == "percent" else 1.0)
    return "PASS" if target.compare(figure, target.limit) else "FAIL"


def check(results: dict) -> int:
    """Print every target of ``results`` with its figures and verdict; the number missed."""
    checked = [(row, verdict(row)) for row in rows(results)]
    checked = [(row, status) for row, status in checked if status is not None]
    print(f"{'':8} {'ours':>10} {'reference':>10} {'ratio':>7} {'target':>9}  figure")
    for row, status in checked:
        ours = _format(row.ours) if row.ours is not None else "-"
        ref = _format(row.reference) if row.reference is not None else "-"
        ratio = f"{row.ours / row.reference:.2f}" if row.ours is not None and row.reference else "-"
        print(f"{status:8} {ours:>10} {ref:>10} {ratio:>7} {row.target:>9}  {row.label}")
    missed = sum(status != "PASS" for _, status in checked)
    print(f"{len(checked) - missed} of {len(checked)} targets met")
    return missed


def _run_line(record: dict | None) -> str:
    """The run record in one sentence (commit, machine, load, versions, wall time)."""
    if not record:
        return ("No run record (commit, machine, load average, versions): these results predate "
                "it.")
    commit = (record.get("commit") or "unknown")[:10]
    dirty = " with uncommitted changes" if record.get("uncommitted_changes") else ""
    machine = record.get("machine", {})
    before, after = record.get("load_average_before"), record.get("load_average_after")
    versions = ", ".join(f"{name} {version}" for name, version in
                         record.get("versions", {}).items() if version)
    return (f"Run: commit `{commit}`{dirty}, {machine.get('cores')} cores ({machine.get('cpu')}), "
            f"1-minute load average {before[0]:.2f} before and {after[0]:.2f} after, {versions}; "
            f"{record.get('wall_s', 0) / 60:.0f} minutes.")


def render(results: dict) -> str:
    """The markdown table of ``results`` (``bench/results.json``): every :data:`TABLE` row with
    its reference and ratio, the exported CV's cost by flow size, and the run record."""
    lines = ["| figure | ours | reference | ratio | target |", "| --- | --- | --- | --- | --- |"]
    for row in rows(results):
        ratio = f"{row.ours / row.reference:.2f}" if row.ours is not None and row.reference else ""
        cell = _format(row.ours) if row.ours is not None else "not measured"
        ref_cell = (f"{_format(row.reference)} ({row.reference_label})"
                    if row.reference is not None else "")
        lines.append(f"| {row.label} | {cell} | {ref_cell} | {ratio} | {row.target} |")
    sizes = _get(results.get("export", {}), "cost.libtorch_by_flow_size") or {}
    if sizes:
        lines += ["", "Exported CV cost by flow size (untrained flows, same atoms; C++ / LibTorch, "
                  "one frame, us):", "", "| couplings x depth | PLUMED sequence | forward + one "
                  "backward |", "| --- | --- | --- |"]
        lines += [f"| {key} | {_format(entry['plumed_call_us'])} | "
                  f"{_format(entry['forward_backward_us'])} |" for key, entry in sizes.items()
                  if "plumed_call_us" in entry]
    lines += ["", _run_line(results.get("run"))]
    return "\n".join(lines)


def _cpu() -> str:
    """The CPU's model name (Linux), else the platform's processor field."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"Python": platform.python_version()}
    for name, distribution in (("torch", "torch"), ("OpenMM", "openmm"), ("numpy", "numpy")):
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def start_record() -> dict:
    """The run's record before any benchmark: commit, machine, load average, versions."""
    status = _git("status", "--porcelain")
    return {"started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": _git("rev-parse", "HEAD"),
            "uncommitted_changes": None if status is None else bool(status),
            "machine": {"cores": os.cpu_count(), "cpu": _cpu(), "platform": platform.platform(),
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
            "load_average_before": list(os.getloadavg()),
            "versions": _versions()}


def collect(record: dict) -> dict:
    """Write bench/results.json (the run record and every output of this run) and
    bench/results.md (its :func:`render`); return the results."""
    results = {"run": record} | {p.stem: json.loads(p.read_text())
                                 for p in sorted(OUT.glob("*.json"))}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    RESULTS.with_suffix(".md").write_text(table + "\n")
    print(table)
    return results


def run_all() -> int:
    """Every benchmark from an empty ``bench/out/``, then collect and check; the exit status."""
    if OUT.exists() and any(OUT.iterdir()):
        print(f"{OUT} holds outputs of another run: move it aside or delete it first",
              file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    record, start = start_record(), time.perf_counter()
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", name]).returncode != 0:
            failed.append(name)
    record |= {"wall_s": time.perf_counter() - start, "load_average_after": list(os.getloadavg()),
               "failed": failed}
    missed = check(collect(record))
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed or missed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="check the targets of bench/results.json (exit 1 on a miss)")
    mode.add_argument("--table", action="store_true",
                      help="print the markdown table rendered from bench/results.json")
    args = parser.parse_args(argv)
    if not (args.check or args.table):
        return run_all()
    results = json.loads(RESULTS.read_text())
    if args.table:
        print(render(results))
        return 0
    return 1 if check(results) else 0


if __name__ == "__main__":
    sys.exit(main())
