"""Peak memory of streaming a long trajectory through ``nct_md.md.phase.iter_phase_space``.

Writes (once) a synthetic 22-atom alanine-dipeptide HDF5 trajectory with velocities, then streams
it chunk by chunk in a fresh process that superposes every frame, removes rigid-body motion and
builds the momenta, and reports that process's peak resident set size.

Usage: ``python -m bench.bench_stream [--frames 1000000] [--chunk 10000] [--out bench/out]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PDB = ROOT / "data" / "alanine-dipeptide.pdb"


def write_trajectory(path: Path, n_frames: int, chunk: int, seed: int = 0) -> None:
    """Write ``n_frames`` noisy, randomly rotated copies of alanine dipeptide with velocities."""
    import mdtraj as md
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    ala = md.load(str(PDB))
    tmp = path.with_suffix(".part.h5")
    with md.formats.HDF5TrajectoryFile(str(tmp), "w", force_overwrite=True) as handle:
        handle.topology = ala.topology
        for start in range(0, n_frames, chunk):
            n = min(chunk, n_frames - start)
            local = ala.xyz[0] + 0.01 * rng.normal(size=(n, 22, 3))
            rot = Rotation.random(n, random_state=rng).as_matrix()
            xyz = np.einsum("fnj,fij->fni", local, rot)
            handle.write(xyz.astype(np.float32),
                         time=np.arange(start, start + n, dtype=np.float32),
                         velocities=rng.normal(scale=0.5, size=(n, 22, 3)).astype(np.float32))
    tmp.replace(path)


def stream(path: Path, chunk: int) -> dict:
    """Stream ``path`` through iter_phase_space; return frames, time and peak RSS (MB)."""
    from nct_md.md.phase import iter_phase_space

    start = time.perf_counter()
    n_frames, kinetic = 0, 0.0
    for _, data in iter_phase_space(path, select="all", temperature=300.0, reference=PDB,
                                    chunk=chunk):
        n_frames += len(data)
        kinetic += float(data.kinetic_energy().double().sum())
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    return {"frames": n_frames, "chunk": chunk, "wall_s": round(wall, 1),
            "frames_per_s": round(n_frames / wall), "peak_rss_mb": round(peak_mb, 1),
            "mean_kinetic_kj_mol": kinetic / n_frames}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print and return the result (also saved as OUT/stream.json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--stream-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stream_only is not None:  # the measured child process
        result = stream(args.stream_only, args.chunk)
        print(json.dumps(result))
        return result
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ala2-{args.frames}-frames.h5"
    if not path.exists():
        write_trajectory(path, args.frames, args.chunk)
    child = subprocess.run(
        [sys.executable, "-m", "bench.bench_stream", "--stream-only", str(path),
         "--chunk", str(args.chunk)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["file_mb"] = round(path.stat().st_size / 1e6, 1)
    (args.out / "stream.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
