"""Peak memory and throughput of ``nct-md cvs`` on a 1,000,000-frame trajectory.

Uses the synthetic file made by :mod:`bench.bench_stream` (created if missing) and a small
heavy-atom model trained on the shipped data; ``nct-md cvs`` runs in a child process that
reports its own peak resident set size. Writes ``bench/out/cvs.json``.

Usage: ``python -m bench.bench_cvs``
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.bench_stream import write_trajectory

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
FRAMES = 1_000_000


def time_cvs_command(arguments: list[str]) -> tuple[float, float]:
    """Run ``nct-md cvs ARGUMENTS`` in a fresh process: its wall time (s) and peak RSS (KiB)."""
    measured = (
        "import resource, sys, time\n"
        "from nct_md.cli import main\n"
        "start = time.perf_counter()\n"
        f"rc = main(['cvs', *{arguments!r}])\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(time.perf_counter() - start, peak)\n"
        "sys.exit(rc)\n")
    child = subprocess.run([sys.executable, "-c", measured], check=True, capture_output=True,
                           text=True)
    wall, peak_kib = map(float, child.stdout.split()[-2:])
    return wall, peak_kib


def main() -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    traj = OUT / f"ala2-{FRAMES}-frames.h5"
    if not traj.exists():
        write_trajectory(traj, FRAMES, 10_000)
    model = OUT / "bench-model.pt"
    data = sorted((ROOT / "data" / "alanine-dipeptide-300K").glob("*.h5"))
    if not model.exists():
        subprocess.run([sys.executable, "-m", "nct_md", "train", *map(str, data[:4]),
                        "--epochs", "3", "--out", str(model)], check=True)
    out = OUT / "cvs-1M.npy"
    out.unlink(missing_ok=True)
    wall, peak_kib = time_cvs_command([str(model), str(traj), '--out', str(out)])
    result = {"frames": FRAMES, "wall_s": round(wall, 1), "frames_per_s": round(FRAMES / wall),
              "peak_rss_mb": round(peak_kib / 1024.0, 1), "output": str(out.name)}
    (OUT / "cvs.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
